"""Bags -> episodes -> Dataset, with real rosbag2 files (MCAP, sqlite3, zstd) written by the tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import Reader

from vand_ros.cli import main as cli_main
from vand_ros.data import bag_writer as bw
from vand_ros.data import cdr
from vand_ros.data.builder import build_dataset, extract_bag
from vand_ros.data.config import DataConfig
from vand_ros.data.dataset import Dataset, NormStats
from vand_ros.data.reader import TYPESTORE, BagError
from vand_ros.data.synthetic import Event, demo_events, write_demo_bag, write_events
from vand_ros.errors import VandError
from vand_ros.runtime.assembler import ObservationAssembler

CFG = DataConfig()
P = CFG.period_ns
ARM = CFG.topics.arm_command


def _gap(events: list[Event], topic: str, start_s: float, stop_s: float) -> list[Event]:
    t0 = events[0].ns
    return [e for e in events if not (e.topic == topic and start_s <= (e.ns - t0) / 1e9 < stop_s)]


@pytest.mark.parametrize(
    ("storage", "compress"), [("mcap", False), ("sqlite3", False), ("mcap", True), ("sqlite3", True)]
)
def test_storages_give_identical_episodes_and_the_action_is_the_command_at_the_tick(
    tmp_path: Path, storage: str, compress: bool
) -> None:
    events = demo_events(6.0, "wipe")
    bag = write_events(tmp_path / "bag", events, storage, compress)
    result = extract_bag(bag, CFG)
    assert result.report.status == "ok" and result.report.episodes == 1
    ep = result.episodes[0]
    # the grid starts at the first command; every command is the action of the tick it was sent at
    commands = [e for e in events if e.topic == ARM]
    first_valid = result.report.ticks - len(ep)
    for k in range(len(ep)):
        np.testing.assert_array_equal(ep.act[k, :6], commands[first_valid + k].msg.data.astype(np.float32))
    reference = extract_bag(write_events(tmp_path / "ref", events, "mcap"), CFG.with_(fast_cdr=False))
    np.testing.assert_array_equal(ep.obs, reference.episodes[0].obs)  # fast CDR == rosbags deserialisation
    np.testing.assert_array_equal(ep.act, reference.episodes[0].act)
    assert result.report.rates["/joint_states"] == pytest.approx(100.0, rel=0.01)


def test_node_side_replay_gives_the_dataset_observations_exactly(tmp_path: Path) -> None:
    """Feed the bag message by message, as the node receives them, through the node's message callbacks."""
    events = _gap(demo_events(12.0, "visit_abc", seed=3), CFG.topics.odom, 5.0, 5.6)  # splits the bag
    for e in events:  # a mid-bag change of the JointState name order, plus receive times after the stamps
        if e.topic == CFG.topics.joint_states and (e.ns - events[0].ns) > 8e9:
            order = np.arange(len(e.msg.name))[::-1]
            e.msg = bw.joint_state(e.ns, [e.msg.name[i] for i in order], e.msg.position[order])
            e.ns += 2_000_000
    events.sort(key=lambda e: e.ns)
    bag = write_events(tmp_path / "bag", events, "sqlite3", compress=True)
    dataset, _ = build_dataset([bag], CFG.with_(min_episode_ticks=1))
    assert len(dataset.episodes) == 2

    node = ObservationAssembler(CFG.assembler_config())
    callbacks = {
        CFG.topics.joint_states: node.on_joint_state,
        CFG.topics.odom: node.on_odometry,
        CFG.topics.features: node.on_features,
        CFG.topics.instruction: node.on_instruction,
    }
    ticks: list = []
    next_tick = None
    with Reader(bag) as reader:
        for conn, t, raw in reader.messages():
            if next_tick is None and conn.topic == ARM:
                next_tick = t  # the control grid starts with the demonstrator's first command
            while next_tick is not None and next_tick < t:
                ticks.append(node.assemble(next_tick))
                next_tick += P
            if conn.topic in callbacks:
                assert callbacks[conn.topic](TYPESTORE.deserialize_cdr(raw, conn.msgtype), t) is None
        while next_tick is not None and next_tick <= reader.end_time:
            ticks.append(node.assemble(next_tick))
            next_tick += P
    runs, run = [], []
    for o in ticks:
        if o.vector is None:
            runs, run = [*runs, run] if run else runs, []
        else:
            run.append(o.vector)
    runs.append(run)
    assert [len(r) for r in runs] == [len(e) for e in sorted(dataset.episodes, key=lambda e: e.source)]
    for r, ep in zip(runs, sorted(dataset.episodes, key=lambda e: e.source), strict=True):
        assert np.array_equal(np.stack(r), ep.obs)


def test_stale_stream_splits_the_episode_never_zero_fills(tmp_path: Path) -> None:
    events = _gap(demo_events(10.0), CFG.topics.features, 4.0, 5.0)
    result = extract_bag(write_events(tmp_path / "bag", events), CFG)
    assert result.report.episodes == 2
    assert result.report.invalid_ticks >= 15  # ~1 s without features minus the 0.3 s max age
    assert any("/camera/features: latest sample is" in k for k in result.report.invalid_reasons)
    for ep in result.episodes:
        assert np.isfinite(ep.obs).all()
        assert (np.abs(ep.obs[:, CFG.layout().obs_slices["features"]]).sum(1) > 0).all()


def test_instruction_change_splits_and_labels_episodes(tmp_path: Path) -> None:
    events = demo_events(8.0, "wipe")
    for e in events:
        if e.topic == CFG.topics.instruction and e.ns - events[0].ns >= 4e9:
            e.msg = bw.string("patrol")
    result = extract_bag(write_events(tmp_path / "bag", events), CFG)
    assert [e.behaviour for e in result.episodes] == ["wipe", "patrol"]
    assert result.report.behaviours == {"wipe": 1, "patrol": 1}


def test_split_by_episode_and_stats_from_training_split_only(tmp_path: Path) -> None:
    bags = [write_demo_bag(tmp_path / f"b{i}", 3.0, "wipe" if i < 5 else "patrol", seed=i) for i in range(8)]
    dataset, summary = build_dataset(bags, CFG)
    assert len(dataset.val) == 2 and len(dataset.train) == 6  # 20 % of each behaviour, by episode
    assert {e.behaviour for e in dataset.train} == {"wipe", "patrol"}
    ref = NormStats.from_episodes(dataset.train)
    np.testing.assert_array_equal(dataset.stats.obs_mean, ref.obs_mean)
    assert not np.array_equal(dataset.stats.obs_mean, NormStats.from_episodes(dataset.episodes).obs_mean)
    assert (dataset.stats.obs_std >= 1e-3).all()
    assert summary.to_dict()["episodes"] == 8


# -- bad input: each case is written by the test, named in the message, skipped by default ----------------
def _truncate(bag: Path) -> None:
    f = next(bag.glob("*.mcap"))
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def _corrupt(bag: Path) -> None:
    f = next(bag.glob("*.db3"))
    data = bytearray(f.read_bytes())
    data[: len(data) // 2] = b"\x5a" * (len(data) // 2)
    f.write_bytes(bytes(data))


def _edit(topic: str, fn):  # type: ignore[no-untyped-def]
    def apply(events: list[Event]) -> list[Event]:
        for e in events:
            if e.topic == topic and e.ns - events[0].ns > 1.5e9:
                fn(e)
                break
        return events

    return apply


def _nan_joint(e: Event) -> None:
    e.msg.position[0] = np.nan


def _short_features(e: Event) -> None:
    e.msg = bw.float32_array(np.zeros(23), ())


def _short_command(e: Event) -> None:
    e.msg = bw.float64_array(np.zeros(5))


def _backwards(e: Event) -> None:
    e.msg = bw.joint_state(e.ns - 500_000_000, e.msg.name, e.msg.position)


JS, ODOM, FEAT, INSTR = CFG.topics.joint_states, CFG.topics.odom, CFG.topics.features, CFG.topics.instruction
BAD_CASES = {
    # name: (edit events, edit written files, storage, expected kind, topic named in the message, hint words)
    "truncated": (None, _truncate, "mcap", "unreadable", "", "reindex"),
    "corrupt": (None, _corrupt, "sqlite3", "unreadable", "", "re-record"),
    "empty": (lambda ev: [], None, "mcap", "empty", "", "record"),
    "missing_topic": (
        lambda ev: [e for e in ev if e.topic != ODOM],
        None,
        "mcap",
        "missing-topic",
        ODOM,
        "topics.odom",
    ),
    "wrong_feature_length": (_edit(FEAT, _short_features), None, "mcap", "size", FEAT, "sizes agree"),
    "wrong_command_length": (_edit(ARM, _short_command), None, "sqlite3", "size", ARM, "joint_names"),
    "nan": (_edit(JS, _nan_joint), None, "mcap", "non-finite", JS, "publisher"),
    "unknown_joints": (
        lambda ev: [
            Event(e.topic, e.ns, bw.joint_state(e.ns, [f"j{i}" for i in range(8)], e.msg.position), e.msgtype)
            if e.topic == JS
            else e
            for e in ev
        ],
        None,
        "mcap",
        "joint-names",
        JS,
        "joint_names",
    ),
    "time_backwards": (_edit(JS, _backwards), None, "mcap", "time-backwards", JS, "clock jump"),
    "no_instruction": (
        lambda ev: [e for e in ev if e.topic != INSTR],
        None,
        "mcap",
        "no-instruction",
        INSTR,
        "default_instruction",
    ),
}


def _write_bad(tmp_path: Path, name: str) -> Path:
    edit_events, edit_files, storage, *_ = BAD_CASES[name]
    events = demo_events(3.0)
    if edit_events is not None:
        events = edit_events(events)
    bag = tmp_path / name
    if not events:  # an empty bag: topics, no messages
        with bw.BagWriter(bag, storage=storage) as w:
            w.add_topic(JS, "sensor_msgs/msg/JointState")
    else:
        write_events(bag, events, storage)
    if edit_files is not None:
        edit_files(bag)
    return bag


@pytest.mark.parametrize("name", list(BAD_CASES))
def test_bad_bag_is_skipped_with_a_clear_message_and_strict_is_fatal(tmp_path: Path, name: str) -> None:
    *_, kind, topic, hint = BAD_CASES[name]
    good = write_demo_bag(tmp_path / "good", 3.0)
    bad = _write_bad(tmp_path, name)
    warnings: list[str] = []
    dataset, summary = build_dataset([good, bad], CFG, warn=warnings.append)
    assert len(dataset.episodes) == 1  # the good bag is still used
    [skipped] = summary.skipped
    assert skipped.kind == kind, skipped.problem
    assert str(bad) in skipped.problem and topic in skipped.problem and hint in skipped.problem
    assert "What to do:" in skipped.problem
    assert len(warnings) == 1 and str(bad) in warnings[0]
    with pytest.raises(BagError) as err:
        build_dataset([good, bad], CFG, strict=True)
    assert err.value.kind == kind and err.value.path == str(bad)


def test_default_instruction_labels_bags_without_one(tmp_path: Path) -> None:
    bag = _write_bad(tmp_path, "no_instruction")
    result = extract_bag(bag, CFG.with_(default_instruction="patrol"))
    assert [e.behaviour for e in result.episodes] == ["patrol"]


def test_no_usable_bag_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(VandError, match="no usable episodes"):
        build_dataset([_write_bad(tmp_path, "nan")], CFG, warn=lambda _: None)


# -- cache, config, CLI -----------------------------------------------------------------------------------
def test_cache_keyed_by_bag_content_and_config(tmp_path: Path) -> None:
    bags = [write_demo_bag(tmp_path / f"b{i}", 3.0, seed=i) for i in range(2)]
    cache = tmp_path / "cache"
    first, s1 = build_dataset(bags, CFG, cache_dir=cache)
    again, s2 = build_dataset(bags, CFG, cache_dir=cache)
    assert (s1.cached, s2.cached) == (0, 2)
    for a, b in zip(first.episodes, again.episodes, strict=True):
        assert np.array_equal(a.obs, b.obs) and np.array_equal(a.act, b.act)
    _, s3 = build_dataset(bags, CFG.with_(max_age_odom=0.15), cache_dir=cache)
    assert s3.cached == 0  # another configuration
    _, s4 = build_dataset(bags, CFG.with_(seed=7), cache_dir=cache)
    assert s4.cached == 2  # the split seed does not change what a bag gives
    f = next(bags[0].glob("*.mcap"))
    data = bytearray(f.read_bytes())
    _, s5 = build_dataset([bags[1]], CFG, cache_dir=cache)
    assert s5.cached == 1
    f.write_bytes(bytes(data[:-1]) + bytes([data[-1] ^ 1]))  # one bit of content changed
    _, s6 = build_dataset(bags, CFG, cache_dir=cache, warn=lambda _: None)
    assert s6.cached == 1


def test_config_round_trip_and_errors(tmp_path: Path) -> None:
    cfg = CFG.with_(control_rate=10.0, max_age_instruction=2.0)
    assert DataConfig.from_json(cfg.to_json()) == cfg
    path = tmp_path / "c.yaml"
    path.write_text("control_rate: 25\ntopics:\n  odom: /base/odom\n")
    loaded = DataConfig.load(path)
    assert (
        loaded.control_rate == 25
        and loaded.topics.odom == "/base/odom"
        and loaded.joint_names == CFG.joint_names
    )
    path.write_text('{"contrl_rate": 25}')
    with pytest.raises(VandError, match="contrl_rate"):
        DataConfig.load(path)
    with pytest.raises(VandError, match="default_instruction"):
        DataConfig(default_instruction="dance")
    assert cfg.layout().to_dict()["obs"]["instruction"] == [33, 37]


def test_cli_writes_dataset_config_and_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bags = tmp_path / "bags"
    write_demo_bag(bags / "wipe_0", 3.0, "wipe")
    write_demo_bag(bags / "patrol_0", 3.0, "patrol", storage="sqlite3")
    bad = _write_bad(bags, "nan")
    out = tmp_path / "ds"
    code = cli_main(["dataset", str(bags), "--out", str(out), "--quiet", "--cache", str(tmp_path / "c")])
    assert code == 0
    text = capsys.readouterr()
    assert "skipped (non-finite)" in text.out and str(bad) in text.out and "patrol x1" in text.out
    assert str(bad) in text.err  # the warning
    ds = Dataset.load(out)
    assert len(ds.episodes) == 2 and ds.summary["bags_skipped"] == 1
    assert DataConfig.from_json((out / "data_config.json").read_text()) == CFG
    code = cli_main(["dataset", str(bags), "--out", str(out), "--quiet", "--strict", "--no-cache"])
    assert code == 1 and str(bad) in capsys.readouterr().err


# -- the fast CDR parsers against rosbags ------------------------------------------------------------------
@pytest.mark.parametrize("frame", ["", "a", "ab", "abc", "base_link"])
def test_fast_cdr_parsers_match_rosbags(frame: str) -> None:
    def ser(msg: object, t: str) -> bytes:
        return bytes(TYPESTORE.serialize_cdr(msg, t))

    js = bw.joint_state(123_456_789_012, ["a", "bb", "ccc", "dddd", "e" * 5], [0.1, -2, 3.5, 1e-9, 7])
    js.header.frame_id = frame
    stamp, names, pos, vel = cdr.joint_state(ser(js, "sensor_msgs/msg/JointState"))
    assert stamp == 123_456_789_012 and list(names) == js.name and np.array_equal(pos, js.position)
    assert vel.size == 0  # no velocities in the message
    moving = bw.joint_state(7, ["a", "bb"], [0.1, -2], [0.5, -1.25])
    moving.header.frame_id = frame
    stamp, names, pos, vel = cdr.joint_state(ser(moving, "sensor_msgs/msg/JointState"))
    assert np.array_equal(pos, [0.1, -2]) and np.array_equal(vel, [0.5, -1.25])
    od = bw.odometry(
        5, (1, 2), 0.3, (0.1, 0.2, 0.3), (0.4, 0.5, 0.6), frame_id=frame, child_frame_id=frame + "x"
    )
    assert cdr.odometry_twist(ser(od, "nav_msgs/msg/Odometry")) == (5, (0.1, 0.2, 0.3, 0.4, 0.5, 0.6))
    fa = bw.float32_array(np.arange(7, dtype=np.float32), [(frame + "e", 7), ("f", 1)])
    dims, data = cdr.float32_multi_array(ser(fa, "std_msgs/msg/Float32MultiArray"))
    assert dims == [(frame + "e", 7), ("f", 1)] and np.array_equal(data, fa.data)
    fd = bw.float64_array([1.5, -2.5, 3.25], [(frame, 3)])
    assert np.array_equal(cdr.float64_multi_array(ser(fd, "std_msgs/msg/Float64MultiArray"))[1], fd.data)
    ts = bw.twist_stamped(9, (1, 2, 3), (4, 5, 6), frame_id=frame)
    assert cdr.twist_stamped(ser(ts, "geometry_msgs/msg/TwistStamped")) == (9, (1, 2, 3, 4, 5, 6))
    assert cdr.string(ser(bw.string(frame), "std_msgs/msg/String")) == frame
    with pytest.raises(cdr.CdrError):
        cdr.joint_state(ser(js, "sensor_msgs/msg/JointState")[:20])


def test_bench_data_runs_and_reports_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main(["bench", "data", "--messages", "3000", "--repeats", "1", "--dir", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    doc = json.loads(out[: out.index("\n}\n") + 2])
    for storage in ("mcap", "sqlite3"):
        res = doc["bags"][storage]
        assert res["messages"] >= 3000 and res["msgs_per_s"]["builder"] > 0 and res["ticks"] > 0
