"""OpenPose bottom-up estimator: image → heatmaps + PAFs (one or several scales) → PAF grouping → people.

Front end (CMU's reference design): the image is resized so that its height is `target_height × scale` for
each scale, converted to BGR, padded right/bottom to a multiple of the stride (8) with pixel value 128 and
normalised as (pixel - 128) / 256. Each scale's output maps are resampled onto one common decoding grid —
the image resized to `target_height / (8 / upsample)` rows — and averaged; the decoder runs on that grid
and keypoints are mapped back to image pixels.

Coordinates are exact, not approximate: an image pixel centre x lands at (x + 0.5)·s - 0.5 in an image
resized by s (cv2's pixel-edge convention), and output map pixel j of a stride-8 network sits at input
pixel 8j + offset, with offset 3.5 for CMU's 2×2 max-pools and 0 for Lightweight OpenPose's stride-2
convolutions (`MAP_OFFSET`). Keypoints use pixel centres at integer coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
from torch import nn

from pose_ros.core.device import resolve_device
from pose_ros.core.models.openpose import PAD_VALUE, STRIDE, load_model, normalise
from pose_ros.core.openpose import layout
from pose_ros.core.openpose.grouping import GroupingSettings, Poses, group_people
from pose_ros.core.person import Person, bbox_from_keypoints


@dataclass
class OpenPoseSettings:
    """Settings of `OpenPoseEstimator`.

    Attributes:
        weights: path of `body_pose_model.pth` (CMU) or a Lightweight OpenPose checkpoint.
        architecture: "auto" (from the checkpoint's key names), "cmu" or "lightweight".
        device: "auto" | "cpu" | "cuda" | "cuda:N".
        target_height: network input height in pixels at scale 1 (368 in OpenPose).
        scales: input scales relative to `target_height`; their maps are averaged (OpenPose: 0.5, 1, 1.5, 2).
        upsample: decoding grid resolution, grid pixels per network output pixel (1..stride; stride = input
            resolution).
        grouping: peak, PAF and assembly thresholds (the published defaults).
        score_threshold: minimum person score in [0, 1].
        max_people: at most this many people, best first.
    """

    weights: str = ""
    architecture: str = "auto"
    device: str = "auto"
    target_height: int = 368
    scales: tuple[float, ...] = (1.0,)
    upsample: int = 4
    grouping: GroupingSettings = field(default_factory=GroupingSettings)
    score_threshold: float = 0.0
    max_people: int = 20

    def validate(self) -> None:
        """Raise ValueError naming the first invalid setting."""
        if self.target_height < STRIDE:
            raise ValueError(f"target_height must be >= {STRIDE}, got {self.target_height}")
        if not self.scales or min(self.scales) <= 0:
            raise ValueError(f"scales must be positive, got {self.scales}")
        if not 1 <= self.upsample <= STRIDE:
            raise ValueError(f"upsample must be in 1..{STRIDE}, got {self.upsample}")
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {self.score_threshold}")
        if self.max_people < 1:
            raise ValueError(f"max_people must be >= 1, got {self.max_people}")


@dataclass(frozen=True)
class Grid:
    """The decoding grid: the image resized to (height, width) in cv2's pixel-edge convention.

    Grid pixel g sits at image coordinate (g + 0.5) · image_size / grid_size - 0.5 per axis.
    """

    image_size: tuple[int, int]  # (h, w)
    size: tuple[int, int]  # (h, w)

    def to_image(self, xy: np.ndarray) -> np.ndarray:
        """Grid (…, 2) x, y → image pixels."""
        ratio = np.array([self.image_size[1] / self.size[1], self.image_size[0] / self.size[0]], np.float32)
        return (xy + 0.5) * ratio - 0.5

    def image_coordinates(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Image x of every grid column (W,) and image y of every grid row (H,), float32."""
        ys = (torch.arange(self.size[0], device=device) + 0.5) * (self.image_size[0] / self.size[0]) - 0.5
        xs = (torch.arange(self.size[1], device=device) + 0.5) * (self.image_size[1] / self.size[1]) - 0.5
        return xs.float(), ys.float()


def prepare_input(image_rgb: np.ndarray, height: int, stride: int = STRIDE) -> tuple[np.ndarray, tuple[float, float]]:
    """Resize to `height` rows (aspect kept), RGB → BGR, pad right/bottom to a multiple of `stride` with 128.

    Returns the padded BGR uint8 image (H', W', 3) and the exact scales (sx, sy) = resized size / image size.
    """
    h, w = image_rgb.shape[:2]
    new_h, new_w = max(1, height), max(1, round(w * height / h))
    interpolation = cv2.INTER_AREA if new_h < h else cv2.INTER_LINEAR  # both exact on linear ramps
    resized = cv2.resize(image_rgb, (new_w, new_h), interpolation=interpolation)[..., ::-1]
    pad_h, pad_w = -new_h % stride, -new_w % stride
    padded = np.pad(resized, ((0, pad_h), (0, pad_w), (0, 0)), constant_values=int(PAD_VALUE))
    return padded, (new_w / w, new_h / h)


def cubic_weights(positions: torch.Tensor, size: int) -> torch.Tensor:
    """Matrix (G, size) that samples a length-`size` signal at fractional `positions` (G,) by Keys cubic
    convolution with a = -0.5 (exact for polynomials up to degree 2, so sub-pixel peak positions survive),
    replicating the border samples."""
    base = torch.floor(positions)
    frac = (positions - base).unsqueeze(1)  # (G, 1)
    taps = torch.arange(-1, 3, device=positions.device)  # neighbours -1, 0, 1, 2
    dist = (frac - taps).abs()  # (G, 4)
    a = -0.5
    near = ((a + 2) * dist - (a + 3)) * dist**2 + 1
    far = ((a * dist - 5 * a) * dist + 8 * a) * dist - 4 * a
    weights = torch.where(dist <= 1, near, torch.where(dist < 2, far, torch.zeros_like(dist)))
    index = (base.long().unsqueeze(1) + taps).clamp(0, size - 1)
    matrix = torch.zeros(positions.shape[0], size, device=positions.device, dtype=weights.dtype)
    return matrix.scatter_add_(1, index, weights)


def resample_to_grid(maps: torch.Tensor, scale_xy: tuple[float, float], offset: float, grid: Grid,
                     stride: int = STRIDE) -> torch.Tensor:
    """Sample network maps (C, h, w) of an input resized by `scale_xy` at every grid pixel: (C, H, W).

    Map pixel j sits at input pixel stride·j + offset, i.e. image coordinate (stride·j + offset + 0.5)/s - 0.5.
    Separable cubic interpolation (`cubic_weights`), as two matrix products.
    """
    image_x, image_y = grid.image_coordinates(maps.device)
    map_x = ((image_x + 0.5) * scale_xy[0] - 0.5 - offset) / stride
    map_y = ((image_y + 0.5) * scale_xy[1] - 0.5 - offset) / stride
    rows = cubic_weights(map_y, maps.shape[-2]).to(maps.dtype)  # (H, h)
    cols = cubic_weights(map_x, maps.shape[-1]).to(maps.dtype)  # (W, w)
    return rows @ maps @ cols.T


class OpenPoseEstimator:
    """image (H, W, 3) uint8 RGB → list[Person] (layout "coco18_openpose"), best first, ids 0..N-1."""

    def __init__(self, settings: OpenPoseSettings, model: nn.Module | None = None) -> None:
        """Load the weights named in `settings`, or use `model`: a network image (1, 3, H, W) → (heatmaps
        (1, 19, H/s, W/s), pafs (1, 38, H/s, W/s)) with attributes `stride` (s) and `map_offset` (the input
        pixel of map pixel 0)."""
        settings.validate()
        self.settings = settings
        self.device = resolve_device(settings.device)
        if model is None:
            model = load_model(settings.weights, settings.architecture)
        self.model = model.eval().to(self.device)
        self.map_offset = float(model.map_offset)
        self.stride = int(model.stride)

    def grid_for(self, image_size: tuple[int, int]) -> Grid:
        """The decoding grid of an image (h, w): `target_height / (stride / upsample)` rows, aspect kept."""
        h, w = image_size
        rows = max(1, round(self.settings.target_height * self.settings.upsample / self.stride))
        return Grid(image_size=(h, w), size=(rows, max(1, round(w * rows / h))))

    @torch.inference_mode()
    def infer_maps(self, image_rgb: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, Grid]:
        """Heatmaps (19, H, W) and PAFs (38, H, W) on the decoding grid, averaged over the scales.

        `image_rgb` is (H, W, 3) RGB, uint8 or float in 0..255."""
        grid = self.grid_for(image_rgb.shape[:2])
        total: torch.Tensor | None = None
        for scale in self.settings.scales:
            padded, scale_xy = prepare_input(image_rgb, round(self.settings.target_height * scale), self.stride)
            tensor = torch.from_numpy(np.ascontiguousarray(padded)).to(self.device)
            tensor = normalise(tensor.permute(2, 0, 1).unsqueeze(0).float())
            heatmaps, pafs = self.model(tensor)
            maps = torch.cat([heatmaps[0], pafs[0]]).float()
            maps = resample_to_grid(maps, scale_xy, self.map_offset, grid, self.stride)
            total = maps if total is None else total + maps
        assert total is not None
        total = total / len(self.settings.scales)
        return total[: layout.NUM_HEATMAP_CHANNELS], total[layout.NUM_HEATMAP_CHANNELS :], grid

    def __call__(self, image_rgb: np.ndarray) -> list[Person]:
        if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {image_rgb.dtype} {image_rgb.shape}")
        heatmaps, pafs, grid = self.infer_maps(image_rgb)
        poses = group_people(heatmaps, pafs, self.settings.grouping)
        return self.to_people(poses, grid)

    def to_people(self, poses: Poses, grid: Grid) -> list[Person]:
        """Decoded poses on `grid` → people in image pixels, filtered by score, at most `max_people`."""
        people = []
        for xy, conf, score in zip(grid.to_image(poses.keypoints_xy), poses.confidences, poses.scores, strict=True):
            if score < self.settings.score_threshold or len(people) == self.settings.max_people:
                break
            people.append(Person(keypoints_xy=xy.astype(np.float32), confidences=np.clip(conf, 0.0, 1.0),
                                 score=float(score), bbox_xywh=bbox_from_keypoints(xy, conf),
                                 layout=layout.LAYOUT.name, id=len(people)))
        return people
