"""Person crops for top-down pose: box -> affine transform, all crops of a frame sampled in one batched call,
and the exact map from crop coordinates back to the image.

Conventions: image and crop points are (x, y) pixels with pixel centres at integer coordinates (the centre of
the top-left pixel is (0, 0), as msg/Keypoint2D.msg). A crop transform is a (2, 3) affine matrix A mapping a
crop point (u, v) to the image point A @ (u, v, 1); sampling evaluates the bilinear interpolation of the image
at that point (zero outside the image), so a keypoint found at crop point q lies at image point A @ (q, 1)
exactly, whatever A is (scaling, translation, and also rotation or flips, which `boxes_to_crop_transforms`
does not produce but the sampler and the back-mapping support).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def boxes_to_crop_transforms(boxes_xyxy: np.ndarray, crop_size: tuple[int, int], padding: float = 1.25) -> np.ndarray:
    """Axis-aligned crop transforms (no rotation, no flip) centred on each box.

    The box is grown to the crop's aspect ratio (keeping its centre and the larger relative side), then
    scaled by `padding` so limbs sticking out of a tight detector box stay inside the crop.

    Args:
        boxes_xyxy: (N, 4) image pixels x1, y1, x2, y2 (box edges, pixel-centre convention).
        crop_size: (height, width) of the crop in pixels.
        padding: scale factor >= 1 applied to the aspect-corrected box.
    Returns:
        (N, 2, 3) float64 crop -> image affine matrices: crop pixel (u, v) ↦ image (x, y).
    """
    if padding < 1.0:
        raise ValueError(f"padding must be >= 1, got {padding}")
    boxes = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
    crop_h, crop_w = crop_size
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2.0
    size = np.maximum(boxes[:, 2:] - boxes[:, :2], 1.0)  # (N, 2) w, h
    aspect = crop_w / crop_h
    width = np.maximum(size[:, 0], size[:, 1] * aspect) * padding
    scale = width / crop_w  # image pixels per crop pixel, same along x and y
    transforms = np.zeros((len(boxes), 2, 3))
    transforms[:, 0, 0] = transforms[:, 1, 1] = scale
    # crop edges [-0.5, crop_w - 0.5] map onto the box edges centred at `centre`
    transforms[:, 0, 2] = centre[:, 0] - scale * (crop_w / 2.0 - 0.5)
    transforms[:, 1, 2] = centre[:, 1] - scale * (crop_h / 2.0 - 0.5)
    return transforms


def crop_to_image(points_xy: np.ndarray, transforms: np.ndarray) -> np.ndarray:
    """Map crop points back to the image.

    Args:
        points_xy: (N, K, 2) crop pixels (x, y).
        transforms: (N, 2, 3) crop -> image affine matrices.
    Returns:
        (N, K, 2) float32 image pixels.
    """
    points = np.asarray(points_xy, np.float64)
    A = np.asarray(transforms, np.float64)
    return (np.einsum("nij,nkj->nki", A[:, :, :2], points) + A[:, None, :, 2]).astype(np.float32)


def _normalizer(size_hw: tuple[int, int]) -> np.ndarray:
    """(3, 3) map from pixel coordinates to grid_sample's normalised coordinates (align_corners=False)."""
    h, w = size_hw
    return np.array([[2.0 / w, 0.0, 1.0 / w - 1.0], [0.0, 2.0 / h, 1.0 / h - 1.0], [0.0, 0.0, 1.0]])


def sample_crops(image: torch.Tensor, transforms: np.ndarray, crop_size: tuple[int, int]) -> torch.Tensor:
    """All crops of one image in one batched bilinear sampling (`affine_grid` + `grid_sample`).

    Args:
        image: (H, W, C) tensor (any numeric dtype; sampled as float32) on the device to work on.
        transforms: (N, 2, 3) crop -> image affine matrices (see `boxes_to_crop_transforms`).
        crop_size: (height, width) of every crop.
    Returns:
        (N, crop_h, crop_w, C) float32 on the image's device: crop pixel (u, v) holds the bilinear
        interpolation of the image at A @ (u, v, 1), zero outside the image.
    """
    count = len(transforms)
    channels = image.shape[2]
    if count == 0:
        return torch.zeros((0, *crop_size, channels), dtype=torch.float32, device=image.device)
    to_image = np.zeros((count, 3, 3))
    to_image[:, :2] = transforms
    to_image[:, 2, 2] = 1.0
    theta = _normalizer(tuple(image.shape[:2])) @ to_image @ np.linalg.inv(_normalizer(crop_size))
    theta_t = torch.as_tensor(theta[:, :2], dtype=torch.float32, device=image.device)
    grid = F.affine_grid(theta_t, [count, channels, *crop_size], align_corners=False)
    source = image.permute(2, 0, 1).unsqueeze(0).to(torch.float32).expand(count, -1, -1, -1)
    crops = F.grid_sample(source, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return crops.permute(0, 2, 3, 1)
