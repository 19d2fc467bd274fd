"""Anny fitting cost per person, this fitter against the Adam fitter it replaced, side by side in one run.

    python -m bench.bench_anny_fit                      # vtest.avi frames 290-309 + the shared COCO samples
    python -m bench.bench_anny_fit --frames 40 --json /tmp/anny_bench.json

Both fitters get the same people: MoveNet multi-pose (the default estimator, CPU) tracked with `PersonTracker` as in
pose_node, computed once and copied for each fitter. The baseline is the fitter file of commit `--baseline-rev`
(`git show REV:pose_ros/core/body/anny_fit.py`, loaded as a temporary module; nothing of it ships), on the same Anny
model. Time = `time.thread_time` of one `fit` call (optimisation + meshes, one torch thread) divided by the people
fitted; the two fitters alternate frame by frame so that load changes hit both alike. Medians:
- warm: frames of the tracked sequence where every person starts from its previous solution;
- cold: every person new (the fitter reset): the COCO sample images and every `--cold-every`-th vtest frame.
Error: distance (px) between the fitted Anny keypoints, projected, and the detected keypoints of confidence ≥ 0.3.

Recovery (`--scenes N`): the synthetic scenes of test/test_anny_fit.py (known Anny people → projected keypoints → fit
cold, then twice warm after a small motion), scene 0 being the test's own; per frame, the 2D and hip-centred 3D
errors (medians per scene, averaged over the scenes) of both fitters, each scene's 3D error, and per frame in how
many scenes the new fitter's 3D error is no worse.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import torch

from pose_ros.core import assets
from pose_ros.core.body import anny_fit
from pose_ros.core.body.anny_body import AnnyBody, create_anny_model
from pose_ros.core.camera import default_camera_matrix, project
from pose_ros.core.person import Person
from pose_ros.core.pipeline import PipelineConfig, PosePipeline
from pose_ros.core.sources import read_video_frames
from pose_ros.core.tracking import PersonTracker

REPO = Path(__file__).resolve().parents[1]
COCO_SAMPLES = next(
    (p / "shared" / "data" / "coco-sample" for p in (REPO.parent, REPO.parent.parent) if (p / "shared").is_dir()),
    REPO.parent / "shared" / "data" / "coco-sample",
)  # the main checkout's sibling, or a worktree's grandparent's
BASELINE_REV = "5bea1cf"  # main before the split: the Adam fitter (80 cold / 20 warm iterations)


def load_baseline(rev: str) -> ModuleType:
    """The fitter module of git revision `rev`, as a temporary module `anny_fit_baseline`."""
    source = subprocess.run(
        ["git", "show", f"{rev}:pose_ros/core/body/anny_fit.py"], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as handle:
        handle.write(source)
    spec = importlib.util.spec_from_file_location("anny_fit_baseline", handle.name)
    module = importlib.util.module_from_spec(spec)
    sys.modules["anny_fit_baseline"] = module
    spec.loader.exec_module(module)
    os.unlink(handle.name)
    return module


def detect(pipeline: PosePipeline, images: list[np.ndarray], track: bool, fps: float = 10.0) -> list[list[Person]]:
    config = PipelineConfig(device="cpu")
    tracker = PersonTracker()
    frames = []
    for index, image in enumerate(images):
        people = pipeline(config, image)
        frames.append(tracker.update(people, index / fps) if track else people)
    return frames


class Run:
    """One fitter's timings and errors."""

    def __init__(self, name: str, fitter) -> None:
        self.name, self.fitter = name, fitter
        self.ms = {"warm": [], "cold": []}
        self.errors = {"warm": [], "cold": []}
        self.iterations = {"warm": [], "cold": []}

    def fit(self, people: list[Person], camera: np.ndarray, size: tuple[int, int], kind: str | None) -> None:
        people = copy.deepcopy(people)
        start = time.thread_time()
        self.fitter.fit(people, camera, size)
        seconds = time.thread_time() - start
        report = self.fitter.report
        if kind is None:  # a frame mixing new and tracked people: neither set
            return
        if report.people == 0 or (kind == "warm" and report.warm != report.people):
            return
        self.ms[kind].append(1e3 * seconds / report.people)
        self.iterations[kind].append(report.iterations)
        for person in people:
            if person.body_model is None or person.keypoints_3d is None:
                continue
            xy, conf = anny_fit.coco17_observations(person, 0.3)
            fitted = project(person.keypoints_3d.astype(np.float64), camera)
            self.errors[kind] += np.linalg.norm(fitted - xy, axis=1)[conf > 0].tolist()

    def summary(self) -> dict:
        out = {}
        for kind in ("warm", "cold"):
            if self.ms[kind]:
                out[kind] = {
                    "samples": len(self.ms[kind]),
                    "ms_per_person_median": float(np.median(self.ms[kind])),
                    "people_per_s": 1e3 / float(np.median(self.ms[kind])),
                    "keypoint_error_median_px": float(np.median(self.errors[kind])),
                    "keypoint_error_mean_px": float(np.mean(self.errors[kind])),
                    "iterations_median": float(np.median(self.iterations[kind])),
                }
        return out


def recovery(baseline: ModuleType, model, scenes: int) -> dict:
    """Both fitters on the recovery test's scenes: per fitter, scene 0's and the scene-averaged errors per frame."""
    sys.path.insert(0, str(REPO / "test"))
    import anny_scenes as scenes_module

    body, old_body = AnnyBody(model), baseline.AnnyBody(model)
    makers = {
        "baseline": lambda: baseline.AnnyFitter(baseline.AnnyFitSettings(time_budget_ms=0), old_body),
        "new": lambda: anny_fit.AnnyFitter(anny_fit.AnnyFitSettings(time_budget_ms=0), body),
    }
    out = {}
    for name, make in makers.items():
        results = []  # (scene, frame, [2D px, 3D mm, 3D scaled mm])
        for scene in range(scenes):
            rng = np.random.default_rng(scene)
            truth = scenes_module.random_states(body, rng, 3)
            fitter = make()
            frames = []
            for frame in range(3):
                if frame:
                    scenes_module.move(truth, rng)
                points, pixels = scenes_module.render(body, truth)
                people = scenes_module.make_people(pixels)
                fitter.fit(people, scenes_module.CAMERA, (scenes_module.WIDTH, scenes_module.HEIGHT))
                frames.append(scenes_module.errors(people, points, pixels))
            results.append(frames)
        table = np.array(results)
        out[name] = {
            "scene0_2d_px": table[0, :, 0].round(2).tolist(),
            "scene0_3d_mm": table[0, :, 1].round(1).tolist(),
            "scene0_3d_scaled_mm": table[0, :, 2].round(1).tolist(),
            "mean_2d_px": table[:, :, 0].mean(0).round(2).tolist(),
            "mean_3d_mm": table[:, :, 1].mean(0).round(1).tolist(),
            "mean_3d_scaled_mm": table[:, :, 2].mean(0).round(1).tolist(),
            "per_scene_3d_mm": table[:, :, 1].round(0).tolist(),
        }
    old, new = (np.array(out[name]["per_scene_3d_mm"]) for name in ("baseline", "new"))
    out["scenes_new_no_worse_per_frame"] = (new <= old).sum(0).tolist()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, default=assets.demo_data_dir() / "vtest.avi")
    parser.add_argument("--start", type=int, default=290)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--cold-every", type=int, default=5, help="also fit every n-th vtest frame from scratch")
    parser.add_argument("--coco", type=Path, default=COCO_SAMPLES)
    parser.add_argument("--baseline-rev", default=BASELINE_REV)
    parser.add_argument("--budget-ms", type=float, default=0.0, help="both fitters' time budget (0: none)")
    parser.add_argument("--scenes", type=int, default=10, help="recovery scenes (0: skip)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)

    model = create_anny_model("cpu")
    baseline = load_baseline(args.baseline_rev)
    runs = [
        Run("baseline", baseline.AnnyFitter(baseline.AnnyFitSettings(time_budget_ms=args.budget_ms),
                                            baseline.AnnyBody(model))),
        Run("new", anny_fit.AnnyFitter(anny_fit.AnnyFitSettings(time_budget_ms=args.budget_ms), AnnyBody(model))),
    ]  # fmt: skip
    pipeline = PosePipeline()
    video = read_video_frames(args.video, range(args.start, args.start + args.frames))
    tracked = detect(pipeline, video, track=True)
    paths = sorted(args.coco.glob("*.jpg")) if args.coco.is_dir() else []
    images = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths]
    singles = detect(pipeline, images, track=False)
    print(f"{len(video)} video frames ({sum(map(len, tracked))} people), {len(images)} COCO images", flush=True)

    camera = default_camera_matrix(video[0].shape[1], video[0].shape[0])
    size = (video[0].shape[1], video[0].shape[0])
    seen: set[int] = set()
    for people in tracked:
        new = {p.id for p in people} - seen
        seen |= {p.id for p in people}
        kind = "warm" if not new else ("cold" if len(new) == len(people) else None)
        for run in runs:
            run.fit(people, camera, size, kind)
    for index, people in enumerate(tracked):
        if index % args.cold_every == 0:
            for run in runs:
                run.fitter.reset()
                run.fit(people, camera, size, "cold")
    for image, people in zip(images, singles, strict=True):
        k = default_camera_matrix(image.shape[1], image.shape[0])
        for run in runs:
            run.fitter.reset()
            run.fit(people, k, (image.shape[1], image.shape[0]), "cold")

    results = {run.name: run.summary() for run in runs}
    results["speed-up"] = {
        kind: results["baseline"][kind]["ms_per_person_median"] / results["new"][kind]["ms_per_person_median"]
        for kind in ("warm", "cold")
    }
    results["error_change_px"] = {
        kind: results["new"][kind]["keypoint_error_median_px"] - results["baseline"][kind]["keypoint_error_median_px"]
        for kind in ("warm", "cold")
    }
    if args.scenes > 0:
        results["recovery"] = recovery(baseline, model, args.scenes)
    results["config"] = vars(args) | {"threads": 1, "load_average_1min": os.getloadavg()[0]}
    print(json.dumps(results, indent=2, default=str))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
