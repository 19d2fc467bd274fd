"""Top-down on overlapping people: does each of two overlapping people get their own skeleton?

Pairs of real people (whole upright people of a COCO-17 keypoint file, cut out with their segmentation
polygons, `bench.scenes`) are pasted onto an empty street (the temporal median of vtest.avi) at one height
(`--height` px), the front one 5 % taller and 3 % of the height lower, shifted sideways until their
ground-truth boxes overlap with box IoU = the target (0.3 ... 0.7). Every ordered pair of `--people`
sprites (either one in front) at every target IoU is one image (pairs whose widths differ too much to
reach the IoU are left out: "images").

Per image CenterNet runs once; its person boxes go through box NMS and the keypoint model of each variant
("boxes": box NMS IoU 0.5 without a skeleton check, as main before issue 17; NMS IoU 0.7 and duplicate
skeletons with OKS > 0.7 removed; that plus the second-person search inside each crop, the default now
(`second_person_threshold`); and that plus `bottom_up_proposals`, MoveNet MultiPose's people's boxes as
extra crops) and each decoder (regression, heatmap, and "heatmap-global":
the heatmap decoder before issue 17, the global maximum per keypoint). Its people (at most `--max-people`)
are matched one-to-one to the two ground-truth people by OKS (Hungarian; COCO σ, area = annotated
segmentation area scaled with the sprite, all annotated keypoints, occluded ones too). Reported: recall =
ground-truth people whose matched skeleton has OKS >= 0.5; both = images where both people are recalled;
mean OKS of the two (0 for an unmatched one); people / image; stolen = keypoints of matched skeletons that
lie within 0.1 box height of the *other* person's keypoint of the same name while more than 0.1 box height
from their own person's (a keypoint taken from the neighbour).

Run from the repository root:  python -m bench.eval_top_down_overlap   (5-20 minutes on 2 shared CPU cores)
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from bench.eval_tracking import empty_street
from bench.scenes import (
    DEFAULT_ANNOTATIONS,
    AnnotationSet,
    load_sprites,
    paste,
    scaled_sprite,
    select_sprite_annotations,
)
from pose_ros.core import assets
from pose_ros.core.boxes import box_iou_xywh
from pose_ros.core.decode import argmax_subpixel
from pose_ros.core.estimators.top_down import TopDownEstimator, TopDownSettings
from pose_ros.core.metrics import COCO_KEYPOINT_SIGMAS, oks
from pose_ros.core.skeletons import COCO17

IOUS = (0.3, 0.4, 0.5, 0.6, 0.7)
DECODERS = ("regression", "heatmap", "heatmap-global")
# box NMS IoU, duplicate-skeleton OKS (1: none), MultiPose boxes as extra proposals, second-person search
# threshold (1: off): main before issue 17, the default before the second-person search, the default now,
# and that plus bottom_up_proposals
VARIANTS = {
    "nms 0.5 (main)": (0.5, 1.0, False, 1.0),
    "nms 0.7 + duplicates": (0.7, 0.7, False, 1.0),
    "+ second-person search (default)": (0.7, 0.7, False, TopDownSettings.second_person_threshold),
    "+ bottom_up_proposals": (0.7, 0.7, True, TopDownSettings.second_person_threshold),
}


def global_argmax_decoder(model):
    """The heatmap decoder before issue 17 (for comparison): per keypoint the global heatmap maximum of the
    crop, refined by the parabola fit -> (N, 17, 3) (y, x, score) normalised to the crop."""

    def decode(maps, centres=None):  # the global maximum ignores the person's centre
        xy, conf = argmax_subpixel(maps["heatmap"].permute(0, 3, 1, 2))
        normalised = (xy + 0.5) / model.map_size
        return torch.stack([normalised[..., 1], normalised[..., 0], conf], dim=-1)

    return decode


@dataclass
class Truth:
    keypoints: np.ndarray  # (17, 3) x y v image pixels
    bbox_xywh: np.ndarray  # (4,)
    area: float


def composite(background, sprites, areas, back: int, front: int, target_iou: float, height: float):
    """Image with sprite `back` behind sprite `front`, boxes at IoU `target_iou` -> (image, [back, front] Truth);
    (None, []) when the two boxes cannot overlap that much (very different widths)."""
    image, truths, _ = composite_with_labels(background, sprites, areas, back, front, target_iou, height)
    return image, truths


def composite_with_labels(background, sprites, areas, back: int, front: int, target_iou: float, height: float):
    """As `composite`, plus the label of every pixel (H, W) int32: -1 background, 0 back person, 1 front person
    (what the image shows there); (None, [], None) when the IoU cannot be reached."""
    placed = []
    for index, scale in ((back, 1.0), (front, 1.05)):
        rgb, mask, keypoints = scaled_sprite(sprites[index], height * scale)
        area = areas[index] * (height * scale / sprites[index].rgb.shape[0]) ** 2
        placed.append((rgb, mask, keypoints, area))
    image_h, image_w = background.shape[:2]
    feet_y = 0.5 * image_h + 0.6 * height
    (w0, h0), (w1, h1) = (placed[0][0].shape[1], placed[0][0].shape[0]), (placed[1][0].shape[1], placed[1][0].shape[0])
    box0 = np.array([image_w / 2 - w0, feet_y - h0, w0, h0], np.float64)

    def front_box(dx: float) -> np.ndarray:
        return np.array([box0[0] + dx, feet_y + 0.03 * height - h1, w1, h1])

    low, high = 0.0, w0 + w1  # IoU falls as the front person moves right: bisection on the shift
    for _ in range(40):
        mid = (low + high) / 2
        low, high = (mid, high) if box_iou_xywh(box0, front_box(mid))[0, 0] > target_iou else (low, mid)
    boxes = [box0, front_box((low + high) / 2)]
    if abs(box_iou_xywh(*boxes)[0, 0] - target_iou) > 0.02:
        return None, [], None  # not reachable: the narrower box inside the wider one overlaps less
    image = background.copy()
    labels = np.full(image.shape[:2], -1, np.int32)
    truths = []
    for label, ((rgb, mask, keypoints, area), box) in enumerate(zip(placed, boxes, strict=True)):
        x0, y0 = round(box[0]), round(box[1])
        paste(image, labels, rgb, mask, x0, y0, label)
        shifted = keypoints.copy()
        shifted[:, :2] += (x0, y0)
        truths.append(Truth(shifted, np.array([x0, y0, rgb.shape[1], rgb.shape[0]], np.float64), area))
    return image, truths, labels


def memoised_heads(heads):
    """`heads` remembering its last 8 results by crop content (the decoders and box variants of one image
    share crops, and the network does not depend on the decoder)."""
    memory: dict[bytes, dict] = {}

    def cached(crops: torch.Tensor) -> dict:
        key = hashlib.sha1(crops.cpu().numpy().tobytes()).digest()
        if key not in memory:
            if len(memory) >= 8:
                memory.pop(next(iter(memory)))
            memory[key] = heads(crops)
        return memory[key]

    return cached


def memoised(function):
    """`function(image)` remembering its last result by image content."""
    memory: dict[bytes, object] = {}

    def cached(image: np.ndarray):
        key = hashlib.sha1(image.tobytes()).digest()
        if key not in memory:
            memory.clear()
            memory[key] = function(image)
        return memory[key]

    return cached


def score(people, truths: list[Truth]) -> tuple[list[float], int]:
    """Per truth the OKS of its one-to-one matched skeleton (0 when none), and the stolen keypoint count."""
    if not people:
        return [0.0] * len(truths), 0
    gt_xy = np.stack([t.keypoints[:, :2] for t in truths])
    visible = np.stack([t.keypoints[:, 2] > 0 for t in truths])
    areas = np.array([t.area for t in truths])
    pred_xy = np.stack([p.keypoints_xy for p in people]).astype(np.float64)
    similarity = np.zeros((len(truths), len(people)))
    for g in range(len(truths)):
        similarity[g] = oks(pred_xy, gt_xy[g : g + 1], visible[g : g + 1], areas[g : g + 1],
                            sigmas=COCO_KEYPOINT_SIGMAS)[:, 0]  # fmt: skip
    rows, cols = linear_sum_assignment(-similarity)
    result = [0.0] * len(truths)
    stolen = 0
    for g, p in zip(rows, cols, strict=True):
        result[g] = float(similarity[g, p])
        other = 1 - g
        tolerance = 0.1 * truths[g].bbox_xywh[3]
        own = np.linalg.norm(pred_xy[p] - gt_xy[g], axis=1)
        theirs = np.linalg.norm(pred_xy[p] - gt_xy[other], axis=1)
        both = visible[g] & visible[other]
        stolen += int((both & (theirs <= tolerance) & (own > tolerance)).sum())
    return result, stolen


def add_scene_arguments(parser: argparse.ArgumentParser) -> None:
    """The composites' options (annotation file, people, height, IoUs), shared with bench.diag_top_down_overlap."""
    parser.add_argument("--annotations", type=Path, default=DEFAULT_ANNOTATIONS, help="COCO-17 keypoint file")
    parser.add_argument("--images", type=Path, help="image folder of the annotation file (default: its folder)")
    parser.add_argument("--people", type=int, default=5, help="whole upright people to pair")
    parser.add_argument("--height", type=float, default=300.0, help="person height in pixels")
    parser.add_argument("--ious", type=float, nargs="+", default=IOUS, help="target box IoUs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_scene_arguments(parser)
    parser.add_argument("--decoders", nargs="+", default=DECODERS, choices=DECODERS)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), metavar="VARIANT",
                        help=f"box variants to run (default: all of {list(VARIANTS)})")  # fmt: skip
    parser.add_argument("--max-people", type=int, default=6, help="as pose_node's max_people")
    args = parser.parse_args()
    annotations = AnnotationSet.load(args.annotations, args.images)
    if annotations.keypoint_names and annotations.keypoint_names != list(COCO17.keypoints):
        sys.exit(f"{args.annotations}: needs COCO-17 keypoints, got {annotations.keypoint_names}")
    ids = select_sprite_annotations(annotations, args.people)
    sprites = load_sprites(annotations, ids)
    areas = [annotations.by_id(i).get("area") or float(s.mask.sum()) for i, s in zip(ids, sprites, strict=True)]
    background = empty_street(assets.demo_data_dir() / "vtest.avi")
    pairs = [(a, b) for a in range(len(sprites)) for b in range(len(sprites)) if a != b]
    print(f"people: annotation ids {' '.join(map(str, ids))}; {len(pairs)} ordered pairs x {len(args.ious)} IoUs; "
          f"height {args.height:g} px")  # fmt: skip
    print("\n| boxes | decoder | box IoU | images | recall (OKS >= 0.5) | both recalled | mean OKS | people / image "
          "| stolen |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    estimator = TopDownEstimator(TopDownSettings(device="cpu", max_people=args.max_people, bottom_up_proposals=True))
    detector, model = estimator.detector, estimator.keypoints
    plain_heatmap = model.decode_heatmap
    model.heads = memoised_heads(model.heads)
    estimator.proposer = memoised(estimator.proposer)
    rows: dict[tuple[str, str, float], list] = {}
    for target in args.ious:
        for a, b in pairs:
            image, truths = composite(background, sprites, areas, a, b, target, args.height)
            if image is None:
                continue
            model_input, letterbox = detector.preprocess(image)
            raw = detector.run_model(model_input)[0]
            for variant, (nms_iou, duplicate_oks, proposals, second) in VARIANTS.items():
                if variant not in args.variants:
                    continue
                detector.settings = replace(detector.settings, nms_iou=nms_iou)
                estimator.settings = replace(
                    estimator.settings, duplicate_oks=duplicate_oks, nms_iou=nms_iou, second_person_threshold=second
                )
                found = detector.decode(raw, letterbox, max_detections=2 * args.max_people)
                boxes, box_scores = found.boxes_xyxy, found.scores
                if proposals:
                    boxes, box_scores = estimator._with_proposals(image, boxes, box_scores, 2 * args.max_people)
                for decoder in args.decoders:
                    model.settings = replace(model.settings, decoder=decoder.split("-")[0])
                    model.decode_heatmap = (
                        global_argmax_decoder(model) if decoder == "heatmap-global" else plain_heatmap
                    )
                    people = estimator.estimate(image, boxes, box_scores)[: args.max_people]
                    values, taken = score(people, truths)
                    rows.setdefault((variant, decoder, target), []).append((values, taken, len(people)))
        print(f"  ... IoU {target} done", file=sys.stderr, flush=True)
    for (variant, decoder, target), results in rows.items():
        n = len(results)
        values = np.array([r[0] for r in results])  # (n, 2)
        recalled, both = (values >= 0.5).mean(), (values >= 0.5).all(axis=1).mean()
        stolen, people = sum(r[1] for r in results), np.mean([r[2] for r in results])
        print(f"| {variant} | {decoder} | {target:.1f} | {n} | {recalled:.3f} | {both:.3f} | {values.mean():.3f} | "
              f"{people:.2f} | {stolen} |")  # fmt: skip


if __name__ == "__main__":
    main()
