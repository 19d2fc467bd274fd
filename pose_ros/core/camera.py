"""Pinhole camera helpers: intrinsics, default intrinsics, deprojection and projection.

Pixel convention: pixel centres at integer coordinates (as sensor_msgs/CameraInfo and OpenCV).
Camera optical frame: x right, y down, z forward, metres.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml


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


@dataclass(frozen=True)
class CameraCalibration:
    """Intrinsic calibration in the standard ROS camera_info YAML layout (camera_calibration_parsers)."""

    width: int
    height: int
    camera_matrix: np.ndarray  # (3, 3) K
    distortion_model: str
    distortion: np.ndarray  # (N,) D
    rectification: np.ndarray  # (3, 3) R
    projection: np.ndarray  # (3, 4) P
    camera_name: str = ""

    @classmethod
    def default(cls, width: int, height: int) -> CameraCalibration:
        """No distortion, `default_camera_matrix` intrinsics, identity rectification."""
        k = default_camera_matrix(width, height)
        return cls(width, height, k, "plumb_bob", np.zeros(5), np.eye(3), np.hstack([k, np.zeros((3, 1))]))


def load_camera_calibration(path: str | Path) -> CameraCalibration:
    """Read a camera_info YAML file (image_width, image_height, camera_matrix, distortion_coefficients, ...).

    Raises ValueError naming the file and the missing or malformed key.
    """
    path = Path(path).expanduser()
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f"cannot read camera calibration {path}: {error}") from None

    def matrix(key: str, shape: tuple[int, ...], default: np.ndarray | None = None) -> np.ndarray:
        block = data.get(key) if isinstance(data, dict) else None
        if block is None:
            if default is not None:
                return default
            raise ValueError(f"camera calibration {path} has no {key!r}")
        values = np.asarray(block.get("data", []), np.float64)
        if values.size != int(np.prod(shape)):
            raise ValueError(f"camera calibration {path}: {key} must hold {int(np.prod(shape))} numbers")
        return values.reshape(shape)

    if not isinstance(data, dict) or "image_width" not in data or "image_height" not in data:
        raise ValueError(f"camera calibration {path} needs image_width and image_height")
    k = matrix("camera_matrix", (3, 3))
    distortion = np.asarray((data.get("distortion_coefficients") or {}).get("data", []), np.float64)
    return CameraCalibration(
        width=int(data["image_width"]),
        height=int(data["image_height"]),
        camera_matrix=k,
        distortion_model=str(data.get("distortion_model", "plumb_bob")),
        distortion=distortion,
        rectification=matrix("rectification_matrix", (3, 3), np.eye(3)),
        projection=matrix("projection_matrix", (3, 4), np.hstack([k, np.zeros((3, 1))])),
        camera_name=str(data.get("camera_name", "")),
    )
