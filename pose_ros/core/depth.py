"""Depth images to 3D keypoints, and matching depth frames to colour frames by time stamp.

Depth encodings follow REP-118: 16UC1 holds millimetres with 0 meaning "no measurement"; 32FC1 holds metres
with NaN for "no measurement" and ±Inf for "out of range". Both become float32 metres with NaN for every
invalid pixel (`depth_to_metres`).

The depth of a keypoint is the median of the valid depths in a small square window around it
(`keypoint_depths`): robust to holes, flying pixels at silhouettes, and a few pixels of background.
`keypoints_3d` deprojects keypoints with those depths into the colour camera's optical frame (x right,
y down, z forward, metres; pixel centres at integer coordinates, see `pose_ros.core.camera`).

Assumption: the depth image is *registered* to the colour image (as `depth_registered` / "aligned depth
to color" topics are): both images look along the same rays, possibly at different resolutions or
intrinsics. A colour pixel is carried to the depth image through the two camera matrices (colour pixel →
normalised ray → depth pixel). Unregistered depth (a separate depth sensor with its own pose) needs the
extrinsic transform and is not handled here.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from pose_ros.core.camera import deproject
from pose_ros.core.person import Person

MM_PER_M = 1000.0
T = TypeVar("T")


@dataclass(frozen=True)
class DepthSettings:
    """How keypoint depths are sampled.

    Attributes:
        window: side of the square window around each keypoint, depth pixels (odd; 1 = the pixel itself).
        min_valid_fraction: least fraction in (0, 1] of the window's in-image pixels with a valid depth;
            with fewer, the keypoint's depth is unknown (NaN).
        min_confidence: keypoints with a confidence at or below this get no depth.
    """

    window: int = 5
    min_valid_fraction: float = 0.25
    min_confidence: float = 0.1

    def validate(self) -> None:
        """Raise ValueError with a reason when a field has an unusable value."""
        if self.window < 1 or self.window % 2 == 0:
            raise ValueError(f"window must be a positive odd number of pixels, got {self.window}")
        if not 0.0 < self.min_valid_fraction <= 1.0:
            raise ValueError(f"min_valid_fraction must be in (0, 1], got {self.min_valid_fraction}")
        if not 0.0 <= self.min_confidence < 1.0:
            raise ValueError(f"min_confidence must be in [0, 1), got {self.min_confidence}")


def depth_to_metres(depth: np.ndarray) -> np.ndarray:
    """A depth image (H, W) → float32 metres (H, W) with NaN where there is no valid measurement.

    uint16 is read as millimetres (16UC1) with 0 invalid; float32/float64 as metres (32FC1) with NaN, ±Inf
    and values ≤ 0 invalid. Other dtypes raise ValueError.
    """
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ValueError(f"depth image must be (H, W), got shape {depth.shape}")
    if depth.dtype == np.uint16:
        metres = depth.astype(np.float32) / np.float32(MM_PER_M)
    elif depth.dtype in (np.float32, np.float64):
        metres = depth.astype(np.float32, copy=True)
    else:
        raise ValueError(f"depth image must be uint16 millimetres or float32 metres, got {depth.dtype}")
    with np.errstate(invalid="ignore"):
        metres[~(np.isfinite(metres) & (metres > 0))] = np.nan
    return metres


def keypoint_depths(
    depth_m: np.ndarray,
    keypoints_xy: np.ndarray,
    confidences: np.ndarray,
    window: int = 5,
    min_valid_fraction: float = 0.25,
    min_confidence: float = 0.1,
) -> np.ndarray:
    """Robust depth (K,) metres of each keypoint: the median valid depth in a window around it.

    Args:
        depth_m: (H, W) float32 metres, NaN invalid (from `depth_to_metres`).
        keypoints_xy: (K, 2) pixels of the depth image, pixel centres at integer coordinates; NaN unknown.
        confidences: (K,) keypoint confidences.
        window, min_valid_fraction, min_confidence: see `DepthSettings`.

    Returns:
        (K,) float32 metres; NaN for unknown or low-confidence keypoints, keypoints whose window lies outside
        the image, and windows with too few valid depths.
    """
    height, width = depth_m.shape
    xy = np.asarray(keypoints_xy, np.float64).reshape(-1, 2)
    known = np.isfinite(xy).all(axis=1) & (np.asarray(confidences) > min_confidence)
    far = float(max(height, width) + window)  # any keypoint beyond this is off the image either way
    centre = np.rint(np.clip(np.where(known[:, None], xy, -far), -far, far)).astype(np.int64)
    offsets = np.arange(window) - window // 2
    rows, cols = centre[:, 1, None] + offsets, centre[:, 0, None] + offsets  # (K, window) each
    inside = ((rows >= 0) & (rows < height))[:, :, None] & ((cols >= 0) & (cols < width))[:, None, :]
    patches = depth_m[np.clip(rows, 0, height - 1)[:, :, None], np.clip(cols, 0, width - 1)[:, None, :]]
    valid = inside & np.isfinite(patches)  # (K, window, window)
    num_inside, num_valid = inside.sum(axis=(1, 2)), valid.sum(axis=(1, 2))
    keep = known & (num_valid > 0) & (num_valid >= min_valid_fraction * num_inside)
    out = np.full(len(xy), np.nan, np.float32)
    if keep.any():
        values = np.sort(np.where(valid[keep], patches[keep], np.inf).reshape(int(keep.sum()), -1), axis=1)
        count = num_valid[keep][:, None]  # the valid values come first after sorting
        low = np.take_along_axis(values, (count - 1) // 2, axis=1)
        high = np.take_along_axis(values, count // 2, axis=1)
        out[keep] = ((low + high) / 2)[:, 0]
    return out


def colour_to_depth_pixels(
    keypoints_xy: np.ndarray, colour_camera_matrix: np.ndarray, depth_camera_matrix: np.ndarray
) -> np.ndarray:
    """Colour-image pixels (..., 2) → pixels (..., 2) of a registered depth image with other intrinsics."""
    kc, kd = np.asarray(colour_camera_matrix, np.float64), np.asarray(depth_camera_matrix, np.float64)
    xy = np.asarray(keypoints_xy, np.float64)
    u = (xy[..., 0] - kc[0, 2]) / kc[0, 0] * kd[0, 0] + kd[0, 2]
    v = (xy[..., 1] - kc[1, 2]) / kc[1, 1] * kd[1, 1] + kd[1, 2]
    return np.stack([u, v], axis=-1)


def keypoints_3d(
    depth_m: np.ndarray,
    keypoints_xy: np.ndarray,
    confidences: np.ndarray,
    colour_camera_matrix: np.ndarray,
    depth_camera_matrix: np.ndarray | None = None,
    settings: DepthSettings | None = None,
) -> np.ndarray:
    """3D keypoints (K, 3) float32 metres in the colour camera optical frame; NaN rows where depth is unknown.

    Args:
        depth_m: (H_d, W_d) float32 metres, NaN invalid, registered to the colour image (module docstring).
        keypoints_xy: (K, 2) colour-image pixels.
        confidences: (K,) keypoint confidences.
        colour_camera_matrix: (3, 3) K of the colour image (CameraInfo.k).
        depth_camera_matrix: (3, 3) K of the depth image; None when it equals the colour one.
        settings: depth sampling settings.
    """
    settings = settings or DepthSettings()
    settings.validate()
    depth_xy = keypoints_xy
    if depth_camera_matrix is not None:
        depth_xy = colour_to_depth_pixels(keypoints_xy, colour_camera_matrix, depth_camera_matrix)
    z = keypoint_depths(
        depth_m, depth_xy, confidences, settings.window, settings.min_valid_fraction, settings.min_confidence
    )
    return deproject(np.asarray(keypoints_xy, np.float64), z, colour_camera_matrix).astype(np.float32)


class StampMatcher(Generic[T]):
    """Pairs colour frames with the depth frame nearest in time, within a tolerance.

    Keeps the `capacity` most recent depth frames (stamps in float seconds, e.g. header stamps). A colour
    frame at time t gets the stored frame whose stamp is nearest to t if |Δt| ≤ `tolerance_s`, else None.
    Pure Python: the ROS layer converts stamps and messages.
    """

    def __init__(self, tolerance_s: float = 0.05, capacity: int = 10) -> None:
        if tolerance_s < 0:
            raise ValueError(f"tolerance_s must be >= 0, got {tolerance_s}")
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.tolerance_s = float(tolerance_s)
        self._frames: deque[tuple[float, T]] = deque(maxlen=capacity)

    def __len__(self) -> int:
        return len(self._frames)

    def add(self, stamp_s: float, frame: T) -> None:
        """Store a frame; the oldest one is dropped when full."""
        self._frames.append((float(stamp_s), frame))

    def match(self, stamp_s: float) -> tuple[float, T] | None:
        """(stamp, frame) of the stored frame nearest to `stamp_s` within the tolerance, or None."""
        frames = tuple(self._frames)  # a snapshot: other threads may add frames meanwhile
        if not frames:
            return None
        best = min(frames, key=lambda item: abs(item[0] - stamp_s))
        return best if abs(best[0] - stamp_s) <= self.tolerance_s else None

    def clear(self) -> None:
        self._frames.clear()


def add_keypoints_3d(
    people: list[Person],
    depth_m: np.ndarray,
    colour_camera_matrix: np.ndarray,
    depth_camera_matrix: np.ndarray | None = None,
    settings: DepthSettings | None = None,
) -> None:
    """Set `keypoints_3d` (K, 3) metres of each person from a registered depth image (see `keypoints_3d`)."""
    for person in people:
        person.keypoints_3d = keypoints_3d(
            depth_m, person.keypoints_xy, person.confidences, colour_camera_matrix, depth_camera_matrix, settings
        )
