"""Drawing people on images (OpenCV): the ROS overlay image and the evaluation's renderings use this.

Bones are coloured by body side (left, right, centre), joints are filled circles of the same colours,
and each person gets a box with an "id · score" label in a per-id colour. Sizes scale with the image.
Images are RGB uint8 (H, W, 3); colours below are RGB.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import cv2
import numpy as np

from pose_ros.core.person import Person, bbox_from_keypoints
from pose_ros.core.skeletons import Layout, get_layout

LEFT_COLOR = (0, 160, 255)  # blue
RIGHT_COLOR = (255, 128, 0)  # orange
CENTRE_COLOR = (60, 200, 60)  # green
# Box/label colours, cycled by person id.
ID_COLORS = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40),
)  # fmt: skip


def _side_color(*names: str) -> tuple[int, int, int]:
    """Colour of keypoints/bones whose names are all on the left, all on the right, or neither."""
    if all(n.startswith("left") for n in names):
        return LEFT_COLOR
    if all(n.startswith("right") for n in names):
        return RIGHT_COLOR
    return CENTRE_COLOR


@lru_cache(maxsize=16)
def _layout_colors(layout: Layout) -> tuple[tuple[tuple[int, int, int], ...], tuple[tuple[int, int, int], ...]]:
    """(joint colours (K,), limb colours (L,)) of a layout."""
    joints = tuple(_side_color(n) for n in layout.keypoints)
    limbs = tuple(_side_color(layout.keypoints[a], layout.keypoints[b]) for a, b in layout.limbs)
    return joints, limbs


def draw_people(
    image_rgb: np.ndarray,
    people: Sequence[Person],
    keypoint_threshold: float = 0.3,
    layout: Layout | None = None,
    show_boxes: bool = True,
) -> np.ndarray:
    """A copy of `image_rgb` (H, W, 3) uint8 with each person's skeleton, box and "id · score" label drawn.

    Keypoints with confidence below `keypoint_threshold` (or NaN coordinates) are not drawn, nor the bones
    touching them. `layout` overrides each person's own layout (`Person.layout`).
    """
    canvas = np.ascontiguousarray(image_rgb, dtype=np.uint8).copy()
    height, width = canvas.shape[:2]
    scale = max(height, width) / 640.0
    thickness = max(1, round(2 * scale))
    radius = max(2, round(3 * scale))
    for person in people:
        person_layout = layout or get_layout(person.layout)
        _draw_skeleton(canvas, person, person_layout, keypoint_threshold, thickness, radius)
        if show_boxes:
            _draw_box_and_label(canvas, person, keypoint_threshold, thickness, scale)
    return canvas


def _draw_skeleton(
    canvas: np.ndarray, person: Person, layout: Layout, threshold: float, thickness: int, radius: int
) -> None:
    """Bones, then joints on top, of one person (in place)."""
    xy = np.asarray(person.keypoints_xy, np.float64)
    shown = (np.asarray(person.confidences) >= threshold) & np.isfinite(xy).all(axis=1)
    # plain Python tuples and bools: OpenCV takes them directly (indexing NumPy per bone costs more than drawing)
    points = [tuple(p) for p in np.round(np.where(shown[:, None], xy, 0)).astype(np.int32).tolist()]
    shown = shown.tolist()
    joint_colors, limb_colors = _layout_colors(layout)
    for (a, b), color in zip(layout.limbs, limb_colors, strict=True):
        if shown[a] and shown[b]:
            cv2.line(canvas, points[a], points[b], color, thickness, cv2.LINE_AA)
    for centre, visible, color in zip(points, shown, joint_colors, strict=True):
        if visible:
            cv2.circle(canvas, centre, radius, color, -1, cv2.LINE_AA)
            cv2.circle(canvas, centre, radius, (255, 255, 255), 1, cv2.LINE_AA)


def _draw_box_and_label(canvas: np.ndarray, person: Person, threshold: float, thickness: int, scale: float) -> None:
    """The person's box (or the keypoints' box when it has none) and its "id · score" label (in place)."""
    box = np.asarray(person.bbox_xywh, np.float64)
    if not (np.isfinite(box).all() and box[2] > 0 and box[3] > 0):
        box = bbox_from_keypoints(person.keypoints_xy, person.confidences, threshold).astype(np.float64)
        if box[2] <= 0 or box[3] <= 0:
            return
    color = ID_COLORS[person.id % len(ID_COLORS)]
    x0, y0 = round(box[0]), round(box[1])
    x1, y1 = round(box[0] + box[2]), round(box[1] + box[3])
    cv2.rectangle(canvas, (x0, y0), (x1, y1), color, max(1, thickness - 1), cv2.LINE_AA)
    label = f"{person.id} {person.score:.2f}"
    font_scale = 0.45 * max(scale, 0.6)
    (text_w, text_h), baseline = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
    top = y0 - text_h - baseline - 2 if y0 - text_h - baseline - 2 >= 0 else y0
    cv2.rectangle(canvas, (x0, top), (x0 + text_w + 4, top + text_h + baseline + 2), color, -1)
    text_color = (0, 0, 0) if sum(color) > 380 else (255, 255, 255)
    cv2.putText(
        canvas, label, (x0 + 2, top + text_h + 1), cv2.FONT_HERSHEY_SIMPLEX, font_scale, text_color, 1, cv2.LINE_AA
    )


def side_by_side(images: Sequence[np.ndarray], titles: Sequence[str]) -> np.ndarray:
    """Images (H_i, W_i, 3) uint8 placed left to right on one canvas (max height), under a title bar.

    The bar is 24 px high for images up to 640 px wide and grows with wider images, as does its text.
    """
    scale = max(1.0, max(img.shape[1] for img in images) / 640.0)
    bar = round(24 * scale)
    height = max(img.shape[0] for img in images) + bar
    width = sum(img.shape[1] for img in images)
    canvas = np.zeros((height, width, 3), np.uint8)
    x = 0
    for img, title in zip(images, titles, strict=True):
        canvas[bar : bar + img.shape[0], x : x + img.shape[1]] = img
        origin = (x + round(6 * scale), bar - round(7 * scale))
        cv2.putText(canvas, title, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.55 * scale, (255, 255, 255),
                    max(1, round(scale)), cv2.LINE_AA)  # fmt: skip
        x += img.shape[1]
    return canvas
