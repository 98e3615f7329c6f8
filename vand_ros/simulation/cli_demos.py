"""`vand-ros demos --behaviour NAME --episodes N --out DIR`: scripted demonstrations, one rosbag2 each.

Runs the sim and the demonstrator in this process, as fast as the CPU allows, and writes each episode
with the same topics, types, rates and stamps (receive time = sim time) as `vand-ros record` gets from a
running `vand-ros sim --demonstrator NAME` over DDS. Episode e of seed S uses the same parameters in both.

`--perturb dart|push|dart+push` writes recovery demonstrations (see `vand_ros.simulation.perturb`): the
simulation adds correlated noise to the executed commands and/or pushes the robot mid-episode, the
scripted demonstrator reacts in closed loop, and the bag records its clean commands as the actions.
Deterministic from the seed; same task parameters as the clean episode with the same seed and index.

`--switch` writes switch demonstrations (`simulation.demonstrators.make_switch`): each episode starts as
the behaviour's `switch_from` behaviour and switches to the behaviour at a whole second in 3-40 s
(mid-course, or after the first behaviour has finished), what the evaluation's `switch` condition asks of
a policy; behaviours without a `switch_from` (wipe) are skipped. Combines with `--perturb`.

`--max-delay S` executes every command of an episode a delay after its tick (latency, as over DDS), drawn
per episode in 10 ms steps from [0, S]; the bag records the command at its tick. Combines with the others.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from vand_ros import robot
from vand_ros.errors import VandError
from vand_ros.simulation.perturb import PRESETS, Perturbation


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--behaviour", required=True, choices=(*robot.BEHAVIOURS, "all"))
    parser.add_argument("--episodes", type=int, default=1, help="episodes per behaviour")
    parser.add_argument("--out", required=True, help="output directory; bags go to OUT/<behaviour>_<NNN>")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--first-episode",
        type=int,
        default=0,
        help="index of the first episode (task parameters differ per index; `vand-ros demo` numbers its "
        "recovery episodes after the clean ones)",
    )
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    parser.add_argument("--compress", action="store_true")
    parser.add_argument("--duration", type=float, default=0.0, help="override each episode's length [s]")
    parser.add_argument("--with-clock", action="store_true", help="also write /clock")
    parser.add_argument(
        "--perturb",
        choices=PRESETS,
        default="none",
        help="recovery data: noise on the executed commands (dart), pushes mid-episode (push), or both",
    )
    parser.add_argument(
        "--dart-scale", type=float, default=1.0, help="multiply the dart noise (arm 0.05 rad, base 0.05 m/s)"
    )
    parser.add_argument(
        "--dart-base-scale",
        type=float,
        help="multiply the base's dart noise by this instead (default: --dart-scale); the arm's shrinks the "
        "learned arm motion when large, the base's teaches the visits' approaches (docs/learnability.md)",
    )
    parser.add_argument("--pushes", type=int, default=2, help="pushes per episode with --perturb *push")
    parser.add_argument(
        "--max-delay",
        type=float,
        default=0.0,
        metavar="S",
        help="execute commands late by a per-episode delay drawn in 10 ms steps from [0, S] (S < 0.05 s)",
    )
    parser.add_argument(
        "--switch",
        action="store_true",
        help="start as the behaviour's switch_from behaviour and switch to it mid-episode (not for wipe)",
    )


def episode_kind(perturbation: Perturbation | None, switch: bool) -> str:
    """What the bag's custom_data says about the episode (data.recording.KIND_KEY): "clean", or the parts
    "switch" (`--switch`), "recovery" (DART noise or pushes) and "delayed" (`--max-delay`) joined by '+'."""
    p = perturbation or Perturbation()
    parts = ["switch"] if switch else []
    if p.dart_arm > 0 or any(v > 0 for v in p.dart_base) or p.pushes > 0:
        parts.append("recovery")
    if p.max_delay > 0:
        parts.append("delayed")
    return "+".join(parts) or "clean"


def write_episode(
    behaviour: str, seed: int, episode: int, path: Path, storage: str = "mcap", compress: bool = False,
    duration: float = 0.0, with_clock: bool = False, perturbation: Perturbation | None = None,
    switch: bool = False,
) -> int:  # fmt: skip
    """Simulate one demonstration and write it to the bag `path`; returns the number of messages.

    With an active `perturbation`, the episode is a recovery demonstration; with `switch`, a switch
    demonstration, as long as the switch time plus the behaviour's episode (module docstring)."""
    from vand_ros.data.bag_writer import BagWriter
    from vand_ros.data.recording import KIND_KEY
    from vand_ros.simulation import demonstrators as D
    from vand_ros.simulation import perturb as P
    from vand_ros.simulation.bagsink import BagSink
    from vand_ros.simulation.physics import Sim
    from vand_ros.simulation.runner import Runner

    demo: D.Demonstrator
    handover: D.Switch | None
    if switch:
        demo, handover = D.make_switch(behaviour, seed, episode)
    else:
        demo, handover = D.make(behaviour, D.episode_rng(seed, episode, behaviour)), None
    length = duration or (handover.at + handover.then.duration if handover else demo.duration)
    disturber = None
    if perturbation is not None and perturbation.active:
        disturber = P.Disturber(perturbation, length, P.rng(seed, episode, behaviour))
    custom = {KIND_KEY: episode_kind(perturbation, switch)}
    with BagWriter(path, storage=storage, compress=compress, custom_data=custom) as bag:
        runner = Runner(Sim(), BagSink(bag, with_clock=with_clock), demo, disturber, handover)
        runner.start()
        runner.run(length)
        return bag.count


def run(args: argparse.Namespace) -> int:
    if args.episodes < 1 or args.first_episode < 0:
        raise VandError(
            f"--episodes {args.episodes} --first-episode {args.first_episode}: expected >= 1, >= 0"
        )
    perturbation = Perturbation.preset(
        args.perturb, args.dart_scale, args.pushes, args.dart_base_scale, args.max_delay
    )
    behaviours = robot.BEHAVIOURS if args.behaviour == "all" else (args.behaviour,)
    if args.switch:
        from vand_ros.simulation.behaviours import spec

        if not any(spec(b).switch_from for b in behaviours):
            raise VandError(f"--switch: {args.behaviour} has no switch_from behaviour to switch from")
        behaviours = tuple(b for b in behaviours if spec(b).switch_from)
    out = Path(args.out)
    for behaviour in behaviours:
        for ep in range(args.first_episode, args.first_episode + args.episodes):
            path = out / f"{behaviour}_{ep:03d}"
            t0 = time.perf_counter()
            n = write_episode(
                behaviour, args.seed, ep, path, args.storage, args.compress, args.duration, args.with_clock,
                perturbation, args.switch,
            )  # fmt: skip
            print(f"{path}: {n} messages in {time.perf_counter() - t0:.2f} s")
    return 0
