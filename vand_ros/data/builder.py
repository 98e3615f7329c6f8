"""Bags -> episodes -> Dataset: the offline side of the observation assembler.

For each bag, every message of the configured topics is fed, in receive-time order, to the same
`ObservationAssembler` the node uses live, and the observation is asked for at each tick of the control
grid. The grid starts at the first command the demonstrator sent (so its ticks are the demonstrator's) and
has the configured rate. The action of tick `t` is the command the demonstrator sent in response to the
observation of `t` (arm targets from /arm_controller/commands, base twist from /cmd_vel): the last one sent
before the next tick (`ActionAssembler`). A tick is valid when both are; invalid ticks split the bag into
episodes, as does a change of instruction. Stretches shorter than `min_episode_ticks` are dropped.

A message the assembler rejects (wrong size, NaN/Inf, missing joints, time going backwards, a word outside
the vocabulary), an undecodable message, a corrupt/truncated/empty bag, a missing topic or a missing
instruction makes the whole bag bad: a `BagError` naming the file, the topic and what to do. The builder
skips such a bag with a warning and lists it in the summary, or stops (`strict=True`).
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vand_ros.data import cdr
from vand_ros.data.config import DataConfig
from vand_ros.data.dataset import Dataset, Episode
from vand_ros.data.reader import BagError, BagSource, deserialize, find_bags
from vand_ros.data.recording import episode_kind
from vand_ros.errors import VandError
from vand_ros.runtime.assembler import (
    Action,
    ActionAssembler,
    Observation,
    ObservationAssembler,
    Rejection,
    cause_of,
    sample_time,
)

BUILDER_VERSION = 2  # bump when the extraction changes what a bag turns into (invalidates the cache)


@dataclass
class BagReport:
    """What one bag gave (or why it was skipped)."""

    bag: str
    status: str = "ok"  # ok | skipped
    kind: str = ""  # problem category when skipped
    problem: str = ""  # the full message when skipped
    topic: str = ""
    hint: str = ""
    messages: int = 0
    duration_s: float = 0.0  # bag span [s]
    ticks: int = 0
    valid_ticks: int = 0
    invalid_ticks: int = 0
    dropped_ticks: int = 0  # valid ticks in stretches shorter than min_episode_ticks
    episodes: int = 0
    episode_s: float = 0.0  # total episode duration [s]
    rates: dict[str, float] = field(default_factory=dict)  # topic -> [Hz]
    behaviours: dict[str, int] = field(default_factory=dict)  # behaviour -> episodes
    episode_kind: str = ""  # how its demonstration was made (data.recording.KIND_KEY); "" unknown
    invalid_reasons: dict[str, int] = field(default_factory=dict)  # reason pattern -> ticks

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BagReport:
        return cls(**d)

    def error(self) -> BagError:
        return BagError(self.bag, self.topic, self.problem, self.hint, self.kind)


@dataclass
class BagResult:
    episodes: list[Episode]
    report: BagReport


Handler = Callable[[int, bytes], "Rejection | None"]


def _handlers(
    src: BagSource, obs: ObservationAssembler, act: ActionAssembler, fast: bool
) -> tuple[dict[int, Handler], set[int]]:
    """A (receive time, raw CDR) -> Rejection|None function per connection id; and the action ids."""
    out: dict[int, Handler] = {}
    actions: set[int] = set()
    for role, conns in src.connections.items():
        for conn in conns:
            out[conn.id] = _handler(role, conn.msgtype, obs, act, fast)
            if role in ("arm_command", "cmd_vel"):
                actions.add(conn.id)
    return out, actions


def _handler(role: str, msgtype: str, obs: ObservationAssembler, act: ActionAssembler, fast: bool) -> Handler:
    def slow(t: int, raw: bytes) -> Rejection | None:
        msg = deserialize(raw, msgtype)
        if role == "joint_states":
            return obs.on_joint_state(msg, t)
        if role == "odom":
            return obs.on_odometry(msg, t)
        if role == "features":
            return obs.on_features(msg, t)
        if role == "instruction":
            return obs.on_instruction(msg, t)
        if role == "arm_command":
            return act.on_arm_command(msg, t)
        return act.on_cmd_vel(msg, t)

    if not fast:
        return slow

    def fallback(fn: Handler) -> Handler:
        def h(t: int, raw: bytes) -> Rejection | None:
            try:
                return fn(t, raw)
            except cdr.CdrError:
                return slow(t, raw)  # big-endian or malformed: rosbags decides (and may raise)

        return h

    if role == "joint_states":
        update_joints = obs.update_joints

        def joints(t: int, raw: bytes) -> Rejection | None:
            stamp, names, pos, vel = cdr.joint_state(raw)
            return update_joints(stamp or t, names, pos, vel)

        return fallback(joints)
    if role == "odom":
        update_base = obs.update_base

        def odom(t: int, raw: bytes) -> Rejection | None:
            stamp, tw = cdr.odometry_twist(raw)
            return update_base(stamp or t, tw)

        return fallback(odom)
    if role == "features":

        def features(t: int, raw: bytes) -> Rejection | None:
            dims, data = cdr.float32_multi_array(raw)
            return obs.update_features(t, data, dims)

        return fallback(features)
    if role == "instruction":
        return fallback(lambda t, raw: obs.update_instruction(t, cdr.string(raw)))
    if role == "arm_command":
        return fallback(lambda t, raw: act.update_arm(t, cdr.float64_multi_array(raw)[1]))
    if msgtype.endswith("TwistStamped"):

        def cmd_stamped(t: int, raw: bytes) -> Rejection | None:
            stamp, tw = cdr.twist_stamped(raw)
            return act.update_cmd(sample_time(stamp, t), tw)

        return fallback(cmd_stamped)
    return fallback(lambda t, raw: act.update_cmd(t, cdr.twist(raw)))


def extract_bag(path: str | Path, config: DataConfig) -> BagResult:
    """Episodes of one bag. Raises `BagError` when the bag cannot be used (see the module docstring)."""
    path = Path(path)
    t = config.topics
    roles = {
        "joint_states": t.joint_states,
        "odom": t.odom if config.base_axes else "",
        "features": t.features if config.feature_entities else "",
        "instruction": t.instruction,
        "arm_command": t.arm_command,
        "cmd_vel": t.cmd_vel if config.base_axes else "",
    }
    optional = ["instruction"]  # a missing instruction gets its own message below
    acfg = config.assembler_config()
    obs_asm = ObservationAssembler(acfg)
    act_asm = ActionAssembler(acfg, config.control_rate)
    P = config.period_ns
    report = BagReport(bag=str(path))
    with BagSource(path, roles, optional) as src:
        # How the demonstration was made: rosbag2 keeps custom_data in a bag directory's metadata.yaml
        # (read once the bag opened, so a broken metadata.yaml is the BagError that opening it raised).
        report.episode_kind = episode_kind(path) if path.is_dir() else ""
        counts = src.topic_counts()
        report.messages = sum(counts.values())
        if counts.get(t.instruction, 0) == 0 and config.default_instruction is None:
            raise BagError(
                path,
                t.instruction,
                "the bag has no instruction message, so its behaviour is unknown",
                f"publish the behaviour word (one of {list(config.vocabulary)}) on {t.instruction} while "
                "recording, or set default_instruction in the configuration for bags of one behaviour",
                "no-instruction",
            )
        handlers, action_ids = _handlers(src, obs_asm, act_asm, config.fast_cdr)
        if config.default_instruction is not None and counts.get(t.instruction, 0) == 0:
            obs_asm.update_instruction(src.start_ns, config.default_instruction)
        never = 1 << 62
        next_obs = next_query = never
        observations: list[Observation] = []
        actions: list[Action] = []
        assemble_obs, assemble_act = obs_asm.assemble, act_asm.assemble
        first_t = last_t = None
        for conn, recv, raw in src.messages():
            # Ticks (and action query times) before this message are complete: all at or before was fed.
            while next_obs < recv:
                observations.append(assemble_obs(next_obs))
                next_obs += P
            while next_query < recv:
                actions.append(assemble_act(next_query - P + 1))
                next_query += P
            cid = conn.id
            if next_obs == never and cid in action_ids:
                next_obs, next_query = recv, recv + P - 1  # the grid starts at the first command
            try:
                rejection = handlers[cid](recv, raw)
            except BagError:
                raise
            except Exception as err:
                raise BagError(
                    path,
                    conn.topic,
                    f"a message at {(recv - src.start_ns) / 1e9:.3f} s into the bag cannot be decoded "
                    f"as {conn.msgtype} ({type(err).__name__}: {err})",
                    "the bag is corrupt or was written with another definition of the type; re-record it",
                    "undecodable",
                ) from None
            if rejection is not None:
                raise BagError(
                    path,
                    rejection.topic,
                    f"message at {(recv - src.start_ns) / 1e9:.3f} s into the bag: {rejection.reason}",
                    rejection.hint,
                    rejection.kind,
                )
            if first_t is None:
                first_t = recv
            last_t = recv
    if first_t is None or last_t is None:
        raise BagError(
            path, "", "the bag holds no messages on the configured topics", "re-record it", "empty"
        )
    if next_obs == never:
        raise BagError(
            path,
            t.arm_command,
            "the demonstrator sent no command, so there is no action to learn",
            f"record the commands on {t.arm_command} (and {t.cmd_vel}) with the observations",
            "no-commands",
        )
    while next_obs <= last_t:  # the ticks up to the end of the bag, with every message fed
        observations.append(assemble_obs(next_obs))
        next_obs += P
    while len(actions) < len(observations):
        actions.append(assemble_act(observations[len(actions)].tick_ns))

    duration = max(last_t - first_t, 1) / 1e9
    report.duration_s = duration
    report.rates = {topic: n / duration for topic, n in sorted(counts.items())}
    episodes = _segment(path, observations, actions, config, report)
    if not episodes:
        top = ", ".join(f"{r} ({n} ticks)" for r, n in Counter(report.invalid_reasons).most_common(3))
        raise BagError(
            path,
            "",
            f"no stretch of at least {config.min_episode_ticks} valid ticks "
            f"({report.valid_ticks} of {report.ticks} ticks valid; invalid because: {top or 'too short'})",
            "check the recording's rates against the max ages in the configuration, or lower "
            "min_episode_ticks",
            "no-episode",
        )
    return BagResult(episodes, report)


def _segment(
    path: Path,
    observations: Sequence[Observation],
    actions: Sequence[Action],
    config: DataConfig,
    report: BagReport,
) -> list[Episode]:
    """Split the tick sequence at invalid ticks and instruction changes; keep long enough stretches. Every
    episode gets the bag's episode kind (`report.episode_kind`)."""
    episodes: list[Episode] = []
    reasons: Counter[str] = Counter()
    run_obs: list[np.ndarray] = []
    run_act: list[np.ndarray] = []
    run_word: str | None = None
    dropped = 0

    def close() -> None:
        nonlocal dropped
        if not run_obs:
            return
        if len(run_obs) >= config.min_episode_ticks and run_word is not None:
            episodes.append(
                Episode(
                    obs=np.stack(run_obs),  # (T, D)
                    act=np.stack(run_act),  # (T, A)
                    behaviour=run_word,
                    source=f"{path.name}#{len(episodes)}",
                    kind=report.episode_kind,
                )
            )
        else:
            dropped += len(run_obs)
        run_obs.clear()
        run_act.clear()

    valid = 0
    for o, a in zip(observations, actions, strict=True):
        if o.vector is None or a.vector is None:
            reasons.update(cause_of(r) for r in o.reasons + a.reasons)
            close()
            continue
        valid += 1
        if o.instruction != run_word:
            close()
            run_word = o.instruction
        run_obs.append(o.vector)
        run_act.append(a.vector)
    close()
    report.ticks = len(observations)
    report.valid_ticks = valid
    report.invalid_ticks = len(observations) - valid
    report.dropped_ticks = dropped
    report.episodes = len(episodes)
    report.episode_s = sum(len(e) for e in episodes) / config.control_rate
    report.behaviours = dict(Counter(e.behaviour for e in episodes))
    report.invalid_reasons = dict(reasons.most_common())
    return episodes


@dataclass
class BuildSummary:
    """Every bag's report, in input order, plus totals."""

    reports: list[BagReport]
    seconds: float = 0.0
    cached: int = 0

    @property
    def skipped(self) -> list[BagReport]:
        return [r for r in self.reports if r.status != "ok"]

    def to_dict(self) -> dict[str, Any]:
        ok = [r for r in self.reports if r.status == "ok"]
        behaviours: Counter[str] = Counter()
        kinds: Counter[str] = Counter()
        for r in ok:
            behaviours.update(r.behaviours)
            kinds[r.episode_kind or "unknown"] += r.episodes
        return {
            "bags": len(self.reports),
            "bags_used": len(ok),
            "bags_skipped": len(self.reports) - len(ok),
            "episodes": sum(r.episodes for r in ok),
            "episode_s": sum(r.episode_s for r in ok),
            "ticks": sum(r.ticks for r in ok),
            "invalid_ticks": sum(r.invalid_ticks for r in ok),
            "behaviours": dict(sorted(behaviours.items())),
            "episode_kinds": dict(sorted(kinds.items())),
            "skipped": [{"bag": r.bag, "kind": r.kind, "problem": r.problem} for r in self.skipped],
            "per_bag": [r.to_dict() for r in self.reports],
        }


def build_dataset(
    paths: Iterable[str | Path],
    config: DataConfig,
    strict: bool = False,
    cache_dir: str | Path | None = None,
    progress: bool = False,
    warn: Callable[[str], None] | None = None,
    repair: bool = True,
) -> tuple[Dataset, BuildSummary]:
    """Bags (directories, .mcap/.db3 files or folders of them) -> a split Dataset with statistics.

    `strict`: the first bad bag raises its `BagError`; otherwise it is skipped with a warning (`warn`, by
    default printed to stderr) and listed in the summary. `cache_dir`: per-bag results keyed by the bag's
    content and the configuration, so building again does not re-read unchanged bags. `repair`: recordings
    that were cut short are repaired first (`data.recording.repair`, which keeps the originals); without
    it they are bad bags.
    """
    from vand_ros.data.cache import BagCache
    from vand_ros.data.recording import needs_repair
    from vand_ros.data.recording import repair as repair_bag

    warn = warn or (lambda text: print(f"warning: {text}", file=sys.stderr))
    bags = find_bags(paths)
    for bag in bags if repair else ():
        if needs_repair(bag):
            try:
                warn(f"repaired an unfinished recording: {repair_bag(bag).describe()}")
            except VandError as err:
                warn(f"cannot repair {bag}: {err}")
    cache = BagCache(cache_dir) if cache_dir is not None else None
    t0 = time.perf_counter()
    summary = BuildSummary(reports=[])
    episodes: list[Episode] = []
    iterator: Iterable[Path] = bags
    if progress:
        from tqdm import tqdm

        iterator = tqdm(bags, unit="bag", desc="reading bags", file=sys.stderr)
    for bag in iterator:
        result: BagResult | None = None
        key = cache.key(bag, config) if cache is not None else None
        if cache is not None and key is not None:
            result = cache.get(key, bag)
            if result is not None:
                summary.cached += 1
        if result is None:
            try:
                result = extract_bag(bag, config)
            except BagError as err:
                result = BagResult(
                    [], BagReport(str(bag), "skipped", err.kind, str(err), err.topic, err.hint)
                )
            if cache is not None and key is not None:
                cache.put(key, result)
        report = result.report
        summary.reports.append(report)
        if report.status != "ok":
            if strict:
                raise report.error()
            warn(f"skipping bag: {report.problem}")
            continue
        episodes += result.episodes
    summary.seconds = time.perf_counter() - t0
    if not episodes:
        lines = "\n".join(f"  {r.problem}" for r in summary.skipped)
        raise VandError(f"no usable episodes in {len(bags)} bag(s); skipped:\n{lines}")
    meta = {"config": config.to_dict(), "builder_version": BUILDER_VERSION, **summary.to_dict()}
    dataset = Dataset.from_episodes(
        config.layout(), config.control_rate, episodes, config.val_fraction, config.seed, meta
    )
    return dataset, summary
