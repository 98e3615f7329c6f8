"""Per-bag cache of extracted episodes, keyed by the bag's content and the configuration.

Building a dataset twice (or training twice from bags) re-reads only bags that changed. A key is the hash
of: the builder version, the configuration fields that change the extraction (not the split), and every
byte of every file of the bag. A bad bag is cached too (its report), so it is not re-read to be skipped.

Layout: `<dir>/<key>.json` (report, episode index) and `<dir>/<key>.npz` (obs_i, act_i). Default directory:
`$VAND_ROS_CACHE`, else `~/.cache/vand_ros/bags`.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from vand_ros.data.builder import BUILDER_VERSION, BagReport, BagResult
from vand_ros.data.config import DataConfig
from vand_ros.data.dataset import Episode
from vand_ros.data.reader import bag_files

CHUNK = 1 << 20


def default_cache_dir() -> Path:
    env = os.environ.get("VAND_ROS_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "vand_ros" / "bags"


def content_hash(bag: Path) -> str:
    """blake2b of every file of the bag (relative name, size, bytes), in sorted order."""
    h = hashlib.blake2b(digest_size=20)
    root = bag if bag.is_dir() else bag.parent
    for f in bag_files(bag):
        h.update(str(f.relative_to(root)).encode() + b"\0" + str(f.stat().st_size).encode() + b"\0")
        with f.open("rb") as fh:
            while chunk := fh.read(CHUNK):
                h.update(chunk)
    return h.hexdigest()


class BagCache:
    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)

    def key(self, bag: Path, config: DataConfig) -> str:
        h = hashlib.blake2b(digest_size=20)
        h.update(f"builder {BUILDER_VERSION}\n".encode())
        h.update(config.extraction_key().encode())
        h.update(content_hash(bag).encode())
        return h.hexdigest()

    def get(self, key: str, bag: Path) -> BagResult | None:
        meta_path, npz_path = self.dir / f"{key}.json", self.dir / f"{key}.npz"
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            report = BagReport.from_dict(meta["report"])
            report.bag = str(bag)  # the same content may sit at another path
            episodes = []
            if meta["episodes"]:
                with np.load(npz_path) as arrays:
                    for i, info in enumerate(meta["episodes"]):
                        episodes.append(
                            Episode(
                                arrays[f"obs_{i}"],
                                arrays[f"act_{i}"],
                                info["behaviour"],
                                info["source"],
                                info["kind"],
                            )
                        )
        except (OSError, ValueError, KeyError, TypeError):
            return None  # missing or damaged entry: read the bag again
        return BagResult(episodes, report)

    def put(self, key: str, result: BagResult) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        arrays = {}
        for i, ep in enumerate(result.episodes):
            arrays[f"obs_{i}"] = ep.obs
            arrays[f"act_{i}"] = ep.act
        tmp = self.dir / f"{key}.tmp.npz"
        # allow_pickle=True is numpy's default, named so that mypy does not check **arrays against it.
        np.savez(tmp, allow_pickle=True, **arrays)
        tmp.replace(self.dir / f"{key}.npz")
        meta = {
            "report": result.report.to_dict(),
            "episodes": [
                {"behaviour": e.behaviour, "source": e.source, "kind": e.kind} for e in result.episodes
            ],
        }
        tmp_json = self.dir / f"{key}.tmp.json"
        tmp_json.write_text(json.dumps(meta), encoding="utf-8")
        tmp_json.replace(self.dir / f"{key}.json")
