"""Real people from any COCO-style keypoint annotation file, for the tracking and top-down benchmarks.

`AnnotationSet.load(annotation_file, image_dir)` reads a COCO-style file (images, annotations with `bbox`,
optional `segmentation` polygons, `keypoints`, `num_keypoints`, `iscrowd`): nothing is hard-coded to one file.
People are cut out of their images with their annotated segmentation polygons (a box-shaped mask when an
annotation has none or only RLE) and become `Sprite`s that the benchmarks paste into rendered frames.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("POSE_ROS_SHARED", REPO_ROOT.parent / "shared"))  # as test/conftest.py
COCO_DIR = SHARED_DIR / "data" / "coco-sample"
DEFAULT_ANNOTATIONS = COCO_DIR / "test_coco.json"


@dataclass
class Sprite:
    """A person cut out of an image: rgb (h, w, 3) uint8, mask (h, w) bool, keypoints (K, 3) x y v in sprite
    pixels (v = 0: not annotated), and the annotation id it came from."""

    rgb: np.ndarray
    mask: np.ndarray
    keypoints: np.ndarray
    annotation_id: int


@dataclass
class AnnotationSet:
    """A COCO-style keypoint annotation file with its image folder.

    Attributes:
        images: image records by id (`file_name`, `width`, `height`, ...).
        annotations: annotation records (person category), in file order.
        image_dir: folder the `file_name`s are relative to.
        keypoint_names: the person category's `keypoints` list (may be empty).
    """

    images: dict[int, dict]
    annotations: list[dict]
    image_dir: Path
    keypoint_names: list[str]

    @classmethod
    def load(cls, annotation_file: Path, image_dir: Path | None = None) -> AnnotationSet:
        """Read `annotation_file`; images are looked up in `image_dir` (default: the file's folder)."""
        data = json.loads(Path(annotation_file).read_text())
        categories = data.get("categories") or [{}]
        person = next((c for c in categories if c.get("name") == "person"), categories[0])
        person_id = person.get("id")
        annotations = [
            a for a in data["annotations"] if person_id is None or a.get("category_id", person_id) == person_id
        ]
        return cls(
            images={image["id"]: image for image in data["images"]},
            annotations=annotations,
            image_dir=Path(image_dir) if image_dir else Path(annotation_file).parent,
            keypoint_names=list(person.get("keypoints", [])),
        )

    def image_rgb(self, image_id: int) -> np.ndarray:
        """(H, W, 3) uint8 RGB of an image; FileNotFoundError naming the path when it cannot be read."""
        path = self.image_dir / self.images[image_id]["file_name"]
        bgr = cv2.imread(str(path))
        if bgr is None:
            raise FileNotFoundError(f"cannot read image {path}")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def by_image(self) -> dict[int, list[dict]]:
        """Annotations grouped by image id (images without annotations are left out)."""
        grouped: dict[int, list[dict]] = {}
        for annotation in self.annotations:
            grouped.setdefault(annotation["image_id"], []).append(annotation)
        return grouped

    def by_id(self, annotation_id: int) -> dict:
        return next(a for a in self.annotations if a["id"] == annotation_id)


def visible_keypoints(annotation: dict) -> int:
    """Number of annotated keypoints (v > 0) of an annotation (0 when it has none)."""
    keypoints = np.asarray(annotation.get("keypoints", []), np.float64).reshape(-1, 3)
    return int((keypoints[:, 2] > 0).sum())


def person_mask(annotation: dict, shape_hw: tuple[int, int]) -> np.ndarray:
    """(H, W) bool mask of an annotated person: its segmentation polygons, else its box."""
    mask = np.zeros(shape_hw, np.uint8)
    polygons = annotation.get("segmentation")
    if isinstance(polygons, list) and polygons:
        for polygon in polygons:
            cv2.fillPoly(mask, [np.rint(np.asarray(polygon).reshape(-1, 2)).astype(np.int32)], 1)
    else:
        x, y, w, h = (round(v) for v in annotation["bbox"])
        mask[max(y, 0) : y + h, max(x, 0) : x + w] = 1
    return mask.astype(bool)


def select_sprite_annotations(
    annotations: AnnotationSet,
    count: int,
    min_height: float = 100.0,
    min_keypoints: int = 12,
    min_aspect: float = 1.05,
) -> list[int]:
    """Ids of up to `count` (nearly) whole, upright people, tallest first: not crowd, box at least
    `min_height` px tall and `min_aspect` times taller than wide, at least `min_keypoints` annotated keypoints.
    (On the shared COCO sample: 442619, 460541, 437295, 531914, 543117.)"""
    picks = []
    for annotation in annotations.annotations:
        _, _, w, h = annotation["bbox"]
        whole = visible_keypoints(annotation) >= min_keypoints and h >= min_height and h >= min_aspect * w
        if whole and not annotation.get("iscrowd", 0):
            picks.append((-h, annotation["id"]))
    if not picks:
        raise ValueError(
            f"no annotation is a whole upright person (>= {min_keypoints} keypoints, box >= {min_height:.0f} px tall)"
        )
    return [annotation_id for _, annotation_id in sorted(picks)[:count]]


def load_sprites(annotations: AnnotationSet, annotation_ids: list[int] | tuple[int, ...]) -> list[Sprite]:
    """Cut the given annotated people out of their images with their segmentation polygons."""
    sprites = []
    for annotation_id in annotation_ids:
        ann = annotations.by_id(annotation_id)
        rgb = annotations.image_rgb(ann["image_id"])
        mask = person_mask(ann, rgb.shape[:2])
        x, y, w, h = (round(v) for v in ann["bbox"])
        x, y = max(x, 0), max(y, 0)
        keypoints = np.asarray(ann.get("keypoints", []), np.float64).reshape(-1, 3).copy()
        keypoints[:, :2] -= (x, y)
        crop = (slice(y, y + h), slice(x, x + w))
        sprites.append(Sprite(rgb[crop].copy(), mask[crop].copy(), keypoints, ann["id"]))
    return sprites


def paste(
    image: np.ndarray, labels: np.ndarray, rgb: np.ndarray, mask: np.ndarray, x0: int, y0: int, label: int
) -> None:
    """Paste the masked sprite with its top-left corner at (x0, y0), clipped to the image; write `label` into
    `labels` (H, W) int32 where it covers the image."""
    height, width = image.shape[:2]
    ys, xs = slice(max(y0, 0), min(y0 + rgb.shape[0], height)), slice(max(x0, 0), min(x0 + rgb.shape[1], width))
    if ys.start >= ys.stop or xs.start >= xs.stop:
        return
    sub = (slice(ys.start - y0, ys.stop - y0), slice(xs.start - x0, xs.stop - x0))
    region = mask[sub]
    image[ys, xs][region] = rgb[sub][region]
    labels[ys, xs][region] = label


def scaled_sprite(sprite: Sprite, height: float, mirror: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sprite resized to `height` px (aspect kept), optionally mirrored left-right: rgb, mask, and its
    keypoints (K, 3) in the resized sprite's pixels (x, y, v; left/right names are NOT swapped on a mirror)."""
    rgb, mask, keypoints = sprite.rgb, sprite.mask, sprite.keypoints.copy()
    scale = height / rgb.shape[0]
    size = (max(round(rgb.shape[1] * scale), 1), max(round(height), 1))
    if mirror:
        rgb, mask = rgb[:, ::-1], mask[:, ::-1]
        keypoints[:, 0] = rgb.shape[1] - keypoints[:, 0]
    rgb = cv2.resize(np.ascontiguousarray(rgb), size, interpolation=cv2.INTER_AREA)
    mask = cv2.resize(np.ascontiguousarray(mask).astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    keypoints[:, 0] *= size[0] / sprite.rgb.shape[1]
    keypoints[:, 1] *= size[1] / sprite.rgb.shape[0]
    return rgb, mask, keypoints
