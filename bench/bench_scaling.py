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
              cells of a fixed 5×4 grid, so every person has the same size (~150 px tall) for every N. The
              people are the 12 COCO-sample annotations with >= 10 labelled keypoints (their box + 10 %,
              cycled); ground truth = their keypoints moved with them.
  real        the 4 COCO-sample images (N = their people with >= 10 labelled keypoints) and vtest.avi frames
              (time only; N = people the top-down detector found).

Recall: ground-truth people matched one-to-one (greedy, metrics.greedy_match) by a prediction with OKS >= 0.5.
Time: per frame (preprocessing to people), median of `--repeats` runs after a warm-up run, as CPU time of
the process (all threads; robust when other processes compete for the cores) and as wall-clock time.

Usage:
    python bench/bench_scaling.py [--repeats 3] [--people 1,2,4,6,8,10,12,16,20] [--plot docs/images/scaling.png]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from pose_ros.core import assets
from pose_ros.core.estimators.openpose import OpenPoseEstimator, OpenPoseSettings
from pose_ros.core.metrics import greedy_match, oks
from pose_ros.core.models.openpose import OpenPoseCMU
from pose_ros.core.openpose.grouping import group_people
from pose_ros.core.openpose.synthetic import render_maps
from pose_ros.core.person import Person
from pose_ros.core.pipeline import PipelineConfig, create_estimator
from pose_ros.core.skeletons import coco17_to_coco18

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
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
    """`count` pool people pasted into random cells of the fixed grid (scaled to 90 % of the cell)."""
    rows, cols = GRID
    cell_h, cell_w = CANVAS[0] // rows, CANVAS[1] // cols
    canvas = base.copy()
    keypoints, visible, areas = [], [], []
    for index, cell in enumerate(rng.permutation(rows * cols)[:count]):
        crop, kp, area = pool[index % len(pool)]
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


def timed(function: Callable[[], object], repeats: int, warm_up: bool = True) -> tuple[float, float, object]:
    """(median wall-clock ms, median CPU ms of this process (all threads), the last result) over `repeats` runs
    after one warm-up run. CPU time is robust to other processes competing for the cores; wall-clock is not."""
    result = function() if warm_up else None
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = function()
        walls.append(1000 * (time.perf_counter() - wall))
        cpus.append(1000 * (time.process_time() - cpu))
    return statistics.median(walls), statistics.median(cpus), result


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
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--people", default="1,2,4,6,8,10,12,16,20")
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
    frames = [(f"composite N={n}", composite(base, pool, n, rng)) for n in counts]
    frames += [(f"coco real {i}", frame) for i, frame in enumerate(real_frames)]

    rows = []
    openpose_warm = False
    for name, (image, truth) in frames:
        row: dict[str, object] = {"frame": name, "people": len(truth)}
        for label, estimate in estimators.items():
            wall, cpu, people = timed(lambda e=estimate, im=image: e(im), args.repeats)
            row[label] = {"cpu_ms": cpu, "wall_ms": wall, "recall": recall(people, truth), "found": len(people)}
        if name.startswith("composite"):  # the network's cost does not depend on the content: composites only
            wall, cpu, _ = timed(lambda im=image: openpose.network(im), 1, warm_up=not openpose_warm)
            openpose_warm = True
            decoder_wall, decoder_cpu, poses = timed(openpose.decoder(image, truth), args.repeats)
            row["bottom_up openpose"] = {"cpu_ms": cpu + decoder_cpu, "wall_ms": wall + decoder_wall,
                                         "decoder_cpu_ms": decoder_cpu, "found": len(poses)}  # fmt: skip
        rows.append(row)
        print(format_row(row), flush=True)
    rows += vtest_rows(estimators, args.repeats)
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    plot(rows, args.plot)


def vtest_rows(estimators: dict, repeats: int) -> list[dict]:
    """Real vtest.avi frames: time only (no ground truth); N = people found by top-down Thunder."""
    rows = []
    for index, image in video_frames(assets.demo_data_dir() / "vtest.avi", (0, 100, 300)):
        row: dict[str, object] = {"frame": f"vtest {index}"}
        for label, estimate in estimators.items():
            wall, cpu, people = timed(lambda e=estimate, im=image: e(im), repeats)
            row[label] = {"cpu_ms": cpu, "wall_ms": wall, "recall": float("nan"), "found": len(people)}
        row["people"] = row["top_down thunder"]["found"]
        rows.append(row)
        print(format_row(row), flush=True)
    return rows


def video_frames(path: Path, indices: tuple[int, ...]) -> list[tuple[int, np.ndarray]]:
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
        cells.append(
            f"{r['cpu_ms']:6.0f} cpu {r['wall_ms']:6.0f} wall ms recall {r['recall']:4.2f} found {r['found']:>2}"
        )
    if "bottom_up openpose" in row:
        r = row["bottom_up openpose"]
        cells.append(f"{r['cpu_ms']:6.0f} cpu ms (decoder {r['decoder_cpu_ms']:5.1f}) found {r['found']:>2}")
    return " | ".join(cells)


def print_table(rows: list[dict]) -> None:
    """Markdown: CPU ms per frame (wall-clock ms) and recall per pipeline."""
    print()
    print(
        "| frame | N | top-down Thunder ms | recall | top-down Lightning ms | recall | bottom-up MultiPose ms "
        "| recall | bottom-up OpenPose net + decoder ms | of which decoder |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        cells = [row["frame"], str(row["people"])]
        for label in PIPELINES:
            r = row[label]
            cells += [f"{r['cpu_ms']:.0f} ({r['wall_ms']:.0f})", "–" if np.isnan(r["recall"]) else f"{r['recall']:.2f}"]
        r = row.get("bottom_up openpose")
        cells += [f"{r['cpu_ms']:.0f} ({r['wall_ms']:.0f})", f"{r['decoder_cpu_ms']:.0f}"] if r else ["–", "–"]
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
        ax_time.plot(n, [r[label]["cpu_ms"] for r in synthetic], "o-", color=colour, label=label)
        points = [(r["people"], r[label]["cpu_ms"]) for r in real if label in r]
        if points:
            ax_time.plot(*zip(*points, strict=True), "x", color=colour, markersize=8)
        if label != "bottom_up openpose":
            ax_recall.plot(n, [r[label]["recall"] for r in synthetic], "o-", color=colour, label=label)
            points = [
                (r["people"], r[label]["recall"]) for r in real if label in r and not np.isnan(r[label]["recall"])
            ]
            if points:
                ax_recall.plot(*zip(*points, strict=True), "x", color=colour, markersize=8)
    ax_time.set(xlabel="people in the frame", ylabel="CPU ms per frame (all threads)", title="time per frame")
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
