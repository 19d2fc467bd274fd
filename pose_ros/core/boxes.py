"""Axis-aligned boxes in pixels: conversions and intersection over union."""

from __future__ import annotations

import numpy as np


def xywh_to_xyxy(boxes_xywh: np.ndarray) -> np.ndarray:
    """Boxes (..., 4) x_min, y_min, width, height → (..., 4) x1, y1, x2, y2, float64."""
    boxes = np.asarray(boxes_xywh, np.float64)
    return np.concatenate([boxes[..., :2], boxes[..., :2] + boxes[..., 2:]], axis=-1)


def box_iou(boxes_a_xyxy: np.ndarray, boxes_b_xyxy: np.ndarray) -> np.ndarray:
    """IoU of boxes a (N, 4) and b (M, 4), both x1 y1 x2 y2 → (N, M) float64 (0 for empty boxes)."""
    a = np.asarray(boxes_a_xyxy, np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b_xyxy, np.float64).reshape(-1, 4)
    low = np.maximum(a[:, None, :2], b[None, :, :2])
    high = np.minimum(a[:, None, 2:], b[None, :, 2:])
    intersection = np.prod(np.clip(high - low, 0.0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0.0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0.0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - intersection
    return np.where(union > 0, intersection / np.where(union > 0, union, 1.0), 0.0)


def box_iou_xywh(boxes_a_xywh: np.ndarray, boxes_b_xywh: np.ndarray) -> np.ndarray:
    """IoU (N, M) of boxes a (N, 4) and b (M, 4) given as x_min, y_min, width, height."""
    return box_iou(xywh_to_xyxy(np.reshape(boxes_a_xywh, (-1, 4))), xywh_to_xyxy(np.reshape(boxes_b_xywh, (-1, 4))))
