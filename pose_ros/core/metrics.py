"""Keypoint accuracy metrics: PCK, PCKh, OKS and the COCO keypoint AP/AR protocol (pure numpy).

- PCK@α: a predicted joint is correct when it lies within α · d_ref of the ground truth, where d_ref is a
  per-person body-size length (torso diameter, bounding-box size, head size), never a fixed pixel count.
- PCKh@α: PCK with a head-size reference. With MPII head boxes it is the official MPII rule
  (0.6 · head-box diagonal); without them, the clearly different variant "head_top_upper_neck" uses the
  ground-truth distance between head top and upper neck.
- OKS and `coco_keypoint_eval`: the COCO keypoint challenge metric, computed the way
  `pycocotools.cocoeval.COCOeval(iouType="keypoints")` computes it (same sorting, matching order, ignore
  rules, interpolation), so the ten numbers agree with it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pose_ros.core.skeletons import COCO17, MPII16, Layout

# Per-keypoint OKS constants σ of the COCO keypoint challenge (COCO-17 order), published by COCO.
COCO_KEYPOINT_SIGMAS = (
    np.array([0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89])
    / 10.0
)

# OKS constant σ of each joint by name, for files in any layout. COCO's 17 as published; for joints COCO has
# no σ for: head top and neck take CrowdPose's published constants (0.079 each, as its shoulders); PoseTrack's
# head_bottom and MPII's upper_neck and thorax, points between head top and shoulders, take the same 0.079;
# MPII's pelvis, a point between the hips, takes the hips' 0.107.
KEYPOINT_SIGMAS_BY_NAME: dict[str, float] = dict(zip(COCO17.keypoints, COCO_KEYPOINT_SIGMAS.tolist(), strict=True)) | {
    "head_top": 0.079,
    "neck": 0.079,
    "head_bottom": 0.079,
    "upper_neck": 0.079,
    "thorax": 0.079,
    "pelvis": 0.107,
}

# Names of the ten COCO keypoint summary numbers, in the order of COCOeval.stats.
COCO_KEYPOINT_STATS = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)  # OKS thresholds .50:.05:.95
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)  # 101-point interpolated precision
AREA_RANGES = {"all": (0.0, 1e10), "medium": (32.0**2, 96.0**2), "large": (96.0**2, 1e10)}
MAX_DETECTIONS = 20  # per image, highest scores first
MPII_HEAD_BOX_FACTOR = 0.6  # MPII's head size = 0.6 · head-box diagonal


def keypoint_sigmas(names: Sequence[str]) -> np.ndarray:
    """OKS constants (K,) for joints named `names` (canonical names); NaN for a joint without a known σ."""
    return np.array([KEYPOINT_SIGMAS_BY_NAME.get(n, np.nan) for n in names], np.float64)


def points_in_polygons(points_xy: np.ndarray, polygons: Sequence[np.ndarray]) -> np.ndarray:
    """(N,) bool: which points lie inside any of the polygons (even-odd rule; points on an edge may go either way).

    points_xy (N, 2) pixels; each polygon (M, 2) pixels, M ≥ 3, closed implicitly.
    """
    points = np.asarray(points_xy, np.float64).reshape(-1, 2)
    inside_any = np.zeros(len(points), bool)
    x, y = points[:, 0:1], points[:, 1:2]  # (N, 1)
    for polygon in polygons:
        poly = np.asarray(polygon, np.float64).reshape(-1, 2)
        if len(poly) < 3:
            continue
        x0, y0 = poly[:, 0], poly[:, 1]  # (M,)
        x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
        crosses = (y0 > y) != (y1 > y)  # (N, M): the edge spans the point's row
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at_y = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        inside_any |= (np.count_nonzero(crosses & (x < x_at_y), axis=1) % 2) == 1
    return inside_any


# ----------------------------------------------------------------------------------------------------------
# PCK / PCKh


@dataclass
class PCKResult:
    """Result of a PCK evaluation over N people with K joints.

    Attributes:
        per_joint: (K,) fraction of counted joints that are correct; NaN where no joint was counted.
        mean: correct / counted over all joints and people (joints weighted by how often they are counted,
            as MPII's mean does); NaN when nothing was counted.
        correct: (N, K) bool, prediction within α · reference of the ground truth (and counted).
        counted: (N, K) bool, ground truth visible, joint selected, reference length known and positive.
        alpha: the threshold factor α.
        reference: name of the reference length ("torso_diameter", "bbox_size", "mpii_head_box", ...).
    """

    per_joint: np.ndarray
    mean: float
    correct: np.ndarray
    counted: np.ndarray
    alpha: float
    reference: str


def pck(
    pred_xy: np.ndarray,
    gt_xy: np.ndarray,
    gt_visible: np.ndarray,
    ref_lengths: np.ndarray,
    alpha: float,
    reference: str = "custom",
    joint_mask: np.ndarray | None = None,
) -> PCKResult:
    """PCK@α: fraction of visible ground-truth joints predicted within α · ref_length (pixels).

    Args:
        pred_xy: (N, K, 2) predicted pixels; NaN marks a missing prediction (counted as wrong).
        gt_xy: (N, K, 2) ground-truth pixels.
        gt_visible: (N, K) bool, joints with a ground truth; the others are ignored.
        ref_lengths: (N,) pixels, each person's reference length; people with NaN or ≤ 0 are ignored.
        alpha: threshold factor (0.5 for PCKh@0.5, 0.2 for PCK@0.2 of the torso).
        reference: name of the reference length, carried into the result.
        joint_mask: (K,) bool, joints to score (default all); e.g. only joints a predicted layout has.
    """
    pred_xy = np.asarray(pred_xy, np.float64)
    gt_xy = np.asarray(gt_xy, np.float64)
    ref = np.asarray(ref_lengths, np.float64).reshape(-1)
    k = gt_xy.shape[1]
    mask = np.ones(k, bool) if joint_mask is None else np.asarray(joint_mask, bool)
    counted = np.asarray(gt_visible, bool) & mask[None, :] & (np.isfinite(ref) & (ref > 0))[:, None]
    distance = np.linalg.norm(pred_xy - gt_xy, axis=-1)  # (N, K), NaN for missing predictions
    with np.errstate(invalid="ignore"):
        correct = counted & (distance <= alpha * ref[:, None])
    n_counted = counted.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_joint = np.where(n_counted > 0, correct.sum(axis=0) / n_counted, np.nan)
    total = int(counted.sum())
    mean = float(correct.sum() / total) if total else float("nan")
    return PCKResult(per_joint, mean, correct, counted, float(alpha), reference)


def torso_diameter(gt_xy: np.ndarray, gt_visible: np.ndarray, layout: Layout = COCO17) -> np.ndarray:
    """Torso diameter (N,) pixels: left shoulder to right hip, else right shoulder to left hip; NaN if neither.

    gt_xy (N, K, 2), gt_visible (N, K) in `layout` (any layout naming the shoulders and hips).
    """
    gt_xy = np.asarray(gt_xy, np.float64)
    vis = np.asarray(gt_visible, bool)
    out = np.full(gt_xy.shape[0], np.nan)
    for a, b in (("right_shoulder", "left_hip"), ("left_shoulder", "right_hip")):
        i, j = layout.index(a), layout.index(b)
        ok = vis[:, i] & vis[:, j]
        out[ok] = np.linalg.norm(gt_xy[ok, i] - gt_xy[ok, j], axis=-1)
    return out


def bbox_size(bbox_xywh: np.ndarray) -> np.ndarray:
    """Bounding-box size (N,) pixels: the longer side of each box. bbox_xywh (N, 4) x, y, width, height."""
    box = np.asarray(bbox_xywh, np.float64).reshape(-1, 4)
    return np.maximum(box[:, 2], box[:, 3])


def mpii_head_size(head_boxes_xyxy: np.ndarray) -> np.ndarray:
    """MPII head size (N,) pixels: 0.6 · diagonal of the annotated head box. head_boxes_xyxy (N, 4) x1 y1 x2 y2."""
    box = np.asarray(head_boxes_xyxy, np.float64).reshape(-1, 4)
    return MPII_HEAD_BOX_FACTOR * np.linalg.norm(box[:, 2:] - box[:, :2], axis=-1)


def head_top_upper_neck_length(gt_xy: np.ndarray, gt_visible: np.ndarray, layout: Layout = MPII16) -> np.ndarray:
    """Head segment (N,) pixels: ground-truth head top to upper neck; NaN when either is not annotated."""
    gt_xy = np.asarray(gt_xy, np.float64)
    vis = np.asarray(gt_visible, bool)
    top, neck = layout.index("head_top"), layout.index("upper_neck")
    length = np.linalg.norm(gt_xy[:, top] - gt_xy[:, neck], axis=-1)
    return np.where(vis[:, top] & vis[:, neck], length, np.nan)


def pckh(
    pred_xy: np.ndarray,
    gt_xy: np.ndarray,
    gt_visible: np.ndarray,
    alpha: float = 0.5,
    head_boxes_xyxy: np.ndarray | None = None,
    layout: Layout = MPII16,
    joint_mask: np.ndarray | None = None,
) -> PCKResult:
    """PCKh@α with a head-size reference, arrays as in `pck` (MPII-16 layout by default).

    With `head_boxes_xyxy` (N, 4) this is the official MPII rule (reference "mpii_head_box"). Without head
    boxes it uses the ground-truth head-top–upper-neck distance (reference "head_top_upper_neck"): a
    different, smaller reference, so its numbers are not comparable with published MPII PCKh.
    """
    if head_boxes_xyxy is not None:
        ref, name = mpii_head_size(head_boxes_xyxy), "mpii_head_box"
    else:
        ref, name = head_top_upper_neck_length(gt_xy, gt_visible, layout), "head_top_upper_neck"
    return pck(pred_xy, gt_xy, gt_visible, ref, alpha, name, joint_mask)


def head_normalized_similarity(
    pred_xy: np.ndarray,
    gt_xy: np.ndarray,
    gt_visible: np.ndarray,
    ref_lengths: np.ndarray,
    joint_mask: np.ndarray | None = None,
) -> np.ndarray:
    """Similarity (G, P) of G ground-truth people to P predictions: mean over scored joints of exp(-d² / 2r²).

    An OKS-like score with each person's reference length r (e.g. the head segment) as the scale, used to
    pair people before PCK. pred_xy (P, K, 2) (NaN: missing, contributes 0), gt_xy (G, K, 2), gt_visible
    (G, K), ref_lengths (G,), joint_mask (K,). People without scored joints or reference get 0.
    """
    pred_xy = np.asarray(pred_xy, np.float64)
    gt_xy = np.asarray(gt_xy, np.float64)
    ref = np.asarray(ref_lengths, np.float64).reshape(-1)
    k = gt_xy.shape[1]
    mask = np.ones(k, bool) if joint_mask is None else np.asarray(joint_mask, bool)
    scored = np.asarray(gt_visible, bool) & mask[None, :] & (np.isfinite(ref) & (ref > 0))[:, None]  # (G, K)
    d2 = np.sum((gt_xy[:, None] - pred_xy[None]) ** 2, axis=-1)  # (G, P, K)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_joint = np.nan_to_num(np.exp(-d2 / (2 * ref[:, None, None] ** 2)), nan=0.0)
    counts = scored.sum(axis=1)  # (G,)
    total = np.sum(per_joint * scored[:, None, :], axis=-1)
    return np.where(counts[:, None] > 0, total / np.maximum(counts[:, None], 1), 0.0)


def greedy_match(similarity: np.ndarray) -> np.ndarray:
    """One-to-one pairing of G ground-truth people with P predictions, most similar pairs first.

    similarity (G, P); pairs with similarity ≤ 0 or NaN are never made. Returns (G,) prediction index, -1 if none.
    """
    similarity = np.nan_to_num(np.asarray(similarity, np.float64), nan=0.0)
    matches = np.full(similarity.shape[0], -1)
    if similarity.size == 0:
        return matches
    used = np.zeros(similarity.shape[1], bool)
    order = np.argsort(-similarity, axis=None, kind="stable")
    for g, p in zip(*np.unravel_index(order, similarity.shape), strict=True):
        if similarity[g, p] <= 0:
            break
        if matches[g] < 0 and not used[p]:
            matches[g], used[p] = p, True
    return matches


# ----------------------------------------------------------------------------------------------------------
# OKS


def oks(
    dt_xy: np.ndarray,
    gt_xy: np.ndarray,
    gt_visible: np.ndarray,
    gt_area: np.ndarray,
    gt_bbox_xywh: np.ndarray | None = None,
    sigmas: np.ndarray = COCO_KEYPOINT_SIGMAS,
) -> np.ndarray:
    """Object keypoint similarity (D, G) between D detections and G ground-truth people, as COCO defines it.

    OKS = mean over the visible ground-truth keypoints of exp(-d² / (2 · s² · (2σ)²)) with s² = area.
    A ground truth with no visible keypoint is compared through its box enlarged by its size on each side
    (distance from each detected keypoint to that region), as COCOeval does.

    Args:
        dt_xy: (D, K, 2) detected pixels.
        gt_xy: (G, K, 2) ground-truth pixels.
        gt_visible: (G, K) bool, ground-truth keypoints labelled (COCO v > 0).
        gt_area: (G,) pixels², the ground-truth segment area.
        gt_bbox_xywh: (G, 4) pixels, needed only for ground truths without visible keypoints.
        sigmas: (K,) per-keypoint constants σ.
    """
    dt_xy = np.asarray(dt_xy, np.float64)
    gt_xy = np.asarray(gt_xy, np.float64)
    vis = np.asarray(gt_visible, bool)
    area = np.asarray(gt_area, np.float64)
    variances = (np.asarray(sigmas, np.float64) * 2) ** 2
    d, g = dt_xy.shape[0], gt_xy.shape[0]
    out = np.zeros((d, g))
    for j in range(g):
        if vis[j].any():
            dx = dt_xy[:, :, 0] - gt_xy[j, None, :, 0]
            dy = dt_xy[:, :, 1] - gt_xy[j, None, :, 1]
        else:
            if gt_bbox_xywh is None:
                raise ValueError("oks: a ground truth without visible keypoints needs gt_bbox_xywh")
            dx, dy = _distance_to_enlarged_box(dt_xy, np.asarray(gt_bbox_xywh, np.float64)[j])
        e = (dx**2 + dy**2) / variances / (area[j] + np.spacing(1)) / 2
        if vis[j].any():
            e = e[:, vis[j]]
        out[:, j] = np.sum(np.exp(-e), axis=1) / e.shape[1]
    return out


def _distance_to_enlarged_box(dt_xy: np.ndarray, bbox_xywh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-axis distance (D, K) of each keypoint to the box enlarged by its width/height on every side."""
    x, y, w, h = bbox_xywh
    x0, x1, y0, y1 = x - w, x + 2 * w, y - h, y + 2 * h
    xs, ys = dt_xy[:, :, 0], dt_xy[:, :, 1]
    dx = np.maximum(0, x0 - xs) + np.maximum(0, xs - x1)
    dy = np.maximum(0, y0 - ys) + np.maximum(0, ys - y1)
    return dx, dy


# ----------------------------------------------------------------------------------------------------------
# COCO keypoint AP / AR


@dataclass
class _Truth:
    """The ground-truth people of one image and category, in annotation order."""

    xy: np.ndarray  # (G, K, 2)
    visible: np.ndarray  # (G, K) bool
    area: np.ndarray  # (G,)
    bbox: np.ndarray  # (G, 4)
    crowd: np.ndarray  # (G,) bool
    ignore: np.ndarray  # (G,) bool: crowd, or no labelled keypoint


@dataclass
class _Detections:
    """The detections of one image and category, sorted by score (stable), at most MAX_DETECTIONS."""

    xy: np.ndarray  # (D, K, 2)
    area: np.ndarray  # (D,)
    score: np.ndarray  # (D,)


@dataclass
class _ImageResult:
    """Matching of one image and category at one area range, over the T OKS thresholds."""

    score: np.ndarray  # (D,)
    matched: np.ndarray  # (T, D) bool
    ignored: np.ndarray  # (T, D) bool
    gt_ignored: np.ndarray  # (G,) bool


def coco_keypoint_eval(
    gt: dict[str, Any],
    detections: Sequence[dict[str, Any]],
    image_ids: Sequence[int] | None = None,
    sigmas: np.ndarray = COCO_KEYPOINT_SIGMAS,
) -> dict[str, float]:
    """COCO keypoint AP/AR: the ten numbers of `COCOeval(iouType="keypoints").stats`, by name.

    Args:
        gt: a COCO keypoint annotation file, loaded (images, annotations, categories).
        detections: COCO results: dicts with image_id, category_id, keypoints [x, y, v] * K, score
            (an optional bbox makes the detection area bbox w · h, as pycocotools' loadRes does when the
            first result has one; otherwise the area is that of the keypoints' extent).
        image_ids: evaluate only these images (default: every image of `gt`).
        sigmas: (K,) OKS constants.

    Returns:
        {"AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"}: floats in [0, 1], or -1 where
        there is no ground truth to measure (as COCOeval reports it). Annotation ids play no role: matches are
        kept as flags, so an annotation id of 0 (never used by COCO) is handled correctly, unlike pycocotools.
    """
    all_images = sorted({int(img["id"]) for img in gt["images"]})
    images = sorted(set(all_images if image_ids is None else map(int, image_ids)))
    categories = sorted({int(c["id"]) for c in gt["categories"]})
    unknown = {int(d["image_id"]) for d in detections} - set(all_images)
    if unknown:
        raise ValueError(f"detections name images that are not in the ground truth: {sorted(unknown)[:10]}")
    truths = _group_truths(gt["annotations"])
    dets = _group_detections(detections)
    precision = -np.ones((len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS), len(categories), len(AREA_RANGES)))
    recall = -np.ones((len(IOU_THRESHOLDS), len(categories), len(AREA_RANGES)))
    for k, cat in enumerate(categories):
        per_image = [(truths.get((i, cat)), dets.get((i, cat))) for i in images]
        per_image = [(t, d) for t, d in per_image if t is not None or d is not None]
        similarities = [_image_oks(t, d, sigmas) for t, d in per_image]
        for a, area_range in enumerate(AREA_RANGES.values()):
            results = [_match_image(t, d, s, area_range) for (t, d), s in zip(per_image, similarities, strict=True)]
            _accumulate(results, precision[:, :, k, a], recall[:, k, a])
    return _summarize(precision, recall)


def _group_truths(annotations: Sequence[dict[str, Any]]) -> dict[tuple[int, int], _Truth]:
    """Ground truths by (image id, category id), keeping the annotation order."""
    groups: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
    for ann in annotations:
        groups[int(ann["image_id"]), int(ann["category_id"])].append(ann)
    out = {}
    for key, anns in groups.items():
        kp = np.array([a["keypoints"] for a in anns], np.float64).reshape(len(anns), -1, 3)
        crowd = np.array([bool(a.get("iscrowd", 0)) for a in anns])
        no_keypoints = np.array([a["num_keypoints"] == 0 for a in anns])
        out[key] = _Truth(
            xy=kp[:, :, :2],
            visible=kp[:, :, 2] > 0,
            area=np.array([a["area"] for a in anns], np.float64),
            bbox=np.array([a["bbox"] for a in anns], np.float64).reshape(-1, 4),
            crowd=crowd,
            ignore=crowd | no_keypoints,
        )
    return out


def _group_detections(detections: Sequence[dict[str, Any]]) -> dict[tuple[int, int], _Detections]:
    """Detections by (image id, category id), sorted by descending score (stable), cut to MAX_DETECTIONS."""
    use_bbox_area = bool(detections) and bool(detections[0].get("bbox"))
    groups: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
    for det in detections:
        groups[int(det["image_id"]), int(det["category_id"])].append(det)
    out = {}
    for key, group in groups.items():
        score = np.array([d["score"] for d in group], np.float64)
        order = np.argsort(-score, kind="mergesort")[:MAX_DETECTIONS]
        kp = np.array([group[i]["keypoints"] for i in order], np.float64).reshape(len(order), -1, 3)
        if use_bbox_area:
            area = np.array([group[i]["bbox"][2] * group[i]["bbox"][3] for i in order], np.float64)
        else:
            extent = kp[:, :, :2].max(axis=1) - kp[:, :, :2].min(axis=1)
            area = extent[:, 0] * extent[:, 1]
        out[key] = _Detections(xy=kp[:, :, :2], area=area, score=score[order])
    return out


def _image_oks(truth: _Truth | None, dets: _Detections | None, sigmas: np.ndarray) -> np.ndarray:
    """OKS (D, G) of one image and category; empty when either side is empty."""
    if truth is None or dets is None:
        return np.zeros((0, 0))
    return oks(dets.xy, truth.xy, truth.visible, truth.area, truth.bbox, sigmas)


def _match_image(
    truth: _Truth | None, dets: _Detections | None, similarity: np.ndarray, area_range: tuple[float, float]
) -> _ImageResult:
    """Greedy matching of one image, highest-scoring detection first, at every OKS threshold.

    Each detection takes the not-yet-matched ground truth with the highest OKS ≥ threshold, preferring
    ground truths that are not ignored (crowds may take several detections). Detections matched to ignored
    ground truths, and unmatched detections outside the area range, are ignored.
    """
    lo, hi = area_range
    n_thr = len(IOU_THRESHOLDS)
    if truth is None:
        gt_ignored = np.zeros(0, bool)
        crowd = np.zeros(0, bool)
    else:
        out_of_range = (truth.area < lo) | (truth.area > hi)
        gt_order = np.argsort(truth.ignore | out_of_range, kind="mergesort")
        gt_ignored = (truth.ignore | out_of_range)[gt_order]
        crowd = truth.crowd[gt_order]
        if similarity.size:
            similarity = similarity[:, gt_order]
    n_dt = 0 if dets is None else len(dets.score)
    matched = np.zeros((n_thr, n_dt), bool)
    ignored = np.zeros((n_thr, n_dt), bool)
    if similarity.size:
        for t, threshold in enumerate(IOU_THRESHOLDS):
            _match_at_threshold(similarity, gt_ignored, crowd, min(threshold, 1 - 1e-10), matched[t], ignored[t])
    if dets is None:
        return _ImageResult(np.zeros(0), matched, ignored, gt_ignored)
    dt_out_of_range = (dets.area < lo) | (dets.area > hi)
    ignored |= ~matched & dt_out_of_range[None, :]
    return _ImageResult(dets.score, matched, ignored, gt_ignored)


def _match_at_threshold(
    similarity: np.ndarray,
    gt_ignored: np.ndarray,
    crowd: np.ndarray,
    threshold: float,
    matched: np.ndarray,
    ignored: np.ndarray,
) -> None:
    """Fill matched (D,) and ignored (D,) for one threshold; ground truths are sorted non-ignored first."""
    gt_taken = np.zeros(len(gt_ignored), bool)
    for i in range(similarity.shape[0]):
        best, best_j = threshold, -1
        for j in range(len(gt_ignored)):
            if gt_taken[j] and not crowd[j]:
                continue
            if best_j > -1 and not gt_ignored[best_j] and gt_ignored[j]:
                break
            if similarity[i, j] < best:
                continue
            best, best_j = similarity[i, j], j
        if best_j == -1:
            continue
        matched[i] = True
        ignored[i] = gt_ignored[best_j]
        gt_taken[best_j] = True


def _accumulate(results: list[_ImageResult], precision: np.ndarray, recall: np.ndarray) -> None:
    """Precision (T, R) at the recall thresholds and final recall (T,) over all images; left at -1 without gt."""
    if not results:
        return
    n_positive = int(sum(np.count_nonzero(~r.gt_ignored) for r in results))
    if n_positive == 0:
        return
    scores = np.concatenate([r.score for r in results])
    order = np.argsort(-scores, kind="mergesort")
    matched = np.concatenate([r.matched for r in results], axis=1)[:, order]
    ignored = np.concatenate([r.ignored for r in results], axis=1)[:, order]
    tp_sum = np.cumsum(matched & ~ignored, axis=1).astype(float)
    fp_sum = np.cumsum(~matched & ~ignored, axis=1).astype(float)
    for t in range(tp_sum.shape[0]):
        tp, fp = tp_sum[t], fp_sum[t]
        n = len(tp)
        rc = tp / n_positive
        pr = tp / (fp + tp + np.spacing(1))
        recall[t] = rc[-1] if n else 0.0
        pr = np.maximum.accumulate(pr[::-1])[::-1]  # precision envelope: best precision at any higher recall
        idx = np.searchsorted(rc, RECALL_THRESHOLDS, side="left")
        reached = idx < n  # recall thresholds beyond the final recall keep precision 0
        precision[t] = 0.0
        precision[t, reached] = pr[idx[reached]]


def _summarize(precision: np.ndarray, recall: np.ndarray) -> dict[str, float]:
    """The ten COCOeval keypoint numbers from precision (T, R, K, A) and recall (T, K, A)."""
    t50, t75 = int(np.argmin(np.abs(IOU_THRESHOLDS - 0.5))), int(np.argmin(np.abs(IOU_THRESHOLDS - 0.75)))
    area = {name: a for a, name in enumerate(AREA_RANGES)}

    def mean_valid(values: np.ndarray) -> float:
        valid = values[values > -1]
        return float(np.mean(valid)) if valid.size else -1.0

    stats = []
    for array in (precision, recall):
        stats += [
            mean_valid(array[..., area["all"]]),
            mean_valid(array[t50, ..., area["all"]]),
            mean_valid(array[t75, ..., area["all"]]),
            mean_valid(array[..., area["medium"]]),
            mean_valid(array[..., area["large"]]),
        ]
    return dict(zip(COCO_KEYPOINT_STATS, stats, strict=True))
