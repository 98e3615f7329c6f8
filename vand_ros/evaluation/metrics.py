"""Closed-loop metrics (../shared/VAND.md, "The claim to test"), with every success threshold in one config.

Periodic behaviours. The moving point is the end effector for `wipe` (a stroke: back and forth along a
line) and the base for `patrol` (a loop), in the world xy plane. Over sliding windows (`window_periods`
times the longest demonstrated period, hop a quarter window) across the evaluated part of the run (the
last `eval_fraction` after the last instruction change) each window gets:

    amplitude  stroke: half the 1..99 % percentile range along the principal axis (= A for x = A sin wt,
               robust to partial periods and spikes); loop: radius of a least-squares circle fit
    frequency  stroke: dominant FFT frequency of the position along the principal axis [Hz]; loop: mean
               angular rate about the fitted centre / 2 pi, signed (+ = counter-clockwise, as demonstrated)
    centre     stroke: mid-range along the principal axis, mean across it; loop: fitted centre
    shake      RMS jerk (third difference) of the end-effector position, normalised by the window's
               amplitude x (2 pi frequency)^3 (a pure sinusoid gives 1/sqrt(2) whatever its size and
               speed); ticks within `hold_margin` of a controller hold are left out (a hold stops the base
               at once: that is the safety filter's jerk, not the policy's)

and the run fails when (each reported on its own):
    amplitude / frequency   any window outside the demonstrated range widened by `amp_tol` / `freq_tol`
                            (10 %): [min_demo * (1 - tol), max_demo * (1 + tol)]
    dying out               any window's amplitude below `collapse` x the smallest demonstrated one
    drift                   a window centre moves more than `drift_tol` x the mean demonstrated amplitude
                            from the first window's centre (segments between pushes counted separately)
    divergence              non-finite state, the base farther than `divergence_radius` from where the
                            measurement started, or an amplitude above `diverge_amp` x the largest demo's
    shake                   any window's shake above `shake_tol` x the demonstrations' (median) shake

Windows that overlap a push or the `recovery` time after it are left out of the amplitude, frequency,
drift and shake checks (they still count for dying out and divergence).

Sequential behaviours. A touch is the end effector within `touch_radius` (xy) of a station mark and
below `touch_height`; consecutive samples at one station are one touch. After the last instruction
change the touches must be exactly the instructed order; the run completes at the first touch of the
last station, within `max_time_factor` x the slowest demonstration's time; from `settle` seconds after
that to the end the robot must stay stopped: base speed below `stop_speed`, and per stretch between
pushes the base moves less than `stop_disp` and each joint less than `stop_joint` (stretches of controller
holds, and `hold_recovery` after them, are left out: holding at the measured pose sags under gravity).

References (`BehaviourReference`) are measured with the same functions from demonstrations: from
demonstration bags (`reference_from_trajectories(trajectory_from_bag(...))`) or from closed-loop runs of
the scripted demonstrator.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from vand_ros import robot
from vand_ros.errors import VandError
from vand_ros.simulation import model as M
from vand_ros.simulation.behaviours import BEHAVIOURS, spec

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class SuccessConfig:
    """Every success threshold of the closed-loop evaluation."""

    # -- periodic ---------------------------------------------------------------------------------------
    amp_tol: float = 0.10  # amplitude within the demonstrated range +- 10 %
    freq_tol: float = 0.10  # frequency within the demonstrated range +- 10 %
    eval_fraction: float = 0.9  # windows cover the last 90 % of the measured part of the run
    window_periods: float = 2.5  # window length in (longest demonstrated) periods
    hop_fraction: float = 0.25  # window hop, in window lengths
    collapse: float = 0.5  # dying out: amplitude below this x the smallest demonstrated amplitude
    drift_tol: float = 0.25  # drift: centre moves more than this x the mean demonstrated amplitude
    shake_tol: float = 3.0  # shake: normalised jerk RMS above this x the demonstrations'
    diverge_amp: float = 2.0  # divergence: amplitude above this x the largest demonstrated amplitude
    divergence_radius: float = 3.0  # [m] divergence: base this far from where measuring started
    recovery: float = 5.0  # [s] after a push, left out of the band, drift and shake checks
    hold_margin: float = (
        1.5  # [s] jerk samples this close to a controller hold (and its blend-in) are left out
    )
    # -- sequential -------------------------------------------------------------------------------------
    touch_radius: float = 0.06  # [m] xy distance of the end effector from a station mark
    touch_height: float = 0.06  # [m] end-effector centre below this height
    settle: float = 3.0  # [s] after the last touch before "stopped" is checked
    stop_speed: float = 0.02  # [m/s] base speed while stopped
    stop_disp: float = 0.05  # [m] base displacement while stopped (per stretch between pushes)
    stop_joint: float = 0.05  # [rad] joint range while stopped (per stretch between pushes)
    max_time_factor: float = 2.0  # complete within this x the slowest demonstration
    min_stay: float = 5.0  # [s] the run must go on at least this long after settling
    hold_recovery: float = 2.0  # [s] after a controller hold, left out of the stop checks
    # -- runs -------------------------------------------------------------------------------------------
    duration_factor: float = 10.0  # runs last this x the longest demonstration

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT_SUCCESS = SuccessConfig()


@dataclass(frozen=True)
class BehaviourReference:
    """What the demonstrations of one behaviour did, measured with this module's functions."""

    behaviour: str
    episodes: int
    demo_duration: float  # [s] longest demonstration
    amplitude: tuple[float, float] = (0.0, 0.0)  # [m] (min, max) over demonstrations (periodic)
    frequency: tuple[float, float] = (0.0, 0.0)  # [Hz] (min, max), signed for loops (periodic)
    shake: float = 0.0  # median normalised end-effector jerk RMS (periodic; see the module docstring)
    order: tuple[str, ...] = ()  # stations in order (sequential)
    completion: tuple[float, float] = (0.0, 0.0)  # [s] (min, max) time to complete (sequential)

    @property
    def periodic(self) -> bool:
        return spec(self.behaviour).periodic

    @property
    def amp_mid(self) -> float:
        return 0.5 * (self.amplitude[0] + self.amplitude[1])

    @property
    def freq_mid(self) -> float:
        return 0.5 * (self.frequency[0] + self.frequency[1])

    @property
    def max_period(self) -> float:
        """[s] the longest demonstrated period."""
        return 1.0 / max(min(abs(self.frequency[0]), abs(self.frequency[1])), 1e-6)


def save_references(refs: dict[str, BehaviourReference], path: str | Path) -> None:
    Path(path).write_text(json.dumps({b: asdict(r) for b, r in refs.items()}, indent=1), encoding="utf-8")


def load_references(path: str | Path) -> dict[str, BehaviourReference]:
    d = json.loads(Path(path).read_text(encoding="utf-8"))
    return {
        b: BehaviourReference(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in r.items()}  # type: ignore[arg-type]
        )
        for b, r in d.items()
    }


# ---- signal measurements ----------------------------------------------------------------------------------
def dominant_period(t: FloatArray, x: FloatArray) -> float:
    """Period [s] of the strongest frequency of a uniformly sampled signal (Hann window, zero-padded FFT)."""
    return 1.0 / dominant_frequency(t, x)


def dominant_frequency(t: FloatArray, x: FloatArray) -> float:
    """Strongest non-zero frequency [Hz] of a uniformly sampled real signal (x (N,) at times t (N,))."""
    x = np.asarray(x, dtype=np.float64) - np.mean(x)
    n = 16 * len(x)
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)), n))
    freqs = np.fft.rfftfreq(n, d=float(t[1] - t[0]))
    return float(freqs[1:][np.argmax(spec[1:])])


def fit_circle(xy: FloatArray) -> tuple[FloatArray, float]:
    """Least-squares (Kasa) circle through points xy (N, 2): centre (2,) [m], radius [m]."""
    x, y = xy[:, 0], xy[:, 1]
    a = np.column_stack([x, y, np.ones_like(x)])  # (N, 3)
    b = x * x + y * y
    sol, *_ = np.linalg.lstsq(a, b, rcond=None)
    cx, cy = sol[0] / 2, sol[1] / 2
    r2 = sol[2] + cx * cx + cy * cy
    return np.array([cx, cy]), float(math.sqrt(max(r2, 0.0)))


@dataclass(frozen=True)
class Window:
    t0: float  # [s]
    t1: float  # [s]
    amplitude: float  # [m]
    frequency: float  # [Hz]
    centre: tuple[float, float]  # [m]
    jerk: float  # [m/s^3] RMS
    shake: float  # jerk / (amplitude * (2 pi frequency)^3)


def measure_window(
    kind: str, t: FloatArray, xy: FloatArray, ee: FloatArray, keep: npt.NDArray[np.bool_] | None = None
) -> Window:
    """One window: xy (N, 2) the moving point in the world plane, ee (N, 3) the end effector; `keep` (N,)
    marks the samples whose jerk counts (default all)."""
    if kind == "stroke":
        mean = xy.mean(axis=0)
        _, _, vt = np.linalg.svd(xy - mean, full_matrices=False)
        along = (xy - mean) @ vt[0]  # (N,) along the principal axis
        lo, hi = np.percentile(along, [1.0, 99.0])
        amplitude = float(hi - lo) / 2
        centre = mean + vt[0] * float(hi + lo) / 2
        freq = dominant_frequency(t, along) if len(t) > 3 else 0.0
    elif kind == "loop":
        centre, amplitude = fit_circle(xy)
        angle = np.unwrap(np.arctan2(xy[:, 1] - centre[1], xy[:, 0] - centre[0]))
        freq = float((angle[-1] - angle[0]) / (2 * math.pi * (t[-1] - t[0]))) if len(t) > 1 else 0.0
    else:
        raise ValueError(f"unknown periodic kind {kind!r}")
    jerk = jerk_rms(t, ee, keep)
    scale = max(amplitude, 1e-3) * (2 * math.pi * max(abs(freq), 1e-3)) ** 3
    return Window(
        float(t[0]), float(t[-1]), amplitude, freq, (float(centre[0]), float(centre[1])), jerk, jerk / scale
    )


def jerk_rms(t: FloatArray, pos: FloatArray, keep: npt.NDArray[np.bool_] | None = None) -> float:
    """RMS jerk [m/s^3] of positions pos (N, 3) sampled uniformly at t (third differences); a difference
    counts when all four of its samples are in `keep` (N,) (default all)."""
    if len(t) < 5:
        return 0.0
    dt = float(t[1] - t[0])
    j = np.diff(pos, n=3, axis=0) / dt**3  # (N - 3, 3)
    if keep is not None:
        ok = keep[3:] & keep[2:-1] & keep[1:-2] & keep[:-3]  # (N - 3,)
        if not ok.any():
            return 0.0
        j = j[ok]
    return float(np.sqrt(np.mean(np.sum(j * j, axis=1))))


def near(t: FloatArray, events: npt.NDArray[np.bool_], margin: float) -> npt.NDArray[np.bool_]:
    """(N,) True where a sample is within `margin` [s] of a sample flagged in `events` (N,)."""
    out = np.zeros(len(t), dtype=bool)
    idx = np.flatnonzero(events)
    if len(idx):
        k = round(margin / float(t[1] - t[0])) if len(t) > 1 else 0
        for i in idx:
            out[max(0, i - k) : i + k + 1] = True
    return out


def hold_intervals(t: FloatArray, holding: npt.NDArray[np.bool_], after: float) -> list[tuple[float, float]]:
    """(start, end + after) [s] of each stretch of controller holds."""
    out = []
    edges = np.diff(np.concatenate([[0], holding.astype(np.int8), [0]]))
    for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
        out.append((float(t[a]), float(t[b - 1]) + after))
    return out


def moving_point(behaviour: str, base: FloatArray, ee: FloatArray) -> FloatArray:
    """The world-plane point whose motion is the behaviour: the end effector (wipe) or the base (patrol)."""
    return spec(behaviour).moving_point(base, ee)


def touches(
    t: FloatArray, ee: FloatArray, radius: float = 0.06, height: float = 0.06
) -> list[tuple[float, str]]:
    """(time [s], station) of each new touch: end effector within `radius` (xy) of a mark, below `height`."""
    names = list(M.STATIONS)
    marks = np.array([M.STATIONS[n] for n in names])  # (S, 2)
    dist = np.linalg.norm(ee[:, None, :2] - marks[None], axis=2)  # (N, S)
    hit = (dist < radius) & (ee[:, 2:3] < height)
    out: list[tuple[float, str]] = []
    current = -1
    for i in range(len(t)):
        idx = int(np.argmax(hit[i])) if hit[i].any() else -1
        if idx >= 0 and idx != current:
            out.append((float(t[i]), names[idx]))
        current = idx
    return out


# ---- results --------------------------------------------------------------------------------------------
@dataclass
class RunMetrics:
    """The verdict of one run and the numbers behind it."""

    behaviour: str
    success: bool
    failures: list[str]  # e.g. ["amplitude", "shake"]; empty on success
    values: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _segments(t0: float, t1: float, cuts: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """[t0, t1] with the intervals `cuts` removed, as half-open stretches [a, b) (the last one ends just
    after t1, so it includes t1): a push at time p is applied before the sample of p is taken."""
    out, start = [], t0
    end = t1 + 1e-9
    for a, b in sorted(cuts):
        if b <= start or a >= end:
            continue
        if a > start:
            out.append((start, a))
        start = max(start, b)
    if start < end:
        out.append((start, end))
    return out


def _finite(*arrays: FloatArray) -> bool:
    return all(bool(np.all(np.isfinite(a))) for a in arrays)


def periodic_metrics(
    behaviour: str,
    t: FloatArray,
    base: FloatArray,
    ee: FloatArray,
    ref: BehaviourReference,
    cfg: SuccessConfig = SuccessConfig(),
    measure_from: float = 0.0,
    pushes: Sequence[float] = (),
    holding: npt.NDArray[np.bool_] | None = None,
) -> RunMetrics:
    """Sliding-window amplitude, frequency, drift, dying out, divergence and shake (module docstring)."""
    kind = spec(behaviour).motion
    values: dict[str, Any] = {}
    failures: list[str] = []
    if not _finite(base, ee):
        return RunMetrics(behaviour, False, ["divergence"], {"reason": "non-finite state"})
    holding = np.zeros(len(t), dtype=bool) if holding is None else holding
    keep = ~near(t, holding, cfg.hold_margin)  # (N,) samples whose jerk counts
    start = measure_from + (1.0 - cfg.eval_fraction) * (t[-1] - measure_from)
    sel = t >= start
    ts, xy, ees, ks = t[sel], moving_point(behaviour, base, ee)[sel], ee[sel], keep[sel]
    span = float(ts[-1] - ts[0]) if len(ts) > 1 else 0.0
    length = min(cfg.window_periods * ref.max_period, span)
    hop = max(cfg.hop_fraction * length, 1.0 / robot.RATES.control)
    windows: list[Window] = []
    w0 = float(ts[0]) if len(ts) else 0.0
    while len(ts) > 8 and w0 + length <= ts[-1] + 1e-6:
        m = (ts >= w0 - 1e-9) & (ts <= w0 + length + 1e-9)
        windows.append(measure_window(kind, ts[m], xy[m], ees[m], ks[m]))
        w0 += hop
    if not windows:
        return RunMetrics(behaviour, False, ["too-short"], {"reason": "no complete window"})
    clear = [w for w in windows if not any(w.t1 >= p and w.t0 < p + cfg.recovery for p in pushes)]
    amps = np.array([w.amplitude for w in windows])
    amp_lo, amp_hi = ref.amplitude
    values.update(
        windows=len(windows),
        windows_checked=len(clear),
        window_s=length,
        amp_rel_min=float(amps.min() / ref.amp_mid),
        amp_rel_max=float(amps.max() / ref.amp_mid),
        amp_rel_mean=float(amps.mean() / ref.amp_mid),
    )
    if clear:
        a = np.array([w.amplitude for w in clear])
        f = np.array([w.frequency for w in clear])
        shake = np.array([w.shake for w in clear]) / max(ref.shake, 1e-9)
        values.update(
            freq_rel_min=float(f.min() / ref.freq_mid),
            freq_rel_max=float(f.max() / ref.freq_mid),
            freq_rel_mean=float(f.mean() / ref.freq_mid),
            shake=float(shake.max()),
            shake_mean=float(shake.mean()),
        )
        if np.any(a < amp_lo * (1 - cfg.amp_tol)) or np.any(a > amp_hi * (1 + cfg.amp_tol)):
            failures.append("amplitude")
        lo, hi = sorted(ref.frequency, key=abs)
        f_ok = (np.abs(f) >= abs(lo) * (1 - cfg.freq_tol)) & (np.abs(f) <= abs(hi) * (1 + cfg.freq_tol))
        if not np.all(f_ok & (np.sign(f) == np.sign(ref.freq_mid))):
            failures.append("frequency")
        if values["shake"] > cfg.shake_tol:
            failures.append("shake")
    drift = 0.0
    cuts = [(p, p + cfg.recovery) for p in pushes]
    for s0, s1 in _segments(float(ts[0]), float(ts[-1]), cuts):
        seg = [w for w in clear if w.t0 >= s0 - 1e-6 and w.t1 < s1]
        if len(seg) > 1:
            c = np.array([w.centre for w in seg])
            drift = max(drift, float(np.linalg.norm(c - c[0], axis=1).max()) / ref.amp_mid)
    values["drift"] = drift
    if drift > cfg.drift_tol:
        failures.append("drift")
    if amps.min() < cfg.collapse * amp_lo:
        failures.append("dying-out")
    start_xy = base[min(int(np.searchsorted(t, measure_from)), len(t) - 1), :2]
    excursion = float(np.linalg.norm(base[t >= measure_from, :2] - start_xy, axis=1).max())
    values["base_excursion"] = excursion
    if excursion > cfg.divergence_radius or amps.max() > cfg.diverge_amp * amp_hi:
        failures.append("divergence")
    return RunMetrics(behaviour, not failures, failures, values)


def sequential_metrics(
    behaviour: str,
    t: FloatArray,
    base: FloatArray,
    joints: FloatArray,
    ee: FloatArray,
    ref: BehaviourReference,
    cfg: SuccessConfig = SuccessConfig(),
    measure_from: float = 0.0,
    pushes: Sequence[float] = (),
    holding: npt.NDArray[np.bool_] | None = None,
) -> RunMetrics:
    """Stations in the instructed order, then stop and stay stopped; time to complete (module docstring)."""
    order = spec(behaviour).order
    if not _finite(base, ee, joints):
        return RunMetrics(behaviour, False, ["divergence"], {"reason": "non-finite state"})
    sel = t >= measure_from
    # A touch already under way when the instruction changed is not a new touch.
    hits = [h for h in touches(t, ee, cfg.touch_radius, cfg.touch_height) if h[0] >= measure_from - 1e-9]
    names = [n for _, n in hits]
    values: dict[str, Any] = {"touches": [[round(a - measure_from, 3), n] for a, n in hits]}
    failures: list[str] = []
    prefix = 0
    while prefix < min(len(names), len(order)) and names[prefix] == order[prefix]:
        prefix += 1
    values["stations_in_order"] = prefix
    done_at = hits[len(order) - 1][0] if prefix == len(order) else None
    if len(names) > prefix:
        failures.append("order")  # a wrong station, or touches after the sequence was complete
    if done_at is None:
        values["time_to_complete"] = None
        failures.append("incomplete")
    else:
        ttc = done_at - measure_from
        values["time_to_complete"] = ttc
        values["time_rel"] = ttc / max(ref.completion[1], 1e-9)
        if ttc > cfg.max_time_factor * ref.completion[1]:
            failures.append("slow")
        settle = done_at + cfg.settle
        if t[-1] - settle < cfg.min_stay:
            failures.append("too-short")
        else:
            dt = float(t[1] - t[0])
            speed = np.linalg.norm(np.diff(base[:, :2], axis=0), axis=1) / dt  # (N - 1,)
            cuts = [(p, p + cfg.settle) for p in pushes]
            if holding is not None:
                cuts += hold_intervals(t, holding, cfg.hold_recovery)
            worst_speed = worst_disp = worst_joint = 0.0
            for s0, s1 in _segments(settle, float(t[-1]), cuts):
                m = (t >= s0) & (t < s1)
                if m.sum() < 2:
                    continue
                ms = m[1:] & m[:-1]
                worst_speed = max(worst_speed, float(speed[ms].max()) if ms.any() else 0.0)
                worst_disp = max(worst_disp, float(np.ptp(base[m, :2], axis=0).max()))
                worst_joint = max(worst_joint, float(np.ptp(joints[m], axis=0).max()))
            values.update(stop_speed=worst_speed, stop_disp=worst_disp, stop_joint=worst_joint)
            if worst_speed > cfg.stop_speed or worst_disp > cfg.stop_disp or worst_joint > cfg.stop_joint:
                failures.append("not-stopped")
    excursion = float(np.linalg.norm(base[sel, :2] - base[sel][0, :2], axis=1).max())
    values["base_excursion"] = excursion
    if excursion > 2 * cfg.divergence_radius:
        failures.append("divergence")
    return RunMetrics(behaviour, not failures, failures, values)


def evaluate_trajectory(
    traj: Any, ref: BehaviourReference, cfg: SuccessConfig = SuccessConfig()
) -> RunMetrics:
    """Metrics of a `closed_loop.Trajectory` against the reference of its measured behaviour."""
    behaviour = traj.meta["behaviour"]
    start = float(traj.meta.get("measure_from", 0.0))
    pushes = [float(p) for p in traj.meta.get("pushes", [])]
    if behaviour not in BEHAVIOURS:
        raise VandError(f"no metrics for behaviour {behaviour!r}; expected one of {list(robot.BEHAVIOURS)}")
    if spec(behaviour).periodic:
        out = periodic_metrics(behaviour, traj.t, traj.base, traj.ee, ref, cfg, start, pushes, traj.holding)
    else:
        out = sequential_metrics(
            behaviour, traj.t, traj.base, traj.joints, traj.ee, ref, cfg, start, pushes, traj.holding
        )
    out.values["hold_fraction"] = float(np.mean(traj.holding)) if len(traj.holding) else 0.0
    return out


def reference_from_trajectories(trajs: Sequence[Any]) -> dict[str, BehaviourReference]:
    """Per behaviour, what its demonstrations did (trajectories from bags or scripted runs)."""
    by: dict[str, list[Any]] = {}
    for tr in trajs:
        by.setdefault(tr.meta["behaviour"], []).append(tr)
    refs: dict[str, BehaviourReference] = {}
    for behaviour, group in sorted(by.items()):
        durations = [float(tr.t[-1] - tr.t[0]) for tr in group]
        b = spec(behaviour)
        if b.periodic:
            amps, freqs, shakes = [], [], []
            for tr in group:
                m = tr.t >= b.settle
                w = measure_window(b.motion, tr.t[m], b.moving_point(tr.base, tr.ee)[m], tr.ee[m])
                amps.append(w.amplitude)
                freqs.append(w.frequency)
                shakes.append(w.shake)
            refs[behaviour] = BehaviourReference(
                behaviour,
                len(group),
                max(durations),
                (min(amps), max(amps)),
                (min(freqs), max(freqs)),
                float(np.median(shakes)),
            )
        else:
            times = []
            for tr in group:
                hits = touches(tr.t, tr.ee)
                if [n for _, n in hits] != list(b.order):
                    raise VandError(
                        f"demonstration {tr.meta.get('source', '?')} of {behaviour} touches "
                        f"{[n for _, n in hits]}, expected {list(b.order)}; drop it"
                    )
                times.append(hits[-1][0] - float(tr.t[0]))
            refs[behaviour] = BehaviourReference(
                behaviour,
                len(group),
                max(durations),
                order=b.order,
                completion=(min(times), max(times)),
            )
    return refs


PERIODIC_CHECKS = ("amplitude", "frequency", "shake", "drift", "dying-out", "divergence")


def progress_score(behaviour: str, failures: Sequence[str], values: dict[str, Any]) -> float:
    """A secondary, continuous score in [0, 1] for runs that fail (success is the primary measure).

    Periodic: the fraction of the six checks (PERIODIC_CHECKS) the run passed; a diverged run scores 0.
    Sequential: the stations touched in the instructed order / the stations to visit (0 on divergence).
    """
    if "divergence" in failures:
        return 0.0
    if spec(behaviour).periodic:
        return 1.0 - sum(f in failures for f in PERIODIC_CHECKS) / len(PERIODIC_CHECKS)
    return float(values.get("stations_in_order", 0)) / len(spec(behaviour).order)
