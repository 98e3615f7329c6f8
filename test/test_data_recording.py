"""Recordings that survive their recorder: split MCAP files, metadata from the start, repair after a crash.

Every bag here is read back with rosbags' own reader (what `vand-ros dataset` and users' tools read with),
so a layout mistake in the streaming MCAP writer fails these tests.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from vand_ros.data import bag_writer as bw
from vand_ros.data.mcap_stream import scan
from vand_ros.data.recording import RecordingBag, needs_repair, read_metadata, recording_state, repair
from vand_ros.errors import VandError

JS = "sensor_msgs/msg/JointState"
TW = "geometry_msgs/msg/Twist"
RATE = 50  # [Hz] of the synthetic stream


def joint_cdr(i: int) -> bytes:
    ns = i * 1_000_000_000 // RATE
    return bytes(bw.TYPESTORE.serialize_cdr(bw.joint_state(ns, ["j"], [float(i)]), JS))


def write_stream(bag: RecordingBag, first: int, last: int, flush_every: int = 0) -> None:
    """Messages first..last-1 on /joint_states (position = index) and every 5th on /cmd_vel."""
    for i in range(first, last):
        ns = i * 1_000_000_000 // RATE
        bag.write_raw("/joint_states", ns, joint_cdr(i), JS)
        if i % 5 == 0:
            cdr = bytes(bw.TYPESTORE.serialize_cdr(bw.twist((i, 0, 0), (0, 0, 0)), TW))
            bag.write_raw("/cmd_vel", ns, cdr, TW)
        if flush_every and (i + 1) % flush_every == 0:
            bag.flush()


def read_positions(path: Path) -> tuple[list[float], dict[str, int]]:
    """/joint_states positions in order, and messages per topic, read with rosbags."""
    out: list[float] = []
    counts: dict[str, int] = {}
    with AnyReader([path]) as reader:
        for conn, _, raw in reader.messages():
            counts[conn.topic] = counts.get(conn.topic, 0) + 1
            if conn.topic == "/joint_states":
                out.append(float(reader.deserialize(raw, conn.msgtype).position[0]))
    return out, counts


def test_split_recording_reads_back_exactly_with_rosbags(tmp_path: Path) -> None:
    bag = RecordingBag(tmp_path / "rec", max_duration=1.0)
    write_stream(bag, 0, 5 * RATE, flush_every=7)
    bag.close()
    files = sorted(p.name for p in (tmp_path / "rec").glob("*.mcap"))
    assert files == [f"rec_{i}.mcap" for i in range(5)]  # 5 s in files of 1 s, rosbag2's names
    positions, counts = read_positions(tmp_path / "rec")
    assert positions == [float(i) for i in range(5 * RATE)]
    assert counts == {"/joint_states": 5 * RATE, "/cmd_vel": RATE}
    meta = read_metadata(tmp_path / "rec")
    assert meta["relative_file_paths"] == files and meta["message_count"] == 6 * RATE
    assert [f["message_count"] for f in meta["files"]] == [RATE * 6 // 5] * 5
    assert recording_state(tmp_path / "rec") == "complete" and not needs_repair(tmp_path / "rec")


def test_split_by_size(tmp_path: Path) -> None:
    bag = RecordingBag(tmp_path / "rec", max_size=20_000)
    write_stream(bag, 0, 4 * RATE)
    bag.close()
    sizes = [p.stat().st_size for p in (tmp_path / "rec").glob("*.mcap")]
    assert len(sizes) >= 2
    assert read_positions(tmp_path / "rec")[0] == [float(i) for i in range(4 * RATE)]


def test_metadata_exists_from_the_start_and_lists_the_finished_parts(tmp_path: Path) -> None:
    bag = RecordingBag(tmp_path / "rec", max_duration=1.0)
    assert (tmp_path / "rec" / "metadata.yaml").is_file()
    assert recording_state(tmp_path / "rec") == "in_progress" and needs_repair(tmp_path / "rec")
    write_stream(bag, 0, int(2.5 * RATE), flush_every=10)
    # Mid-recording: the two finished seconds open with rosbags; the open file is not listed yet.
    positions, _ = read_positions(tmp_path / "rec")
    assert positions == [float(i) for i in range(2 * RATE)]
    bag.close()
    assert read_positions(tmp_path / "rec")[0] == [float(i) for i in range(int(2.5 * RATE))]


def test_repair_recovers_everything_flushed_before_a_crash(tmp_path: Path) -> None:
    bag = RecordingBag(tmp_path / "rec", max_duration=2.0)
    write_stream(bag, 0, 3 * RATE, flush_every=RATE)  # flushed once a second, as the recorder does
    write_stream(bag, 3 * RATE, 3 * RATE + 20)  # arrived after the last flush: lost in a crash
    bag.abort()  # SIGKILL: no summary, no footer, metadata still "in progress"
    unfinished = tmp_path / "rec" / "rec_1.mcap"
    assert not scan(unfinished).finished
    # The finished part still opens as it is; the open one is not listed until it is repaired.
    assert read_positions(tmp_path / "rec")[0] == [float(i) for i in range(2 * RATE)]

    report = repair(tmp_path / "rec")
    assert [(name, n) for name, n, _ in report.recovered] == [("rec_1.mcap", RATE * 6 // 5)]
    assert (tmp_path / "rec" / "rec_1.mcap.unfinished").is_file()  # the original is kept
    positions, counts = read_positions(tmp_path / "rec")
    assert positions == [float(i) for i in range(3 * RATE)]  # every flushed message, in order
    assert counts["/cmd_vel"] == 3 * RATE // 5
    assert recording_state(tmp_path / "rec") == "repaired" and not needs_repair(tmp_path / "rec")


def test_repair_stops_at_a_record_cut_in_half(tmp_path: Path) -> None:
    bag = RecordingBag(tmp_path / "rec")
    write_stream(bag, 0, RATE, flush_every=10)
    bag.abort()
    path = tmp_path / "rec" / "rec_0.mcap"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 500])  # the disk filled up in the last chunk
    result = scan(path)
    assert "ends inside a record" in result.problem and not result.finished
    repair(tmp_path / "rec")
    positions, _ = read_positions(tmp_path / "rec")
    assert positions == [float(i) for i in range(RATE - 10)]  # the last, cut chunk is lost, nothing else


def test_message_compression_reads_back(tmp_path: Path) -> None:
    bag = RecordingBag(tmp_path / "rec", compress=True)
    write_stream(bag, 0, RATE)
    bag.close()
    assert read_metadata(tmp_path / "rec")["compression_mode"] == "message"
    assert read_positions(tmp_path / "rec")[0] == [float(i) for i in range(RATE)]


def test_repair_refuses_what_it_cannot_repair(tmp_path: Path) -> None:
    with pytest.raises(VandError, match="not a bag directory"):
        repair(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VandError, match=r"no \.mcap file"):
        repair(tmp_path / "empty")
    with bw.BagWriter(tmp_path / "sq", storage="sqlite3") as w:
        w.write("/cmd_vel", 1, bw.twist((0, 0, 0), (0, 0, 0)))
    with pytest.raises(VandError, match="sqlite3"):
        repair(tmp_path / "sq")
    with pytest.raises(VandError, match="already exists"):
        RecordingBag(tmp_path / "sq")


def test_dataset_repairs_an_unfinished_recording_or_names_it(tmp_path: Path) -> None:
    """`vand-ros dataset` reads a recording whose recorder was killed; without repair it says what to do."""
    from vand_ros.data.builder import build_dataset
    from vand_ros.data.config import DataConfig
    from vand_ros.data.reader import BagError
    from vand_ros.simulation.cli_demos import write_episode

    write_episode("patrol", 0, 0, tmp_path / "demo", duration=4.0)  # a real episode, then re-recorded
    bag = RecordingBag(tmp_path / "rec")
    with AnyReader([tmp_path / "demo"]) as reader:
        for n, (conn, t, raw) in enumerate(reader.messages()):
            bag.write_raw(conn.topic, t, bytes(raw), conn.msgtype)
            if n % 200 == 0:
                bag.flush()
    bag.abort()
    with pytest.raises(BagError, match="vand-ros bag repair"):
        build_dataset([tmp_path / "rec"], DataConfig(), strict=True, repair=False)
    warnings: list[str] = []
    dataset, _ = build_dataset([tmp_path / "rec"], DataConfig(), strict=True, warn=warnings.append)
    assert any("repaired" in w for w in warnings)
    (episode,) = dataset.train + dataset.val
    assert np.isfinite(episode.obs).all() and len(episode.obs) > 3.0 * 20  # most of the 4 s at 20 Hz


def test_a_bag_says_how_its_demonstration_was_made_and_keeps_it_through_repair_and_relabelling(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`vand-ros demos` labels its bags (clean, recovery, switch, ...); a recorder labels its recording
    from `episode_kind`, a repair keeps the label, and `vand-ros bag kind --set` labels a bag afterwards."""
    from vand_ros.cli import main as cli_main
    from vand_ros.data.recording import KIND_KEY, episode_kind
    from vand_ros.simulation.cli_demos import write_episode
    from vand_ros.simulation.perturb import Perturbation

    write_episode("wipe", 0, 0, tmp_path / "clean", duration=2.0)
    write_episode("wipe", 0, 1, tmp_path / "rec", duration=2.0, perturbation=Perturbation.preset("dart"))
    write_episode("visit_abc", 0, 0, tmp_path / "sw", duration=4.0, switch=True)
    delayed = Perturbation.preset("push", max_delay=0.02)
    write_episode("wipe", 0, 2, tmp_path / "late", duration=2.0, perturbation=delayed)
    kinds = {name: episode_kind(tmp_path / name) for name in ("clean", "rec", "sw", "late")}
    assert kinds == {"clean": "clean", "rec": "recovery", "sw": "switch", "late": "recovery+delayed"}
    assert read_metadata(tmp_path / "rec")["custom_data"] == {KIND_KEY: "recovery"}  # rosbag2's place

    bag = RecordingBag(tmp_path / "robot", episode_kind="recovery")
    write_stream(bag, 0, RATE, flush_every=10)
    bag.abort()  # the recorder was killed: the repair must not lose the label
    repair(tmp_path / "robot")
    assert episode_kind(tmp_path / "robot") == "recovery"
    assert recording_state(tmp_path / "robot") == "repaired"

    plain = RecordingBag(tmp_path / "plain")
    write_stream(plain, 0, RATE)
    plain.close()
    assert episode_kind(tmp_path / "plain") == ""
    assert cli_main(["bag", "kind", str(tmp_path / "plain"), "--set", "switch+recovery"]) == 0
    assert episode_kind(tmp_path / "plain") == "switch+recovery"
    assert recording_state(tmp_path / "plain") == "complete"  # the rest of the metadata is kept
    assert read_positions(tmp_path / "plain")[0] == [float(i) for i in range(RATE)]
    capsys.readouterr()
    assert cli_main(["bag", "kind", str(tmp_path / "clean"), str(tmp_path / "plain")]) == 0
    assert capsys.readouterr().out.split() == [f"{tmp_path / 'clean'}:", "clean", f"{tmp_path / 'plain'}:",
                                               "switch+recovery"]  # fmt: skip

    assert cli_main(["bag", "kind", str(tmp_path / "plain"), "--set", "Clean Run"]) == 2
    assert "lower-case words" in capsys.readouterr().err
    assert cli_main(["bag", "kind", str(tmp_path / "nothing"), "--set", "clean"]) == 1
    assert "not a rosbag2 directory" in capsys.readouterr().err
    with pytest.raises(VandError, match="episode kind"):
        RecordingBag(tmp_path / "bad", episode_kind="re covery")
    assert not (tmp_path / "bad").exists()


def test_every_episode_carries_its_bags_kind_through_the_dataset_and_the_cache(tmp_path: Path) -> None:
    from vand_ros.data.builder import build_dataset
    from vand_ros.data.cli import print_summary
    from vand_ros.data.config import DataConfig
    from vand_ros.data.dataset import Dataset
    from vand_ros.simulation.cli_demos import write_episode
    from vand_ros.simulation.perturb import Perturbation

    dart = Perturbation.preset("dart")
    for ep in range(2):
        write_episode("patrol", 0, ep, tmp_path / "bags" / f"clean_{ep}", duration=4.0)
        write_episode("patrol", 0, 10 + ep, tmp_path / "bags" / f"rec_{ep}", duration=4.0, perturbation=dart)
    bag = RecordingBag(tmp_path / "bags" / "unlabelled")  # recorded without a kind
    with AnyReader([tmp_path / "bags" / "clean_0"]) as reader:
        for conn, t, raw in reader.messages():
            bag.write_raw(conn.topic, t, bytes(raw), conn.msgtype)
    bag.close()

    want = {"clean_0": "clean", "clean_1": "clean", "rec_0": "recovery", "rec_1": "recovery"}
    want["unlabelled"] = ""
    for attempt in ("read", "cached"):
        dataset, summary = build_dataset([tmp_path / "bags"], DataConfig(), cache_dir=tmp_path / "cache")
        assert summary.cached == (5 if attempt == "cached" else 0)
        got = {ep.source.split("#")[0]: ep.kind for ep in dataset.episodes}
        assert got == want, attempt
        assert summary.to_dict()["episode_kinds"] == {"clean": 2, "recovery": 2, "unknown": 1}
    table = io.StringIO()
    print_summary(summary, DataConfig(), table)  # what `vand-ros dataset` prints: a kind per bag, the counts
    lines = {line.split()[0]: line for line in table.getvalue().splitlines() if line.strip()}
    assert " recovery " in lines["rec_0"] and " - " in lines["unlabelled"]
    assert "clean x2, recovery x2, unknown x1" in lines["TOTAL"]
    loaded = Dataset.load(dataset.save(tmp_path / "ds"))
    assert [(e.source, e.kind) for e in loaded.episodes] == [(e.source, e.kind) for e in dataset.episodes]
