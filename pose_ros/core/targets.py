"""Training targets (the encoder): Gaussian keypoint heatmaps and Part Affinity Fields.

All coordinates are map pixels with pixel centres at integer coordinates. Targets are built with torch on
the device of the keypoints, vectorised over people, keypoints and limbs.
"""

from __future__ import annotations

import torch


def _grid(height: int, width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates: xs (1, 1, 1, W) and ys (1, 1, H, 1) float32."""
    xs = torch.arange(width, dtype=torch.float32, device=device).view(1, 1, 1, width)
    ys = torch.arange(height, dtype=torch.float32, device=device).view(1, 1, height, 1)
    return xs, ys


def gaussian_heatmaps(
    keypoints_xy: torch.Tensor,
    visible: torch.Tensor,
    height: int,
    width: int,
    sigma: float,
    background: bool = False,
) -> torch.Tensor:
    """One Gaussian peak of value 1 per visible keypoint, the maximum over people.

    Args:
        keypoints_xy: (N, K, 2) float map pixels (x, y).
        visible: (N, K) bool; invisible keypoints leave no peak.
        height, width: map size in pixels.
        sigma: Gaussian standard deviation in map pixels.
        background: append OpenPose's background channel, 1 - max over keypoint channels.
    Returns:
        (K, H, W) float32, or (K + 1, H, W) with the background.
    """
    N, K, _ = keypoints_xy.shape
    xs, ys = _grid(height, width, keypoints_xy.device)
    kx = keypoints_xy[..., 0].float().view(N, K, 1, 1)
    ky = keypoints_xy[..., 1].float().view(N, K, 1, 1)
    maps = torch.exp(-((xs - kx) ** 2 + (ys - ky) ** 2) / (2.0 * sigma**2))  # (N, K, H, W)
    maps = maps * visible.view(N, K, 1, 1).to(maps.dtype)
    heatmaps = maps.amax(dim=0) if N > 0 else maps.new_zeros(K, height, width)
    if background:
        heatmaps = torch.cat([heatmaps, 1.0 - heatmaps.amax(dim=0, keepdim=True)], dim=0)
    return heatmaps


def paf_fields(
    keypoints_xy: torch.Tensor,
    visible: torch.Tensor,
    limbs: torch.Tensor,
    height: int,
    width: int,
    limb_width: float,
) -> torch.Tensor:
    """Part Affinity Fields: the unit vector from a limb's first keypoint to its second on every pixel of the
    limb's rectangle, averaged where people's limbs of the same type overlap, zero elsewhere.

    A pixel p belongs to limb A→B when -w <= (p - A)·v <= |B - A| + w and |(p - A)·v⊥| <= w, with
    v = (B - A) / |B - A| and w = `limb_width`: the rectangle reaches w beyond each end, as OpenPose's band
    clipped to the limb's box grown by w does, so that the decoder's samples at the keypoints (rounded to
    pixels) still lie on the field.

    Args:
        keypoints_xy: (N, K, 2) float map pixels.
        visible: (N, K) bool; a limb exists when both ends are visible and apart.
        limbs: (L, 2) int64 keypoint indices (from, to).
        height, width: map size in pixels.
        limb_width: half-width of the limb rectangle in map pixels.
    Returns:
        (2L, H, W) float32: channel 2l is the x component of limb l, channel 2l + 1 the y component.
    """
    N = keypoints_xy.shape[0]
    L = limbs.shape[0]
    if N == 0:
        return keypoints_xy.new_zeros(2 * L, height, width, dtype=torch.float32)
    limbs = limbs.to(keypoints_xy.device)
    start = keypoints_xy[:, limbs[:, 0]].float()  # (N, L, 2)
    end = keypoints_xy[:, limbs[:, 1]].float()
    delta = end - start
    length = delta.norm(dim=-1)  # (N, L)
    exists = visible[:, limbs[:, 0]] & visible[:, limbs[:, 1]] & (length > 1e-6)
    unit = delta / length.clamp(min=1e-6).unsqueeze(-1)  # (N, L, 2)
    xs, ys = _grid(height, width, keypoints_xy.device)
    dx = xs - start[..., 0].view(N, L, 1, 1)
    dy = ys - start[..., 1].view(N, L, 1, 1)
    ux, uy = unit[..., 0].view(N, L, 1, 1), unit[..., 1].view(N, L, 1, 1)
    along = dx * ux + dy * uy
    across = (dx * uy - dy * ux).abs()
    inside = (along >= -limb_width) & (along <= length.view(N, L, 1, 1) + limb_width) & (across <= limb_width)
    on_limb = inside & exists.view(N, L, 1, 1)
    weight = on_limb.float()  # (N, L, H, W)
    count = weight.sum(dim=0).clamp(min=1.0)  # (L, H, W)
    field_x = (weight * ux).sum(dim=0) / count
    field_y = (weight * uy).sum(dim=0) / count
    return torch.stack([field_x, field_y], dim=1).reshape(2 * L, height, width)
