"""Helpers shared by the tracking benchmarks: the default estimator with a disk cache of its people per
frame, and the tracker module of an earlier commit as a baseline."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from bench.scenes import REPO_ROOT
from pose_ros.core.person import Person
from pose_ros.core.pipeline import PipelineConfig, PosePipeline

BASELINE_REF = "5bea1cf"  # main before issue 17


class CachedEstimator:
    """The default pipeline on a frame, its people cached on disk by frame content and configuration."""

    def __init__(self, config: PipelineConfig, cache_dir: Path) -> None:
        self.config, self.pipeline = config, PosePipeline()
        self.cache_dir = cache_dir
        cache_dir.mkdir(parents=True, exist_ok=True)
        self.key = repr(sorted(asdict(config).items())).encode()
        self.hits = self.misses = 0
        self.seconds = 0.0

    def __call__(self, image_rgb: np.ndarray) -> list[Person]:
        digest = hashlib.sha1(self.key + image_rgb.tobytes()).hexdigest()
        path = self.cache_dir / f"{digest}.npz"
        if path.is_file():
            self.hits += 1
            return _load_people(path)
        start = time.perf_counter()
        people = self.pipeline(self.config, image_rgb)
        self.seconds += time.perf_counter() - start
        self.misses += 1
        if self.misses % 50 == 0:
            print(f"  ... estimator: {self.misses} frames run, {self.hits} cached", file=sys.stderr, flush=True)
        _save_people(path, people)
        return people


def _save_people(path: Path, people: list[Person]) -> None:
    k = people[0].num_keypoints if people else 0
    tmp = path.with_suffix(".tmp.npz")
    np.savez(
        tmp,
        keypoints=np.stack([p.keypoints_xy for p in people]) if people else np.zeros((0, k, 2), np.float32),
        confidences=np.stack([p.confidences for p in people]) if people else np.zeros((0, k), np.float32),
        scores=np.array([p.score for p in people], np.float32),
        boxes=np.stack([p.bbox_xywh for p in people]) if people else np.zeros((0, 4), np.float32),
        layouts=np.array([p.layout for p in people]),
    )
    os.replace(tmp, path)


def _load_people(path: Path) -> list[Person]:
    with np.load(path) as data:
        keypoints, confidences, boxes = data["keypoints"], data["confidences"], data["boxes"]
        scores, layouts = data["scores"], data["layouts"]
        return [
            Person(keypoints[i], confidences[i], float(scores[i]), boxes[i], str(layouts[i]), id=i)
            for i in range(len(scores))
        ]


def default_cache_dir(name: str = "tracking_motion") -> Path:
    """~/.cache/pose_ros/bench/<name> (POSE_ROS_CACHE overrides ~/.cache/pose_ros)."""
    return Path(os.environ.get("POSE_ROS_CACHE", Path.home() / ".cache" / "pose_ros")) / "bench" / name


def load_baseline(ref: str):
    """The `pose_ros.core.tracking` module as of git `ref` (its PersonTracker and TrackerSettings)."""
    source = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "show", f"{ref}:pose_ros/core/tracking.py"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    spec = importlib.util.spec_from_loader(f"tracking_{ref}", loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    exec(compile(source, f"{ref}:pose_ros/core/tracking.py", "exec"), module.__dict__)
    return module
