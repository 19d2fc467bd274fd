"""Pinhole camera helpers: intrinsics, default intrinsics, deprojection and projection.

Pixel convention: pixel centres at integer coordinates (as sensor_msgs/CameraInfo and OpenCV).
Camera optical frame: x right, y down, z forward, metres.
"""

from __future__ import annotations

import numpy as np


def default_camera_matrix(width: int, height: int) -> np.ndarray:
    """Documented fallback intrinsics when no CameraInfo is available, (3, 3) float64.

    fx = fy = max(width, height) pixels (a horizontal field of view of about 53° for landscape images),
    principal point at the image centre ((width - 1) / 2, (height - 1) / 2).
    """
    focal = float(max(width, height))
    return np.array([[focal, 0.0, (width - 1) / 2.0], [0.0, focal, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


def deproject(pixels_xy: np.ndarray, depth_m: np.ndarray | float, camera_matrix: np.ndarray) -> np.ndarray:
    """Pixels (..., 2) at depths (...) metres → points (..., 3) metres in the camera optical frame."""
    fx, fy, cx, cy = camera_matrix[0, 0], camera_matrix[1, 1], camera_matrix[0, 2], camera_matrix[1, 2]
    z = np.broadcast_to(np.asarray(depth_m, np.float64), pixels_xy.shape[:-1])
    x = (pixels_xy[..., 0] - cx) / fx * z
    y = (pixels_xy[..., 1] - cy) / fy * z
    return np.stack([x, y, z], axis=-1)


def project(points_xyz: np.ndarray, camera_matrix: np.ndarray) -> np.ndarray:
    """Points (..., 3) metres in the camera optical frame → pixels (..., 2)."""
    z = points_xyz[..., 2]
    u = camera_matrix[0, 0] * points_xyz[..., 0] / z + camera_matrix[0, 2]
    v = camera_matrix[1, 1] * points_xyz[..., 1] / z + camera_matrix[1, 2]
    return np.stack([u, v], axis=-1)
