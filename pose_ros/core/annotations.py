"""Keypoint annotation files read into one form: COCO-style keypoint JSON and MPII-style lists.

COCO-style files are any file with `images`, `annotations` and a category whose `keypoints` list names the
joints (COCO-17, CrowdPose-14, PoseTrack-17, MPII-16 written as COCO, ...). The names, normalised by
`canonical_keypoint_name`, become the dataset's `Layout`, so joints are later matched to a model by name,
never by position. Everything wrong with a file raises `AnnotationError` with a one-line reason that names
the file and the record; tolerable gaps (no `area`, no `bbox`, no `num_keypoints`) are filled by stated
conventions and reported once each in `Dataset.warnings`.

Conventions:
- missing `area`: 0.53 · box width · box height, the rule of xtcocotools' COCOeval (used by CrowdPose
  evaluations) for files without segment areas; COCO's segment areas are about that fraction of the box.
- missing `bbox`: the tight box around the labelled keypoints (an annotation with neither is dropped).
- missing `num_keypoints`: the number of keypoints with visibility > 0.
- `iscrowd` (default 0) is kept: crowd regions are ignored by AP and never paired for PCK.
- PoseTrack ignore regions: `ignore_regions_x` / `ignore_regions_y` on an image record, one list of x and
  one list of y per polygon, become `Sample.ignore_regions`.
- PoseTrack images with `is_labeled: false` (video frames nobody annotated) are not samples: predictions
  there could only be false positives.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pose_ros.core.person import Person, bbox_from_keypoints
from pose_ros.core.skeletons import COCO17, COCO18_OPENPOSE, MPII16, Layout

AREA_FROM_BOX = 0.53  # missing `area` = AREA_FROM_BOX · w · h of the box (xtcocotools' rule)

# Spellings of the same joint in public layouts, after lower-casing and separators → "_".
KEYPOINT_SYNONYMS = {
    "top_head": "head_top",  # mmpose's name for CrowdPose's head joint
    "headtop": "head_top",
    "head": "head_top",  # CrowdPose-14: its "head" joint is the top of the head (AI Challenger's head top)
    "upperneck": "upper_neck",
}
_KNOWN_LIMB_LAYOUTS = (COCO17, COCO18_OPENPOSE, MPII16)


class AnnotationError(ValueError):
    """An annotation file that cannot be evaluated; the message is a one-line reason naming the file."""


def canonical_keypoint_name(name: str) -> str:
    """Joint name in the form the layouts use: "L Shoulder", "l_shoulder", "left-shoulder" → "left_shoulder"."""
    text = re.sub(r"[\s\-.]+", "_", str(name).strip().lower()).strip("_")
    for short, side in (("l_", "left_"), ("r_", "right_")):
        if text.startswith(short):
            text = side + text[len(short) :]
    return KEYPOINT_SYNONYMS.get(text, text)


@dataclass
class Sample:
    """One annotated image.

    Attributes:
        image_id: id in the annotation file (int for COCO files, the file name for MPII lists).
        file_name: image path relative to the image folder, as the file gives it.
        people: ground-truth people to pair for PCK (not crowd, at least one labelled keypoint), in the
            dataset layout; confidence 1 for labelled keypoints, 0 and NaN position for the others.
        areas: (N,) pixels², each person's OKS scale (COCO files), None for MPII lists.
        head_boxes: (N, 4) x1 y1 x2 y2 pixels, MPII head boxes when the list has them.
        ignore_regions: polygons (M, 2) pixels where predictions count neither as true nor false positives.
    """

    image_id: int | str
    file_name: str
    people: list[Person]
    areas: np.ndarray | None = None
    head_boxes: np.ndarray | None = None
    ignore_regions: list[np.ndarray] = field(default_factory=list)


@dataclass
class Dataset:
    """Annotated images of one format ("coco" or "mpii").

    `layout` names the file's joints (canonical names, file order). `coco` is the COCO file reduced to the
    evaluated category, with `area`, `bbox`, `num_keypoints` and `iscrowd` present on every annotation.
    `warnings` lists what was filled in or left out, one line per kind of gap.
    """

    kind: str
    layout: Layout
    samples: list[Sample]
    coco: dict[str, Any] | None = None
    category_id: int | None = None
    warnings: list[str] = field(default_factory=list)


def load_dataset(path: Path, category_id: int | None = None) -> Dataset:
    """Read a COCO-style keypoint file or an MPII-style list; AnnotationError saying what is wrong otherwise."""
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(
            f"annotation file {path} does not exist" if not path.exists() else f"{path} is not a file"
        )
    try:
        data = json.loads(path.read_text())
    except UnicodeDecodeError:
        raise AnnotationError(f"{path} is not a JSON text file") from None
    except json.JSONDecodeError as error:
        raise AnnotationError(f"{path} is not valid JSON: {error}") from None
    if isinstance(data, dict) and {"images", "annotations"} <= data.keys():
        return _coco_dataset(data, path, category_id)
    if (
        isinstance(data, list)
        and data
        and isinstance(data[0], dict)
        and {"image", "joints", "joints_vis"} <= data[0].keys()
    ):
        return _mpii_dataset(data, path)
    raise AnnotationError(
        f"{path}: neither a COCO keypoint file (a dict with images, annotations, categories) nor an MPII-style "
        "list (entries with image, joints, joints_vis)"
    )


def file_layout(names: list[str], skeleton: Any, name: str) -> Layout:
    """The Layout of a file's joints: canonical names; bones from its 1-based `skeleton`, else from known layouts."""
    keypoints = tuple(canonical_keypoint_name(n) for n in names)
    limbs: list[tuple[int, int]] = []
    if isinstance(skeleton, list) and all(
        isinstance(b, list | tuple) and len(b) == 2 and all(isinstance(i, int) and 1 <= i <= len(names) for i in b)
        for b in skeleton
    ):
        limbs = [(a - 1, b - 1) for a, b in skeleton]
    else:
        for known in _KNOWN_LIMB_LAYOUTS:
            for a, b in known.limbs:
                pair = known.keypoints[a], known.keypoints[b]
                if all(p in keypoints for p in pair):
                    bone = (keypoints.index(pair[0]), keypoints.index(pair[1]))
                    if bone not in limbs and bone[::-1] not in limbs:
                        limbs.append(bone)
    return Layout(name, keypoints, tuple(limbs))


def _ground_truth(xy: np.ndarray, visible: np.ndarray, layout: Layout, index: int, bbox: Any = None) -> Person:
    """A ground-truth person: confidence 1 for labelled keypoints, 0 (and NaN position) for the others."""
    xy = np.asarray(xy, np.float32).reshape(-1, 2).copy()
    conf = (np.asarray(visible) > 0).astype(np.float32)
    xy[conf == 0] = np.nan
    box = np.asarray(bbox, np.float32) if bbox is not None else bbox_from_keypoints(xy, conf)
    return Person(xy, conf, 1.0, box, layout.name, id=index)


def _pick_category(gt: dict[str, Any], path: Path, category_id: int | None) -> dict[str, Any]:
    """The category to evaluate: the one with a keypoint name list (or `category_id`)."""
    categories = gt.get("categories")
    if not isinstance(categories, list) or not all(isinstance(c, dict) and "id" in c for c in categories):
        raise AnnotationError(f"{path}: 'categories' must be a list of records with an 'id'")
    if category_id is not None:
        chosen = [c for c in categories if c["id"] == category_id]
        if not chosen:
            raise AnnotationError(f"{path}: no category with id {category_id}; ids: {[c['id'] for c in categories]}")
        return chosen[0]
    with_names = [c for c in categories if isinstance(c.get("keypoints"), list) and c["keypoints"]]
    if len(with_names) > 1:
        listed = ", ".join(f"{c['id']} ({c.get('name', '?')})" for c in with_names)
        raise AnnotationError(f"{path}: several categories have keypoints ({listed}); choose one with --category-id")
    if with_names:
        return with_names[0]
    if len(categories) == 1:
        return categories[0]
    raise AnnotationError(f"{path}: no category names its keypoints (a 'keypoints' list of joint names)")


def _coco_dataset(gt: dict[str, Any], path: Path, category_id: int | None) -> Dataset:
    warnings: list[str] = []
    category = _pick_category(gt, path, category_id)
    names = category.get("keypoints")
    if not isinstance(names, list) or not names:
        raise AnnotationError(
            f"{path}: category {category['id']} ({category.get('name', '?')}) has no 'keypoints' list naming its "
            "joints; add one (e.g. the 17 COCO names) so joints can be matched to the model by name"
        )
    if not all(isinstance(n, str) and n.strip() for n in names):
        raise AnnotationError(f"{path}: the 'keypoints' list of category {category['id']} must hold joint names")
    layout = file_layout(names, category.get("skeleton"), f"file:{category.get('name', category['id'])}")
    repeated = sorted({n for n in layout.keypoints if layout.keypoints.count(n) > 1})
    if repeated:
        raise AnnotationError(f"{path}: category {category['id']} names a joint twice: {', '.join(repeated)}")
    k = layout.num_keypoints
    images = gt["images"]
    if not isinstance(images, list) or not isinstance(gt["annotations"], list):
        raise AnnotationError(f"{path}: 'images' and 'annotations' must be lists")
    by_image: dict[int, list[dict[str, Any]]] = {}
    image_records = []
    for i, img in enumerate(images):
        if not isinstance(img, dict) or not isinstance(img.get("id"), int) or not isinstance(img.get("file_name"), str):
            raise AnnotationError(f"{path}: images[{i}] needs an integer 'id' and a 'file_name'")
        if img["id"] in by_image:
            raise AnnotationError(f"{path}: image id {img['id']} appears twice in 'images'")
        by_image[img["id"]] = []
        image_records.append(img)
    single_category = len(gt["categories"]) == 1
    missing = {"area": 0, "bbox": 0, "num_keypoints": 0, "dropped": 0, "other": 0}
    annotations = []
    for i, ann in enumerate(gt["annotations"]):
        where = (
            f"{path}: annotations[{i}] (id {ann.get('id', '?')})"
            if isinstance(ann, dict)
            else f"{path}: annotations[{i}]"
        )
        if not isinstance(ann, dict):
            raise AnnotationError(f"{where} is not a record")
        if ann.get("category_id", category["id"] if single_category else None) != category["id"]:
            missing["other"] += 1
            continue
        if ann.get("image_id") not in by_image:
            raise AnnotationError(f"{where} refers to image {ann.get('image_id')!r}, which is not in 'images'")
        completed = _complete_annotation(ann, k, where, category["id"], missing)
        if completed is not None:
            annotations.append(completed)
            by_image[ann["image_id"]].append(completed)
    warnings += _gap_warnings(missing, category)
    samples = []
    regions_seen = 0
    unlabelled = [img for img in image_records if img.get("is_labeled", True) is False]
    if unlabelled:
        warnings.append(
            f"{len(unlabelled)} images are marked is_labeled: false (video frames without annotations): left out"
        )
    for img in sorted(image_records, key=lambda r: r["id"]):
        if img.get("is_labeled", True) is False:
            continue
        people, areas = [], []
        for ann in by_image[img["id"]]:
            kp = np.asarray(ann["keypoints"], np.float64).reshape(k, 3)
            if ann["num_keypoints"] > 0 and not ann["iscrowd"]:
                people.append(_ground_truth(kp[:, :2], kp[:, 2], layout, len(people), ann["bbox"]))
                areas.append(float(ann["area"]))
        regions = _ignore_regions(img, path)
        regions_seen += len(regions)
        samples.append(Sample(img["id"], img["file_name"], people, np.array(areas, np.float64), ignore_regions=regions))
    coco = {"images": image_records, "annotations": annotations, "categories": [category]}
    dataset = Dataset("coco", layout, samples, coco, category["id"], warnings)
    if regions_seen:
        with_regions = sum(1 for s in samples if s.ignore_regions)
        warnings.append(
            f"{regions_seen} ignore regions on {with_regions} images: predictions whose box centre lies in one "
            "count neither as true nor as false positives"
        )
    return dataset


def _complete_annotation(
    ann: dict[str, Any], k: int, where: str, category_id: int, missing: dict[str, int]
) -> dict[str, Any] | None:
    """A copy of `ann` with keypoints checked and area, bbox, num_keypoints, iscrowd filled in (None: dropped)."""
    keypoints = ann.get("keypoints")
    if keypoints is None and ann.get("iscrowd", 0):
        keypoints = [0.0] * (3 * k)  # a crowd region drawn as a box only
    if not isinstance(keypoints, list) or len(keypoints) != 3 * k:
        count = len(keypoints) if isinstance(keypoints, list) else "no"
        raise AnnotationError(
            f"{where} has {count} keypoint values; its category names {k} joints, so it needs {3 * k} (x, y, v each)"
        )
    try:
        kp = np.asarray(keypoints, np.float64).reshape(k, 3)
    except (TypeError, ValueError):
        raise AnnotationError(f"{where}: keypoints must be numbers") from None
    out = {key: value for key, value in ann.items() if key != "segmentation"}
    out["keypoints"] = keypoints
    out["category_id"] = category_id
    out["iscrowd"] = int(bool(ann.get("iscrowd", 0)))
    if "num_keypoints" not in ann:
        missing["num_keypoints"] += 1
        out["num_keypoints"] = int(np.count_nonzero(kp[:, 2] > 0))
    bbox = ann.get("bbox")
    if bbox is None:
        labelled = kp[:, 2] > 0
        if not labelled.any():
            missing["dropped"] += 1
            return None
        missing["bbox"] += 1
        bbox = bbox_from_keypoints(kp[:, :2], labelled.astype(np.float32)).astype(float).tolist()
    if not isinstance(bbox, list | tuple) or len(bbox) != 4:
        raise AnnotationError(f"{where}: bbox must be [x, y, width, height]")
    out["bbox"] = [float(v) for v in bbox]
    if "area" not in ann:
        missing["area"] += 1
        out["area"] = AREA_FROM_BOX * out["bbox"][2] * out["bbox"][3]
    return out


def _gap_warnings(missing: dict[str, int], category: dict[str, Any]) -> list[str]:
    """One line per kind of gap filled while reading the annotations."""
    out = []
    if missing["area"]:
        out.append(
            f"{missing['area']} annotations have no 'area': using {AREA_FROM_BOX} × box width × height as the "
            "OKS scale (xtcocotools' rule; COCO's segment areas are about that fraction of the box)"
        )
    if missing["bbox"]:
        out.append(f"{missing['bbox']} annotations have no 'bbox': using the box around their labelled keypoints")
    if missing["dropped"]:
        out.append(f"{missing['dropped']} annotations have neither a 'bbox' nor a labelled keypoint: left out")
    if missing["num_keypoints"]:
        out.append(f"{missing['num_keypoints']} annotations have no 'num_keypoints': counting keypoints with v > 0")
    if missing["other"]:
        out.append(f"{missing['other']} annotations of other categories than {category['id']} left out")
    return out


def _ignore_regions(img: dict[str, Any], path: Path) -> list[np.ndarray]:
    """PoseTrack ignore regions of an image record: polygons (M, 2) from ignore_regions_x / ignore_regions_y."""
    xs, ys = img.get("ignore_regions_x"), img.get("ignore_regions_y")
    if xs is None and ys is None:
        return []
    where = f"{path}: image {img['id']}"
    if not isinstance(xs, list) or not isinstance(ys, list) or len(xs) != len(ys):
        raise AnnotationError(f"{where}: ignore_regions_x and ignore_regions_y must be lists of equal length")
    regions = []
    for x, y in zip(xs, ys, strict=True):
        if not isinstance(x, list) or not isinstance(y, list) or len(x) != len(y):
            raise AnnotationError(f"{where}: each ignore region needs as many x as y values")
        if len(x) >= 3:
            regions.append(np.stack([np.asarray(x, np.float64), np.asarray(y, np.float64)], axis=1))
    return regions


def _mpii_dataset(entries: list[Any], path: Path) -> Dataset:
    """Group MPII-style entries by image; head boxes ("head_box": [x1, y1, x2, y2]) are used when all have one."""
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not {"image", "joints", "joints_vis"} <= entry.keys():
            raise AnnotationError(f"{path}: entry {i} needs image, joints and joints_vis")
        joints, vis = np.asarray(entry["joints"], dtype=object), np.asarray(entry["joints_vis"], dtype=object)
        if joints.shape != (16, 2) or vis.shape != (16,):
            raise AnnotationError(
                f"{path}: entry {i} ({entry['image']}) needs joints (16, 2) and joints_vis (16,) in MPII order, "
                f"got {joints.shape} and {vis.shape}"
            )
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
