"""Anny fitting on real detections: reprojection error, time per person, marker size, and a rendered picture.

    python -m bench.eval_anny_fit                # from the repository root: vtest.avi frames 290-309 + COCO samples
    python -m bench.eval_anny_fit --frames 40 --budget-ms 0 --image docs/images/anny_fit.png

People come from the default estimator (`PosePipeline`, MoveNet multi-pose on the CPU), tracked with
`PersonTracker` as in pose_node, so each tracked person warm-starts from its previous solution. Errors are the
distances (px) between the fitted Anny COCO-17 keypoints, projected with the default intrinsics
(`default_camera_matrix`), and the detected keypoints with confidence ≥ the fitter's `min_confidence`. Time per
person: wall time of `fit` (`ms_per_person_*`, what the time budget sees) and its CPU time (`cpu_ms_per_person_*`,
`time.thread_time`, steadier on a shared machine). The side-by-side comparison with the old fitter is
bench/bench_anny_fit.py.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from bench.fixtures.meshes import triangle_list_bytes
from bench.fixtures.render import Mesh, render_meshes
from pose_ros.core import assets
from pose_ros.core.body.anny_fit import AnnyFitSettings, AnnyFitter, coco17_observations
from pose_ros.core.camera import default_camera_matrix, project
from pose_ros.core.draw import ID_COLORS, draw_people, side_by_side
from pose_ros.core.person import Person
from pose_ros.core.pipeline import PipelineConfig, PosePipeline
from pose_ros.core.sources import read_video_frames
from pose_ros.core.tracking import PersonTracker

REPO = Path(__file__).resolve().parents[1]
COCO_SAMPLES = next(
    (p / "shared" / "data" / "coco-sample" for p in (REPO.parent, REPO.parent.parent) if (p / "shared").is_dir()),
    REPO.parent / "shared" / "data" / "coco-sample",
)  # the main checkout's sibling, or a worktree's grandparent's
DECIMATED_FACES = (5000, 2000)


@dataclass
class Stats:
    """Accumulated results of one image set."""

    keypoint_errors_px: list[float] = field(default_factory=list)
    person_errors_px: list[float] = field(default_factory=list)
    ms_per_person: list[float] = field(default_factory=list)  # wall time (fit_ms + mesh_ms)
    cpu_ms_per_person: list[float] = field(default_factory=list)  # time.thread_time of the fit call
    iterations: list[int] = field(default_factory=list)
    people: int = 0
    camera: np.ndarray = field(default_factory=lambda: np.eye(3))  # intrinsics of the current image

    def add(self, fitter: AnnyFitter, people: list[Person], cpu_s: float) -> None:
        report = fitter.report
        if report.people == 0:
            return
        self.people += report.people
        self.person_errors_px += report.reprojection_px
        self.ms_per_person.append((report.fit_ms + report.mesh_ms) / report.people)
        self.cpu_ms_per_person.append(1e3 * cpu_s / report.people)
        self.iterations.append(report.iterations)
        for person in people:
            if person.body_model is None:
                continue
            xy, conf = coco17_observations(person, fitter.settings.min_confidence)
            fitted = project(person.keypoints_3d.astype(np.float64), self.camera)
            self.keypoint_errors_px += np.linalg.norm(fitted - xy, axis=1)[conf > 0].tolist()

    def summary(self) -> dict[str, float]:
        if not self.people:
            return {"people": 0}
        return {
            "people": self.people,
            "keypoint_error_median_px": float(np.median(self.keypoint_errors_px)),
            "keypoint_error_mean_px": float(np.mean(self.keypoint_errors_px)),
            "person_error_median_px": float(np.median(self.person_errors_px)),
            "ms_per_person_median": float(np.median(self.ms_per_person)),
            "ms_per_person_mean": float(np.mean(self.ms_per_person)),
            "cpu_ms_per_person_median": float(np.median(self.cpu_ms_per_person)),
            "iterations_median": float(np.median(self.iterations)),
        }


def read_frames(path: Path, start: int, count: int) -> list[np.ndarray]:
    """RGB frames start .. start + count - 1 of a video."""
    return read_video_frames(path, range(start, start + count))


def mesh_picture(image: np.ndarray, people: list[Person], camera: np.ndarray) -> np.ndarray:
    """Detections, fitted Anny meshes, and the meshes zoomed on the people, side by side."""
    meshes = [
        Mesh(p.body_model.vertices, p.body_model.faces, ID_COLORS[p.id % len(ID_COLORS)])
        for p in people
        if p.body_model is not None
    ]
    rendered = render_meshes(image, meshes, camera, alpha=0.8)
    boxes = np.array([p.bbox_xywh for p in people if p.body_model is not None], np.float64)
    x0, y0 = np.maximum((boxes[:, :2] - 40).min(axis=0), 0).astype(int)
    x1, y1 = (boxes[:, :2] + boxes[:, 2:] + 40).max(axis=0).astype(int)
    zoom = rendered[y0:y1, x0:x1]
    zoom = cv2.resize(zoom, (round(zoom.shape[1] * image.shape[0] / zoom.shape[0]), image.shape[0]))
    return side_by_side(
        [draw_people(image, people), rendered, zoom],
        ["MoveNet multi-pose keypoints", "Anny fitted to them (anny_fit)", "zoomed"],
    )


def marker_bytes(fitter: AnnyFitter, people_per_frame: float) -> dict[str, float]:
    """TRIANGLE_LIST payload per person and per frame (at the measured mean people per frame)."""
    sizes = {"full": len(fitter.faces)} | {f"decimated_{n}": len(fitter.decimator(n).faces) for n in DECIMATED_FACES}
    return {
        f"{name}_{key}": value
        for name, faces in sizes.items()
        for key, value in (
            ("faces", faces),
            ("bytes_per_person", triangle_list_bytes(faces)),
            ("bytes_per_frame", triangle_list_bytes(faces) * people_per_frame),
        )
    }


def run_video(fitter: AnnyFitter, pipeline: PosePipeline, frames: list[np.ndarray], fps: float) -> tuple:
    """Cold stats (first frame of each track), warm stats, the last frame's people."""
    config = PipelineConfig(device="cpu")
    tracker = PersonTracker()
    camera = default_camera_matrix(frames[0].shape[1], frames[0].shape[0])
    cold, warm = Stats(camera=camera), Stats(camera=camera)
    people: list[Person] = []
    for index, frame in enumerate(frames):
        people = tracker.update(pipeline(config, frame), index / fps)
        cpu_start = time.thread_time()
        fitter.fit(people, camera, (frame.shape[1], frame.shape[0]))
        cpu_s = time.thread_time() - cpu_start
        (warm if fitter.report.warm == fitter.report.people else cold).add(fitter, people, cpu_s)
        print(
            f"frame {index}: {fitter.report.people} people ({fitter.report.warm} warm), "
            f"{fitter.report.iterations} it, {fitter.report.fit_ms + fitter.report.mesh_ms:.0f} ms, "
            f"errors {np.round(fitter.report.reprojection_px, 1).tolist()} px",
            flush=True,
        )
    return cold, warm, people


def run_images(fitter: AnnyFitter, pipeline: PosePipeline, paths: list[Path]) -> Stats:
    """Single images (cold fits)."""
    config = PipelineConfig(device="cpu")
    stats = Stats()
    for path in paths:
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        stats.camera = default_camera_matrix(image.shape[1], image.shape[0])
        people = pipeline(config, image)
        fitter.reset()
        cpu_start = time.thread_time()
        fitter.fit(people, stats.camera, (image.shape[1], image.shape[0]))
        cpu_s = time.thread_time() - cpu_start
        stats.add(fitter, people, cpu_s)
        print(f"{path.name}: {fitter.report.people} people, errors {np.round(fitter.report.reprojection_px, 1)} px")
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, default=assets.demo_data_dir() / "vtest.avi")
    parser.add_argument("--start", type=int, default=290, help="first frame (290: six walkers in view)")
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--fps", type=float, default=10.0, help="frame rate of the video (vtest.avi: 10)")
    parser.add_argument("--coco", type=Path, default=COCO_SAMPLES)
    parser.add_argument("--budget-ms", type=float, default=AnnyFitSettings.time_budget_ms)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 on a shared machine)")
    parser.add_argument("--image", type=Path, default=REPO / "docs" / "images" / "anny_fit.png")
    parser.add_argument("--image-width", type=int, default=1600, help="the picture is scaled down to this width")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    start = time.perf_counter()
    fitter = AnnyFitter(AnnyFitSettings(device="cpu", time_budget_ms=args.budget_ms))
    print(f"Anny loaded in {time.perf_counter() - start:.1f} s")
    pipeline = PosePipeline()
    frames = read_frames(args.video, args.start, args.frames)
    cold, warm, last_people = run_video(fitter, pipeline, frames, args.fps)
    camera = default_camera_matrix(frames[-1].shape[1], frames[-1].shape[0])
    args.image.parent.mkdir(parents=True, exist_ok=True)
    picture = mesh_picture(frames[-1], last_people, camera)
    scale = min(1.0, args.image_width / picture.shape[1])
    picture = cv2.resize(picture, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(args.image), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    coco = run_images(fitter, pipeline, sorted(args.coco.glob("*.jpg"))) if args.coco.is_dir() else Stats()
    frame_people = (cold.people + warm.people) / len(frames)
    results = {
        "settings": asdict(fitter.settings) | {"threads": args.threads, "start": args.start, "frames": len(frames)},
        "load_average_1min": os.getloadavg()[0],
        "vtest_cold": cold.summary(),
        "vtest_warm": warm.summary(),
        "coco_sample_cold": coco.summary(),
        "markers": marker_bytes(fitter, frame_people) | {"people_per_frame": frame_people},
    }
    print(json.dumps(results, indent=2, default=str))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    print(f"picture: {args.image}")


if __name__ == "__main__":
    main()
