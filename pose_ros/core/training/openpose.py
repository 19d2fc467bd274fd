"""Training OpenPose-style networks on COCO-format keypoint data, with a loss at every stage.

Data: a COCO keypoint annotation file (`images`, `annotations` with `keypoints` = [x, y, v] × 17 in the COCO-17
order, `iscrowd`) and its image directory. Keypoint coordinates are taken as pixel positions with pixel
centres at integer coordinates (the convention of `Person`). Each person is converted to OpenPose's COCO-18
(the neck is the shoulders' midpoint, `coco17_to_coco18`); a keypoint counts when v > 0.

Each image is scaled to fit the network input (aspect kept), placed top-left and padded with pixel value 128
like the inference front end; targets are Gaussian heatmaps with OpenPose's background channel and PAFs
(`pose_ros.core.targets`) on the network's output grid (its `stride` and `map_offset`).

Loss: the mean squared error of heatmaps and PAFs, summed over all stages (intermediate supervision, as in
Convolutional Pose Machines and OpenPose).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from pose_ros.core.models.openpose import PAD_VALUE, STRIDE, normalise
from pose_ros.core.openpose import layout
from pose_ros.core.skeletons import coco17_to_coco18
from pose_ros.core.targets import gaussian_heatmaps, paf_fields


@dataclass(frozen=True)
class TargetSettings:
    """How training samples are made.

    Attributes:
        input_size: network input (height, width) in pixels, multiples of 8.
        sigma: heatmap Gaussian standard deviation in output-map pixels.
        limb_width: PAF half-width in output-map pixels.
        stride: input pixels per output-map pixel (the network's `stride`).
        map_offset: input pixel of output map pixel 0 (the network's `map_offset`).
    """

    input_size: tuple[int, int] = (368, 368)
    sigma: float = 1.0
    limb_width: float = 1.0
    stride: int = STRIDE
    map_offset: float = 3.5


@dataclass
class Sample:
    """One training image: image (3, H, W) normalised BGR; heatmaps (19, h, w); pafs (38, h, w)."""

    image: torch.Tensor
    heatmaps: torch.Tensor
    pafs: torch.Tensor


def read_coco_people(annotation_file: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Image file name → (keypoints_xy (N, 18, 2) pixels, visible (N, 18) bool) of its non-crowd people."""
    data = json.loads(Path(annotation_file).read_text())
    names = {image["id"]: image["file_name"] for image in data["images"]}
    people: dict[str, list[np.ndarray]] = {name: [] for name in names.values()}
    for annotation in data["annotations"]:
        if annotation.get("iscrowd", 0) or annotation.get("num_keypoints", 1) == 0:
            continue
        people[names[annotation["image_id"]]].append(np.asarray(annotation["keypoints"], np.float32).reshape(17, 3))
    out = {}
    for name, rows in people.items():
        coco = np.stack(rows) if rows else np.zeros((0, 17, 3), np.float32)
        xy, conf = coco17_to_coco18(coco[..., :2], (coco[..., 2] > 0).astype(np.float32))
        out[name] = (xy, conf > 0)
    return out


def make_sample(image_rgb: np.ndarray, keypoints_xy: np.ndarray, visible: np.ndarray,
                settings: TargetSettings) -> Sample:
    """Scale an image (H, W, 3) uint8 RGB into the input size and draw the targets of its people."""
    in_h, in_w = settings.input_size
    h, w = image_rgb.shape[:2]
    scale = min(in_h / h, in_w / w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    canvas = np.full((in_h, in_w, 3), int(PAD_VALUE), np.uint8)
    canvas[:new_h, :new_w] = cv2.resize(image_rgb, (new_w, new_h), interpolation=cv2.INTER_AREA)[..., ::-1]
    image = normalise(torch.from_numpy(canvas).permute(2, 0, 1).float())
    scale_xy = np.array([new_w / w, new_h / h], np.float32)
    map_xy = ((keypoints_xy + 0.5) * scale_xy - 0.5 - settings.map_offset) / settings.stride
    map_h, map_w = in_h // settings.stride, in_w // settings.stride
    kp, vis = torch.from_numpy(map_xy.astype(np.float32)), torch.from_numpy(visible)
    heatmaps = gaussian_heatmaps(kp, vis, map_h, map_w, settings.sigma, background=True)
    pafs = paf_fields(kp, vis, torch.from_numpy(layout.LIMBS), map_h, map_w, settings.limb_width)
    return Sample(image=image, heatmaps=heatmaps, pafs=pafs)


def load_coco_samples(annotation_file: str | Path, image_dir: str | Path, settings: TargetSettings) -> list[Sample]:
    """Every annotated image of a COCO keypoint file as a training sample (images without people included)."""
    samples = []
    for name, (xy, visible) in read_coco_people(annotation_file).items():
        bgr = cv2.imread(str(Path(image_dir) / name), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(f"cannot read image {Path(image_dir) / name}")
        samples.append(make_sample(bgr[..., ::-1], xy, visible, settings))
    return samples


def stage_loss(outputs: list[tuple[torch.Tensor, torch.Tensor]], heatmaps: torch.Tensor,
               pafs: torch.Tensor) -> torch.Tensor:
    """Σ over stages of MSE(heatmaps) + MSE(PAFs): intermediate supervision of every stage."""
    mse = nn.functional.mse_loss
    return sum((mse(h, heatmaps) + mse(p, pafs) for h, p in outputs), torch.zeros((), device=heatmaps.device))


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation: Adam with a step decay of the learning rate at 2/3 of the iterations."""

    iterations: int = 1000
    batch_size: int = 8
    learning_rate: float = 2e-3
    weight_decay: float = 0.0
    seed: int = 0


def train(model: nn.Module, samples: list[Sample], settings: TrainSettings, device: torch.device,
          log: Callable[[int, float], None] | None = None) -> list[float]:
    """Train `model` (with a `stages(images)` method) on `samples`; returns the loss of every iteration."""
    generator = torch.Generator().manual_seed(settings.seed)
    images = torch.stack([s.image for s in samples]).to(device)
    heatmaps = torch.stack([s.heatmaps for s in samples]).to(device)
    pafs = torch.stack([s.pafs for s in samples]).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.StepLR(optimiser, step_size=max(1, 2 * settings.iterations // 3), gamma=0.1)
    model.to(device).train()
    losses = []
    for iteration in range(settings.iterations):
        batch = torch.randperm(len(samples), generator=generator)[: settings.batch_size].to(device)
        loss = stage_loss(model.stages(images[batch]), heatmaps[batch], pafs[batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(float(loss.detach()))
        if log is not None:
            log(iteration, losses[-1])
    model.eval()
    return losses
