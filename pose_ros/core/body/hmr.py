"""HMR (Kanazawa et al., CVPR 2018) in SPIN's variant (Kolotouros et al., ICCV 2019): image crop → SMPL β, θ, camera.

Network: ResNet-50 encoder (2048-d average-pooled features) + iterative error feedback regressor: 3 iterations,
starting from the mean parameters, each predicting a residual for [pose (24 × 6D), β (10), camera (3)] from
[features, current estimate]. Joint rotations use the continuous 6D representation, turned into rotation matrices
by Gram–Schmidt (`rot6d_to_matrix`).

Checkpoint layout (SPIN's released `model_checkpoint.pt`): `{'model': state_dict}` with `conv1`, `bn1`,
`layer1..4` (torchvision-style Bottleneck blocks, stride on the 3 × 3 conv), `fc1` (2048 + 144 + 10 + 3 → 1024),
`fc2` (1024 → 1024), `decpose` (→ 144), `decshape` (→ 10), `deccam` (→ 3) and the buffers `init_pose` (1, 144),
`init_shape` (1, 10), `init_cam` (1, 3). Mean parameters: SPIN's `smpl_mean_params.npz` (`pose` (144,) in 6D,
`shape` (10,), `cam` (3,)).

Input: a 224 × 224 RGB crop centred on the person box with side 1.2 × its longer side, scaled to [0, 1] and
normalised with the ImageNet mean and standard deviation.

Camera: the output [s, tx, ty] is a weak-perspective camera of the crop in normalised coordinates ([-1, 1] across
the crop). SPIN's convention reads it as a perspective camera with focal length f = 5000 px for the 224-px crop
placed at t = [tx, ty, 2f / (224 · s)] metres; `crop_camera_to_translation` re-expresses it for the full image and
its real intrinsics.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from pose_ros.core.assets import require_file
from pose_ros.core.body.rotations import rot6d_to_matrix
from pose_ros.core.model_files import ModelFileError, explain_load_failure

HMR_INPUT_SIZE = 224  # pixels, square crop
CROP_SCALE = 1.2  # crop side = CROP_SCALE × longer side of the person box
SPIN_FOCAL_LENGTH = 5000.0  # pixels, for the 224-px crop
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NUM_JOINTS = 24
NUM_POSE_6D = 6 * NUM_JOINTS
NUM_BETAS = 10
NUM_CAMERA = 3
IEF_ITERATIONS = 3
RESNET50_BLOCKS = (3, 4, 6, 3)
FEATURE_DIM = 2048

SPIN_FILES_HINT = (
    "HMR weights are SPIN's released checkpoint (model_checkpoint.pt) and smpl_mean_params.npz, from the SPIN "
    "project (https://github.com/nkolot/SPIN, fetch_data.sh); they are not shipped with pose_ros"
)


@dataclass
class MeanParams:
    """SPIN's mean SMPL parameters, the starting point of the regressor: pose (144,) 6D, shape (10,), cam (3,)."""

    pose_6d: np.ndarray
    betas: np.ndarray
    camera: np.ndarray

    @classmethod
    def neutral(cls) -> MeanParams:
        """Identity rotations, mean shape, a camera that fills the crop (s = 0.9): used only without SPIN's file."""
        identity_6d = np.tile(np.array([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]), NUM_JOINTS)
        return cls(identity_6d, np.zeros(NUM_BETAS), np.array([0.9, 0.0, 0.0]))


def load_mean_params(path: str | Path) -> MeanParams:
    """Read SPIN's `smpl_mean_params.npz` (keys `pose` (144,), `shape` (10,), `cam` (3,)) without pickle."""
    path = require_file(path, "SMPL mean parameters (smpl_mean_params.npz)", SPIN_FILES_HINT)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: np.asarray(npz[key], np.float64).reshape(-1) for key in npz.files}
    except Exception as error:  # BadZipFile (truncated), ValueError (pickled/other data), OSError, EOFError
        raise explain_load_failure(path, "SMPL mean parameters file", SPIN_FILES_HINT, error) from error
    missing = {"pose", "shape", "cam"} - set(arrays)
    if missing:
        raise ValueError(f"{path}: missing keys {sorted(missing)} (expected pose, shape, cam)")
    params = MeanParams(arrays["pose"], arrays["shape"], arrays["cam"])
    sizes = (params.pose_6d.size, params.betas.size, params.camera.size)
    if sizes != (NUM_POSE_6D, NUM_BETAS, NUM_CAMERA):
        raise ValueError(f"{path}: pose/shape/cam sizes {sizes}, expected {(NUM_POSE_6D, NUM_BETAS, NUM_CAMERA)}")
    return params


class Bottleneck(nn.Module):
    """ResNet bottleneck: 1 × 1 reduce → 3 × 3 (carries the stride) → 1 × 1 expand (×4), plus the shortcut."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        return self.relu(self.bn3(self.conv3(y)) + shortcut)


def _resnet_stage(in_channels: int, width: int, blocks: int, stride: int) -> nn.Sequential:
    layers = [Bottleneck(in_channels, width, stride)]
    layers += [Bottleneck(width * Bottleneck.expansion, width) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


@dataclass
class HmrOutput:
    """HMR predictions for B crops.

    Attributes:
        rotations: (B, 24, 3, 3) SMPL joint rotations (joint 0: global orientation in the camera frame).
        betas: (B, 10) SMPL shape coefficients.
        camera: (B, 3) weak-perspective crop camera [s, tx, ty].
        pose_6d: (B, 144) the raw 6D pose output.
    """

    rotations: torch.Tensor
    betas: torch.Tensor
    camera: torch.Tensor
    pose_6d: torch.Tensor


class Hmr(nn.Module):
    """ResNet-50 + iterative error feedback regressor with SPIN's parameter names (loads its checkpoint strictly)."""

    def __init__(self, mean_params: MeanParams | None = None) -> None:
        super().__init__()
        mean = mean_params or MeanParams.neutral()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        widths, strides, in_channels = (64, 128, 256, 512), (1, 2, 2, 2), 64
        for index, (width, blocks, stride) in enumerate(zip(widths, RESNET50_BLOCKS, strides, strict=True), 1):
            self.add_module(f"layer{index}", _resnet_stage(in_channels, width, blocks, stride))
            in_channels = width * Bottleneck.expansion
        self.fc1 = nn.Linear(FEATURE_DIM + NUM_POSE_6D + NUM_BETAS + NUM_CAMERA, 1024)
        self.drop1 = nn.Dropout()
        self.fc2 = nn.Linear(1024, 1024)
        self.drop2 = nn.Dropout()
        self.decpose = nn.Linear(1024, NUM_POSE_6D)
        self.decshape = nn.Linear(1024, NUM_BETAS)
        self.deccam = nn.Linear(1024, NUM_CAMERA)
        self.register_buffer("init_pose", torch.as_tensor(mean.pose_6d, dtype=torch.float32).view(1, -1))
        self.register_buffer("init_shape", torch.as_tensor(mean.betas, dtype=torch.float32).view(1, -1))
        self.register_buffer("init_cam", torch.as_tensor(mean.camera, dtype=torch.float32).view(1, -1))
        self._init_weights()

    def _init_weights(self) -> None:
        """He initialisation for convolutions and near-zero residual heads, so that an untrained network is tame."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for head in (self.decpose, self.decshape, self.deccam):
            nn.init.xavier_uniform_(head.weight, gain=0.01)
            nn.init.zeros_(head.bias)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised crops (B, 3, 224, 224) → ResNet-50 features (B, 2048)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=(2, 3))

    def forward(self, images: torch.Tensor, iterations: int = IEF_ITERATIONS) -> HmrOutput:
        """Normalised crops (B, 3, 224, 224) (see `preprocess_crops`) → SMPL rotations, β and crop camera."""
        features = self.encode(images)
        batch = features.shape[0]
        pose = self.init_pose.expand(batch, -1)
        betas = self.init_shape.expand(batch, -1)
        camera = self.init_cam.expand(batch, -1)
        for _ in range(iterations):
            hidden = self.drop1(self.fc1(torch.cat([features, pose, betas, camera], dim=1)))
            hidden = self.drop2(self.fc2(hidden))
            pose = pose + self.decpose(hidden)
            betas = betas + self.decshape(hidden)
            camera = camera + self.deccam(hidden)
        rotations = rot6d_to_matrix(pose.view(batch, NUM_JOINTS, 6))
        return HmrOutput(rotations=rotations, betas=betas, camera=camera, pose_6d=pose)

    @classmethod
    def from_files(cls, checkpoint_path: str | Path, mean_params_path: str | Path | None = None) -> Hmr:
        """Build and load SPIN's checkpoint (strictly); the mean parameters come from the checkpoint's `init_*`
        buffers, and `mean_params_path` (smpl_mean_params.npz) is read only to check the file when given."""
        model = cls(load_mean_params(mean_params_path) if mean_params_path is not None else None)
        load_spin_checkpoint(model, checkpoint_path)
        return model.eval()


def load_spin_checkpoint(model: Hmr, path: str | Path) -> None:
    """Load SPIN's checkpoint `{'model': state_dict}` (or a bare state dict) into `model`, strictly.

    Uses `torch.load(weights_only=True)` (no code runs). Accepts a `module.` prefix (DataParallel) and fills
    BatchNorm `num_batches_tracked` counters when absent (they do not affect inference). Raises RuntimeError
    naming the file on any missing, unexpected or mis-shaped parameter.
    """
    path = require_file(path, "HMR checkpoint (SPIN model_checkpoint.pt)", SPIN_FILES_HINT)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises RuntimeError, UnpicklingError, EOFError, KeyError... for bad files
        raise explain_load_failure(path, "HMR checkpoint", SPIN_FILES_HINT, error) from error
    state = checkpoint.get("model", checkpoint) if isinstance(checkpoint, Mapping) else None
    if not isinstance(state, Mapping):
        raise ModelFileError(
            f"HMR checkpoint {path} cannot be used: expected {{'model': state_dict}} or a state dict, got "
            f"{type(checkpoint).__name__}. {SPIN_FILES_HINT}"
        )
    state = {key.removeprefix("module."): value for key, value in state.items()}
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = value
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise RuntimeError(f"{path}: not a SPIN/HMR checkpoint: {error}") from None


def crop_square(bbox_xywh: np.ndarray, scale: float = CROP_SCALE) -> tuple[np.ndarray, int]:
    """Person box (4,) [x, y, w, h] px → crop centre (2,) px and integer side px (scale × the longer side, ≥ 1)."""
    x, y, w, h = (float(v) for v in bbox_xywh)
    return np.array([x + w / 2, y + h / 2]), max(round(scale * max(w, h)), 1)


def crop_person(image_rgb: np.ndarray, center: np.ndarray, side: int, size: int = HMR_INPUT_SIZE) -> np.ndarray:
    """Square region of `side` px centred on `center` (pixel centres at integers; zeros outside the image),
    resized to (size, size, 3) with area averaging when shrinking. Crop pixel u maps to image
    x = center_x − side / 2 + (u + 0.5) · side / size."""
    origin = np.asarray(center, np.float64) - (side - 1) / 2.0
    shift = np.array([[1.0, 0.0, -origin[0]], [0.0, 1.0, -origin[1]]])
    region = cv2.warpAffine(image_rgb, shift, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(region, (size, size), interpolation=interpolation)


def preprocess_crops(crops_rgb: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 RGB crops (B, 224, 224, 3) → float32 (B, 3, 224, 224) in [0, 1] normalised with ImageNet mean/std,
    in channels-last memory layout (the crops' own)."""
    images = torch.as_tensor(crops_rgb, device=device).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    return (images - mean) / std


def weak_perspective_to_translation(
    camera: np.ndarray, focal_length: float = SPIN_FOCAL_LENGTH, size: int = HMR_INPUT_SIZE
) -> np.ndarray:
    """SPIN's crop camera (N, 3) [s, tx, ty] → translation (N, 3) m for a crop camera of focal `focal_length` px:
    t = [tx, ty, 2 f / (size · s)]."""
    camera = np.asarray(camera, np.float64)
    depth = 2.0 * focal_length / (size * np.maximum(camera[:, 0], 1e-9))
    return np.stack([camera[:, 1], camera[:, 2], depth], axis=1)


def crop_camera_to_translation(
    camera: np.ndarray, centers: np.ndarray, sides: np.ndarray, camera_matrix: np.ndarray
) -> np.ndarray:
    """Crop cameras (N, 3) [s, tx, ty] of crops with centres (N, 2) px and sides (N,) px → SMPL translations (N, 3)
    m in the full image's camera optical frame with intrinsics `camera_matrix` (3, 3).

    The crop maps a body point X to image pixels x ≈ c_box + (side · s / 2) · (X + [tx, ty]); a pinhole camera
    with focal f gives x ≈ c + (f / T_z) · (X + T_xy). Equating: T_z = f̄ · 2 / (side · s) with f̄ = (fx + fy) / 2,
    and T_xy = [tx, ty] + (c_box − c) · T_z / [fx, fy].
    """
    camera = np.asarray(camera, np.float64)
    focal = np.array([camera_matrix[0, 0], camera_matrix[1, 1]], np.float64)
    principal = np.array([camera_matrix[0, 2], camera_matrix[1, 2]], np.float64)
    scale = np.maximum(camera[:, 0], 1e-9)
    depth = focal.mean() * 2.0 / (np.asarray(sides, np.float64) * scale)
    offset = camera[:, 1:] + (np.asarray(centers, np.float64) - principal) * depth[:, None] / focal
    return np.concatenate([offset, depth[:, None]], axis=1)
