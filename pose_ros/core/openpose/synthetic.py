"""Synthetic COCO-18 people: random skeletons, stick-figure images and their OpenPose maps.

Used by the tests (decoder recovery, training demo) and the decoder benchmark. Coordinates are pixels with
pixel centres at integer coordinates; y points down; "right" keypoints of a person facing the camera sit on
the image's left.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from pose_ros.core.openpose import layout
from pose_ros.core.targets import gaussian_heatmaps, paf_fields

# A standing person facing the camera, neck at the origin, body height 1 (nose … ankles), in layout order.
TEMPLATE = np.array(
    [
        (0.00, -0.12), (0.00, 0.00),  # nose, neck
        (-0.11, 0.00), (-0.14, 0.16), (-0.16, 0.32),  # right shoulder, elbow, wrist
        (0.11, 0.00), (0.14, 0.16), (0.16, 0.32),  # left shoulder, elbow, wrist
        (-0.07, 0.36), (-0.08, 0.58), (-0.09, 0.82),  # right hip, knee, ankle
        (0.07, 0.36), (0.08, 0.58), (0.09, 0.82),  # left hip, knee, ankle
        (-0.04, -0.16), (0.04, -0.16), (-0.08, -0.13), (0.08, -0.13),  # right/left eye, right/left ear
    ],
    dtype=np.float64,
)


def random_person(rng: np.random.Generator, centre_xy: tuple[float, float], height: float, jitter: float = 0.04,
                  max_tilt_deg: float = 15.0) -> np.ndarray:
    """One skeleton (18, 2) pixels: the template scaled to `height` pixels, jittered, tilted, neck-centred at
    `centre_xy` shifted up so that the body (nose…ankles) is centred there."""
    points = TEMPLATE + rng.normal(scale=jitter, size=TEMPLATE.shape)
    angle = math.radians(rng.uniform(-max_tilt_deg, max_tilt_deg))
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    points = (points - np.array([0.0, 0.35])) @ rotation.T * height
    return (points + np.asarray(centre_xy)).astype(np.float32)


def min_same_type_distance(keypoints_xy: np.ndarray) -> float:
    """Smallest distance (px) between two people's keypoints of the same type; inf for fewer than 2 people."""
    if keypoints_xy.shape[0] < 2:
        return math.inf
    diff = keypoints_xy[:, None] - keypoints_xy[None]  # (N, N, K, 2)
    dist = np.linalg.norm(diff, axis=-1)
    n = keypoints_xy.shape[0]
    dist[np.arange(n), np.arange(n)] = np.inf
    return float(dist.min())


def grid_scene(rng: np.random.Generator, num_people: int, height: int, width: int, fill: float = 0.8,
               margin: float = 2.0) -> np.ndarray:
    """`num_people` skeletons (N, 18, 2) pixels laid out on a jittered grid of cells that fills the image,
    each shifted if needed so that its keypoints stay `margin` pixels inside the image."""
    cols = max(1, math.ceil(math.sqrt(num_people * width / (0.5 * height))))
    rows = math.ceil(num_people / cols)
    cell_w, cell_h = width / cols, height / rows
    person_h = min(cell_h, 2.0 * cell_w) * fill
    cells = rng.permutation(rows * cols)[:num_people]
    people = []
    for cell in cells:
        r, c = divmod(int(cell), cols)
        slack_x, slack_y = 0.1 * cell_w, 0.5 * (cell_h - person_h)
        cx = (c + 0.5) * cell_w + rng.uniform(-slack_x, slack_x)
        cy = (r + 0.5) * cell_h + rng.uniform(-slack_y, slack_y)
        person = random_person(rng, (cx, cy), person_h, max_tilt_deg=5.0)
        low = margin - person.min(axis=0)
        high = np.array([width - 1, height - 1]) - margin - person.max(axis=0)
        people.append(person + np.clip(0.0, low, high).astype(np.float32))
    return np.stack(people) if people else np.zeros((0, layout.NUM_KEYPOINTS, 2), np.float32)


def render_maps(keypoints_xy: np.ndarray, visible: np.ndarray, height: int, width: int, sigma: float = 1.5,
                limb_width: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Ideal OpenPose maps of a scene: heatmaps (19, H, W) with background and PAFs (38, H, W)."""
    kp = torch.from_numpy(np.ascontiguousarray(keypoints_xy, dtype=np.float32))
    vis = torch.from_numpy(np.asarray(visible, dtype=bool))
    heatmaps = gaussian_heatmaps(kp, vis, height, width, sigma, background=True)
    pafs = paf_fields(kp, vis, torch.from_numpy(layout.LIMBS), height, width, limb_width)
    return heatmaps, pafs


def limb_colour(limb: int) -> tuple[int, int, int]:
    """A distinct RGB colour per limb type (hue wheel)."""
    hue = int(180 * limb / layout.NUM_LIMBS)
    hsv = np.array([[[hue, 255, 255]]], dtype=np.uint8)
    return tuple(int(v) for v in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])


def render_image(keypoints_xy: np.ndarray, visible: np.ndarray, height: int, width: int,
                 thickness: int = 2) -> np.ndarray:
    """Stick figures on a grey background: RGB uint8 (H, W, 3), one colour per limb type, white joints."""
    image = np.full((height, width, 3), 64, dtype=np.uint8)
    shift = 4  # cv2 fixed-point bits, so that sub-pixel coordinates are drawn where they are
    fixed = np.round(np.asarray(keypoints_xy, np.float64) * (1 << shift)).astype(np.int64)
    for person, vis in zip(fixed, visible, strict=True):
        for limb, (a, b) in enumerate(layout.LIMBS):
            if vis[a] and vis[b]:
                pa, pb = (int(person[a, 0]), int(person[a, 1])), (int(person[b, 0]), int(person[b, 1]))
                cv2.line(image, pa, pb, limb_colour(limb), thickness, cv2.LINE_AA, shift)
        for k in np.flatnonzero(vis):
            centre = (int(person[k, 0]), int(person[k, 1]))
            cv2.circle(image, centre, thickness * (1 << shift), (255, 255, 255), -1, cv2.LINE_AA, shift)
    return image
