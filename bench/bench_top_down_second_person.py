"""Cost of the top-down second-person search: time per frame of the whole top-down path (CenterNet, crops,
MoveNet Thunder, decoding, second-person search and its re-crops) with the search off
(`second_person_threshold=1`) and on (the default), side by side in one process.

Frames: the COCO and MPII sample images (mostly one or a few people), basketball1.png / basketball2.png /
messi5.jpg, 4 frames of vtest.avi (a street with walkers), and 4 overlap composites of bench/eval_top_down_overlap.py
(two real people at box IoU 0.5 and 0.6). Rounds alternate off/on per frame so load changes hit both; reported
per frame group: median ms of each and the ratio on/off, plus how many extra crops the search cut.

Run from the repository root:  python -m bench.bench_top_down_second_person [--rounds 5] [--decoder heatmap]
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np

from bench.eval_top_down_overlap import composite
from bench.eval_tracking import empty_street
from bench.scenes import DEFAULT_ANNOTATIONS, AnnotationSet, load_sprites, select_sprite_annotations
from pose_ros.core import assets
from pose_ros.core.estimators.top_down import TopDownEstimator, TopDownSettings


def frames() -> dict[str, list[np.ndarray]]:
    """Frame groups name -> RGB uint8 images."""

    def read(path) -> np.ndarray:
        return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)

    shared = DEFAULT_ANNOTATIONS.parent.parent  # the shared data folder (coco-sample/, mpii-sample/)
    demo = assets.demo_data_dir()
    samples = [path for folder in ("coco-sample", "mpii-sample") for path in sorted((shared / folder).glob("*.jpg"))]
    groups = {
        "COCO + MPII samples": [read(path) for path in samples],
        "opencv samples": [read(demo / name) for name in ("basketball1.png", "basketball2.png", "messi5.jpg")],
    }
    video = cv2.VideoCapture(str(demo / "vtest.avi"))
    street = []
    for index in range(0, 400, 100):
        video.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = video.read()
        if ok:
            street.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    groups["vtest.avi"] = street
    annotations = AnnotationSet.load(DEFAULT_ANNOTATIONS)
    ids = select_sprite_annotations(annotations, 5)
    sprites = load_sprites(annotations, ids)
    areas = [annotations.by_id(i).get("area") for i in ids]
    background = empty_street(demo / "vtest.avi", num_samples=12)
    pairs = [(1, 0, 0.6), (4, 1, 0.6), (2, 0, 0.5), (0, 3, 0.5)]
    groups["overlap composites"] = [composite(background, sprites, areas, a, b, iou, 300.0)[0] for a, b, iou in pairs]
    return groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--decoder", default="regression", choices=("regression", "heatmap"))
    args = parser.parse_args()
    estimator = TopDownEstimator(TopDownSettings(device="cpu", decoder=args.decoder, max_people=6))
    default = TopDownSettings.second_person_threshold
    groups = frames()
    crops = {"off": 0, "on": 0}
    heads = estimator.keypoints.heads

    def counting(crops_batch):
        crops[current] += len(crops_batch)
        return heads(crops_batch)

    estimator.keypoints.heads = counting
    print(f"top-down path, CPU, movenet_thunder, {args.decoder} decoder, max_people 6, {args.rounds} rounds; "
          f"second-person search off (threshold 1) vs on (threshold {default})\n")  # fmt: skip
    print("| frames | images | off ms/frame | on ms/frame | on / off | crops off | crops on |")
    print("|---|---|---|---|---|---|---|")
    current = "off"
    for image in [f for group in groups.values() for f in group][:2]:  # warm-up (ONNX sessions, caches)
        estimator(image)
    for name, images in groups.items():
        times = {"off": [], "on": []}
        crops.update(off=0, on=0)
        for _ in range(args.rounds):
            for image in images:
                for current, threshold in (("off", 1.0), ("on", default)):
                    start = time.perf_counter()
                    estimator(image, second_person_threshold=threshold)
                    times[current].append(time.perf_counter() - start)
        off, on = statistics.median(times["off"]) * 1e3, statistics.median(times["on"]) * 1e3
        per = len(images) * args.rounds
        print(f"| {name} | {len(images)} | {off:.0f} | {on:.0f} | {on / off:.2f} | {crops['off'] / per:.2f} | "
              f"{crops['on'] / per:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
