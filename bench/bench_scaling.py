"""Benchmark: time per frame and recall vs number of people, top-down vs bottom-up.

Pipelines (CPU, the defaults of this machine):
  top_down thunder    CenterNet (onnxruntime) + MoveNet Thunder on all crops in one torch forward pass
  top_down lightning  the same with MoveNet Lightning
  bottom_up multipose MoveNet MultiPose at 512×384 (onnxruntime); returns at most 6 people
  bottom_up openpose  the CMU OpenPose network (torch, 368 px high input, random weights: its cost does not
                      depend on the weights) + the PAF decoder (pose_ros.core.openpose.grouping) run on ideal
                      maps of the same N people; time only (no recall: no OpenPose weights here)

Frames:
  composites  1280×720, a blurred vtest.avi frame as background, N real people (1…20) pasted into N of the 20
              cells of a fixed 5×4 grid, so every person has the same size (~160 px tall) for every N. The
              people are the 12 COCO-sample annotations with >= 10 labelled keypoints (their box + 10 %, in
              random order, cycled); ground truth = their keypoints moved with them. `--layouts` random
              composites per N (recall pooled over them, time = the fastest).
  real        the 4 COCO-sample images (N = their people with >= 10 labelled keypoints) and vtest.avi frames
              (time only; N = people the top-down detector found).

Recall: ground-truth people matched one-to-one (greedy, metrics.greedy_match) by a prediction with OKS >= 0.5.
Time: per frame (preprocessing to people). All (frame, pipeline) jobs run once per round, `--repeats` rounds
after a warm-up round, so a burst of load from other processes hits different jobs; reported: the fastest
wall-clock time (plotted; on a shared machine noise only adds time) and the median CPU time of the process.
The OpenPose network is timed on three composites (its cost does not depend on the content), 2 rounds.

Usage:
    python bench/bench_scaling.py [--repeats 3] [--layouts 3] [--people 1,2,4,6,8,10,12,16,20] \\
        [--plot docs/images/scaling.png] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench.fixtures when run as bench/x.py
from bench.fixtures.openpose_synthetic import render_maps
from pose_ros.core import assets
from pose_ros.core.estimators.openpose import OpenPoseEstimator, OpenPoseSettings
from pose_ros.core.metrics import greedy_match, oks
from pose_ros.core.models.openpose import OpenPoseCMU
from pose_ros.core.openpose.grouping import group_people
from pose_ros.core.person import Person
from pose_ros.core.pipeline import PipelineConfig, create_estimator
from pose_ros.core.skeletons import coco17_to_coco18

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("POSE_ROS_SHARED", REPO.parent / "shared")) / "data"  # as bench/scenes.py
CANVAS = (720, 1280)  # h, w
GRID = (4, 5)  # rows, cols
OKS_MATCH = 0.5


class Truth:
    """Ground-truth people of a frame: keypoints (G, 17, 2) px, visible (G, 17) bool, area (G,) px²."""

    def __init__(self, keypoints: np.ndarray, visible: np.ndarray, area: np.ndarray) -> None:
        self.keypoints, self.visible, self.area = keypoints, visible, area

    def __len__(self) -> int:
        return len(self.area)


def read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def coco_people() -> tuple[list[tuple[np.ndarray, Truth]], list[tuple[np.ndarray, np.ndarray, float]]]:
    """The real COCO-sample frames with their truth, and the person pool: (crop, keypoints (17, 3) in crop
    pixels, area) for every annotation with >= 10 labelled keypoints."""
    folder = SHARED / "coco-sample"
    coco = json.loads((folder / "test_coco.json").read_text())
    frames, pool = [], []
    for info in coco["images"]:
        image = read_rgb(folder / info["file_name"])
        anns = [a for a in coco["annotations"] if a["image_id"] == info["id"] and a["num_keypoints"] >= 10]
        kps = np.array([a["keypoints"] for a in anns], np.float64).reshape(-1, 17, 3)
        frames.append((image, Truth(kps[..., :2], kps[..., 2] > 0, np.array([a["area"] for a in anns]))))
        for ann, kp in zip(anns, kps, strict=True):
            x, y, w, h = ann["bbox"]
            x0, y0 = max(0, int(x - 0.1 * w)), max(0, int(y - 0.1 * h))
            x1, y1 = min(image.shape[1], int(x + 1.1 * w)), min(image.shape[0], int(y + 1.1 * h))
            crop_kp = kp.copy()
            crop_kp[:, :2] -= (x0, y0)
            pool.append((image[y0:y1, x0:x1], crop_kp, float(ann["area"])))
    return frames, pool


def background(demo: Path) -> np.ndarray:
    capture = cv2.VideoCapture(str(demo / "vtest.avi"))
    ok, bgr = capture.read()
    capture.release()
    if not ok:
        raise FileNotFoundError(f"cannot read {demo / 'vtest.avi'}")
    blurred = cv2.GaussianBlur(cv2.resize(bgr, CANVAS[::-1]), (0, 0), 25)
    return cv2.cvtColor(blurred, cv2.COLOR_BGR2RGB)


def composite(base: np.ndarray, pool: list, count: int, rng: np.random.Generator) -> tuple[np.ndarray, Truth]:
    """`count` pool people (in random order, cycled) pasted into random cells of the fixed grid (scaled to 90 %
    of the cell)."""
    rows, cols = GRID
    cell_h, cell_w = CANVAS[0] // rows, CANVAS[1] // cols
    canvas = base.copy()
    keypoints, visible, areas = [], [], []
    people = rng.permutation(len(pool))
    for index, cell in enumerate(rng.permutation(rows * cols)[:count]):
        crop, kp, area = pool[people[index % len(pool)]]
        scale = 0.9 * min(cell_h / crop.shape[0], cell_w / crop.shape[1])
        h, w = max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale))
        resized = cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA)
        r, c = divmod(int(cell), cols)
        top, left = r * cell_h + (cell_h - h) // 2, c * cell_w + (cell_w - w) // 2
        canvas[top : top + h, left : left + w] = resized
        # pixel-centre convention: a point p of the crop lands at (p + 0.5) * (size ratio) - 0.5 + offset
        xy = (kp[:, :2] + 0.5) * (w / crop.shape[1], h / crop.shape[0]) - 0.5 + (left, top)
        keypoints.append(xy)
        visible.append(kp[:, 2] > 0)
        areas.append(area * scale * scale)
    return canvas, Truth(np.array(keypoints), np.array(visible), np.array(areas))


def recall(people: list[Person], truth: Truth) -> float:
    """Fraction of the truth matched (greedy, one-to-one) by a prediction with OKS >= 0.5."""
    if len(truth) == 0:
        return float("nan")
    if not people:
        return 0.0
    predicted = np.stack([p.keypoints_xy for p in people]).astype(np.float64)
    similarity = oks(predicted, truth.keypoints, truth.visible, truth.area).T  # (G, P)
    similarity = np.where(similarity >= OKS_MATCH, similarity, 0.0)
    return float(np.mean(greedy_match(similarity) >= 0))


def measure(jobs: dict[str, Callable[[], object]], rounds: int) -> dict[str, dict]:
    """Run every job once per round, round after round (a warm-up round first), so that a burst of load from
    other processes hits different jobs, not all runs of one. Per job: the fastest wall-clock ms (on a shared
    machine noise only adds time), the median CPU ms of this process (all threads) and the last result."""
    walls: dict[str, list[float]] = {key: [] for key in jobs}
    cpus: dict[str, list[float]] = {key: [] for key in jobs}
    results: dict[str, object] = {}
    for round_index in range(rounds + 1):
        for key, job in jobs.items():
            wall, cpu = time.perf_counter(), time.process_time()
            results[key] = job()
            if round_index > 0:
                walls[key].append(1000 * (time.perf_counter() - wall))
                cpus[key].append(1000 * (time.process_time() - cpu))
    return {k: {"wall_ms": min(walls[k]), "cpu_ms": statistics.median(cpus[k]), "result": results[k]} for k in jobs}


class OpenPoseCost:
    """OpenPose: network (random weights) + resampling on the frame, and the PAF decoder on ideal maps of
    the frame's truth rendered on the decoding grid."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.estimator = OpenPoseEstimator(OpenPoseSettings(device="cpu"), model=OpenPoseCMU())

    def network(self, image: np.ndarray) -> None:
        self.estimator.infer_maps(image)

    def decoder(self, image: np.ndarray, truth: Truth) -> Callable[[], object]:
        grid = self.estimator.grid_for(image.shape[:2])
        scale = np.array([grid.size[1] / image.shape[1], grid.size[0] / image.shape[0]])
        xy17 = (truth.keypoints + 0.5) * scale - 0.5
        xy18, conf18 = coco17_to_coco18(xy17.astype(np.float32), truth.visible.astype(np.float32))
        heatmaps, pafs = render_maps(xy18, conf18 > 0, grid.size[0], grid.size[1])
        return lambda: group_people(heatmaps, pafs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="measured rounds (after a warm-up round)")
    parser.add_argument("--people", default="1,2,4,6,8,10,12,16,20")
    parser.add_argument("--layouts", type=int, default=3, help="composites per number of people")
    parser.add_argument("--plot", type=Path, default=REPO / "docs" / "images" / "scaling.png")
    parser.add_argument("--json", type=Path, help="write the measurements as JSON")
    args = parser.parse_args()
    counts = [int(n) for n in args.people.split(",")]

    estimators = {
        "top_down thunder": create_estimator(PipelineConfig(mode="top_down", device="cpu", max_people=20)),
        "top_down lightning": create_estimator(
            PipelineConfig(mode="top_down", device="cpu", max_people=20, top_down_model="movenet_lightning")
        ),
        "bottom_up multipose": create_estimator(PipelineConfig(device="cpu")),
    }
    openpose = OpenPoseCost()
    real_frames, pool = coco_people()
    base = background(assets.demo_data_dir())
    rng = np.random.default_rng(0)
    frames: list[tuple[str, list[tuple[np.ndarray, Truth | None]]]] = []  # (name, variants)
    frames += [(f"composite N={n}", [composite(base, pool, n, rng) for _ in range(args.layouts)]) for n in counts]
    frames += [(f"coco real {i}", [(image, truth)]) for i, (image, truth) in enumerate(real_frames)]
    frames += [(f"vtest {i}", [(image, None)]) for i, image in video_frames(assets.demo_data_dir() / "vtest.avi")]

    jobs: dict[str, Callable[[], object]] = {}
    for name, variants in frames:
        for k, (image, truth) in enumerate(variants):
            for label, estimate in estimators.items():
                jobs[f"{name}#{k}|{label}"] = lambda e=estimate, im=image: e(im)
            if truth is not None and name.startswith("composite"):
                jobs[f"{name}#{k}|decoder"] = openpose.decoder(image, truth)
    measured = measure(jobs, args.repeats)
    # the OpenPose network's cost does not depend on the content: timed on three composites (2 rounds)
    timed_counts = {counts[0], counts[len(counts) // 2], counts[-1]}
    network = measure({name: (lambda im=variants[0][0]: openpose.network(im)) for name, variants in frames
                       if name in {f"composite N={n}" for n in timed_counts}}, 2)  # fmt: skip

    rows = [make_row(name, variants, measured, network, list(estimators)) for name, variants in frames]
    for row in rows:
        print(format_row(row))
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    plot(rows, args.plot)


def make_row(name: str, variants: list, measured: dict, network: dict, labels: list[str]) -> dict:
    """One table row over a frame's variants (layouts): per pipeline the fastest wall ms, the median CPU ms,
    the pooled recall (matched / all truth people; NaN without truth) and the people found (mean)."""
    keys = [f"{name}#{k}" for k in range(len(variants))]
    truths = [truth for _, truth in variants]
    row: dict[str, object] = {"frame": name, "layouts": len(variants)}
    for label in labels:
        runs = [measured[f"{key}|{label}"] for key in keys]
        row[label] = {
            "wall_ms": min(r["wall_ms"] for r in runs),
            "cpu_ms": statistics.median(r["cpu_ms"] for r in runs),
            "recall": pooled_recall([r["result"] for r in runs], truths),
            "found": float(np.mean([len(r["result"]) for r in runs])),
        }
    row["people"] = len(truths[0]) if truths[0] is not None else round(row["top_down thunder"]["found"])
    if f"{keys[0]}|decoder" in measured:
        runs = [measured[f"{key}|decoder"] for key in keys]
        row["openpose decoder"] = {"wall_ms": min(r["wall_ms"] for r in runs),
                                   "cpu_ms": statistics.median(r["cpu_ms"] for r in runs)}  # fmt: skip
    if name in network:
        decoder = row["openpose decoder"]
        row["bottom_up openpose"] = {"wall_ms": network[name]["wall_ms"] + decoder["wall_ms"],
                                     "cpu_ms": network[name]["cpu_ms"] + decoder["cpu_ms"]}  # fmt: skip
    return row


def pooled_recall(people_per_variant: list[list[Person]], truths: list[Truth | None]) -> float:
    """Matched / all truth people over the variants; NaN without truth."""
    if truths[0] is None:
        return float("nan")
    matched = sum(recall(people, truth) * len(truth) for people, truth in zip(people_per_variant, truths, strict=True))
    return matched / sum(len(truth) for truth in truths)


def video_frames(path: Path, indices: tuple[int, ...] = (0, 100, 300)) -> list[tuple[int, np.ndarray]]:
    """(index, RGB frame) of a video at the given increasing indices."""
    capture = cv2.VideoCapture(str(path))
    frames, index = [], 0
    while len(frames) < len(indices):
        ok, bgr = capture.read()
        if not ok:
            raise ValueError(f"{path} has no frame {indices[len(frames)]}")
        if index in indices:
            frames.append((index, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
        index += 1
    capture.release()
    return frames


PIPELINES = ("top_down thunder", "top_down lightning", "bottom_up multipose")


def format_row(row: dict) -> str:
    cells = [f"{row['frame']:<16}", f"{row['people']:>3}"]
    for label in PIPELINES:
        r = row[label]
        cells.append(f"{r['wall_ms']:6.0f} ms ({r['cpu_ms']:6.0f} cpu), recall {r['recall']:4.2f}, {r['found']:4.1f}")
    if "openpose decoder" in row:
        cells.append(f"decoder {row['openpose decoder']['wall_ms']:5.1f} ms")
    if "bottom_up openpose" in row:
        cells.append(f"OpenPose {row['bottom_up openpose']['wall_ms']:6.0f} ms")
    return " | ".join(cells)


def print_table(rows: list[dict]) -> None:
    """Markdown: fastest wall-clock ms per frame (median CPU ms) and recall per pipeline."""
    print()
    print(
        "| frame | N | top-down Thunder ms | recall | top-down Lightning ms | recall | bottom-up MultiPose ms "
        "| recall | OpenPose decoder ms | OpenPose network + decoder ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        cells = [row["frame"], str(row["people"])]
        for label in PIPELINES:
            r = row[label]
            cells += [f"{r['wall_ms']:.0f} ({r['cpu_ms']:.0f})", "–" if np.isnan(r["recall"]) else f"{r['recall']:.2f}"]
        cells.append(f"{row['openpose decoder']['wall_ms']:.1f}" if "openpose decoder" in row else "–")
        r = row.get("bottom_up openpose")
        cells.append(f"{r['wall_ms']:.0f} ({r['cpu_ms']:.0f})" if r else "–")
        print("| " + " | ".join(cells) + " |")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    synthetic = [r for r in rows if str(r["frame"]).startswith("composite")]
    real = [r for r in rows if not str(r["frame"]).startswith("composite")]
    n = [r["people"] for r in synthetic]
    styles = {"top_down thunder": "C0", "top_down lightning": "C2", "bottom_up multipose": "C1",
              "bottom_up openpose": "C3"}  # fmt: skip
    figure, (ax_time, ax_recall) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, colour in styles.items():
        measured_rows = [r for r in synthetic if label in r]
        ax_time.plot([r["people"] for r in measured_rows], [r[label]["wall_ms"] for r in measured_rows], "o-",
                     color=colour, label=label)  # fmt: skip
        points = [(r["people"], r[label]["wall_ms"]) for r in real if label in r]
        if points:
            ax_time.plot(*zip(*points, strict=True), "x", color=colour, markersize=8)
        if label != "bottom_up openpose":
            ax_recall.plot(n, [r[label]["recall"] for r in synthetic], "o-", color=colour, label=label)
            points = [
                (r["people"], r[label]["recall"]) for r in real if label in r and not np.isnan(r[label]["recall"])
            ]
            if points:
                ax_recall.plot(*zip(*points, strict=True), "x", color=colour, markersize=8)
    ax_time.set(xlabel="people in the frame", ylabel="ms per frame (fastest run, 2-core CPU)", title="time per frame")
    ax_recall.set(xlabel="people in the frame", ylabel="recall (OKS ≥ 0.5)", title="recall", ylim=(0, 1.05))
    ax_time.set_yscale("log")
    ax_time.legend(fontsize=8)
    ax_time.grid(alpha=0.3)
    ax_recall.grid(alpha=0.3)
    figure.suptitle("o: composites of real COCO people on a 5×4 grid;  x: real frames (COCO sample, vtest.avi)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    print(f"plot written to {path}")


if __name__ == "__main__":
    main()
