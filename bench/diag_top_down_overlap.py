"""Why top-down misses the back one of two overlapping people, and how much any crop could get back.

The images are bench/eval_top_down_overlap.py's (two real people at box IoU 0.3 ... 0.7, the back one
behind). Per image and target IoU, with the default top-down estimator:

* back / front recall: the person's one-to-one matched skeleton has OKS >= 0.5 (the overlap benchmark's
  scoring: COCO σ, all annotated keypoints, occluded ones too);
* back keypoints unoccluded: the back person's annotated keypoints that lie on a pixel the front person does
  not cover (the pasted front sprite's mask), of those annotated;
* own boxes: CenterNet (default NMS) gives each of the two people a box of their own (boxes matched one-to-one
  to the two ground-truth boxes, Hungarian on box IoU, both matches with IoU >= 0.5);
* two upper bounds for any method that adds one crop for the back person (the found people are kept, the
  crop's skeleton is added, and the image is scored again, so a skeleton that is really the front person's
  does not count twice): "oracle box": the keypoint network on the back person's ground-truth box; "oracle box,
  front removed": the same with every pixel of the front person replaced by the true empty street (what no
  method can know: a perfect segmentation and inpainting of the front person).

Run from the repository root:  python -m bench.diag_top_down_overlap [--ious 0.5 0.6 0.7] [--decoder heatmap]
(~1-2 minutes for the five IoUs on the shared 2-core machine)
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from bench.eval_top_down_overlap import Truth, add_scene_arguments, composite_with_labels, score
from bench.eval_tracking import empty_street
from bench.scenes import AnnotationSet, load_sprites, select_sprite_annotations
from pose_ros.core import assets
from pose_ros.core.boxes import box_iou_xywh
from pose_ros.core.estimators.movenet_single import DECODERS
from pose_ros.core.estimators.top_down import TopDownEstimator, TopDownSettings


def unoccluded(truth: Truth, labels: np.ndarray, occluder: int) -> tuple[int, int]:
    """(annotated keypoints of `truth`, those not on a pixel labelled `occluder`)."""
    annotated = truth.keypoints[truth.keypoints[:, 2] > 0, :2]
    height, width = labels.shape
    cols = np.clip(np.round(annotated[:, 0]).astype(int), 0, width - 1)
    rows = np.clip(np.round(annotated[:, 1]).astype(int), 0, height - 1)
    return len(annotated), int((labels[rows, cols] != occluder).sum())


def with_crop(estimator: TopDownEstimator, image: np.ndarray, box_xywh: np.ndarray, people: list) -> list:
    """`people` plus the keypoint network's person in the crop of `box_xywh` (detector score 1)."""
    x, y, w, h = box_xywh
    boxes = np.array([[x, y, x + w, y + h]], np.float32)
    found, _, _ = estimator._crop_people(torch.from_numpy(np.ascontiguousarray(image)), boxes, np.ones(1, np.float32))
    return list(people) + found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_scene_arguments(parser)
    parser.add_argument("--decoder", default="regression", choices=DECODERS)
    parser.add_argument("--max-people", type=int, default=6, help="as pose_node's max_people")
    args = parser.parse_args()
    annotations = AnnotationSet.load(args.annotations, args.images)
    ids = select_sprite_annotations(annotations, args.people)
    sprites = load_sprites(annotations, ids)
    areas = [annotations.by_id(i).get("area") or float(s.mask.sum()) for i, s in zip(ids, sprites, strict=True)]
    background = empty_street(assets.demo_data_dir() / "vtest.avi")
    estimator = TopDownEstimator(TopDownSettings(device="cpu", max_people=args.max_people, decoder=args.decoder))
    pairs = [(a, b) for a in range(len(sprites)) for b in range(len(sprites)) if a != b]
    print("| box IoU | pair back->front | back OKS | front OKS | back keypoints unoccluded / annotated | own boxes "
          "| back OKS, oracle box | back OKS, oracle box, front removed |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    summary = []
    for target in args.ious:
        rows = []
        for a, b in pairs:
            image, truths, labels = composite_with_labels(background, sprites, areas, a, b, target, args.height)
            if image is None:
                continue
            back, front = truths
            people = estimator(image, max_people=args.max_people)
            (back_oks, front_oks), _ = score(people, truths)
            annotated, visible = unoccluded(back, labels, occluder=1)
            boxes = estimator.detector(image).boxes_xyxy.astype(np.float64)
            boxes[:, 2:] -= boxes[:, :2]
            overlap = box_iou_xywh(boxes, np.stack([back.bbox_xywh, front.bbox_xywh])).reshape(-1, 2)
            matched, cols = linear_sum_assignment(-overlap)
            own_box = len(matched) == 2 and bool((overlap[matched, cols] >= 0.5).all())
            oracle = score(with_crop(estimator, image, back.bbox_xywh, people), truths)[0]
            removed = image.copy()
            removed[labels == 1] = background[labels == 1]
            oracle_removed = score(with_crop(estimator, removed, back.bbox_xywh, people), truths)[0]
            rows.append((back_oks, front_oks, visible / annotated, own_box, *oracle, *oracle_removed))
            if back_oks < 0.5:
                print(f"| {target:.1f} | {a}->{b} | {back_oks:.2f} | {front_oks:.2f} | {visible} / {annotated} | "
                      f"{'yes' if own_box else 'no'} | {oracle[0]:.2f} | {oracle_removed[0]:.2f} |")  # fmt: skip
        summary.append((target, np.array(rows, np.float64)))
    print("\n| box IoU | images | back recall | front recall | recall (both) | back keypoints unoccluded, mean "
          "(min-max) | own boxes | recall, oracle box | recall, oracle box + front removed |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for target, r in summary:
        recalled = r >= 0.5
        print(f"| {target:.1f} | {len(r)} | {recalled[:, 0].mean():.2f} | {recalled[:, 1].mean():.2f} | "
              f"{recalled[:, :2].mean():.2f} | {r[:, 2].mean():.0%} ({r[:, 2].min():.0%}-{r[:, 2].max():.0%}) | "
              f"{r[:, 3].mean():.0%} | {recalled[:, 4:6].mean():.2f} | {recalled[:, 6:8].mean():.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
