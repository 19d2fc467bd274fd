"""Heatmap decoding shared by every heatmap head: local peaks, argmax, parabola sub-pixel refinement.

Conventions: heatmaps are torch tensors (…, H, W) on any device; pixel centres are at integer
coordinates, so a peak at column x, row y has position (x, y) in map pixels, and the refined position
moves at most half a pixel from it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class Peaks:
    """Local maxima of a stack of heatmaps, ordered by channel (then row-major position).

    Attributes:
        channels: (P,) int64 channel index of each peak.
        xy: (P, 2) float32 map pixels, refined to sub-pixel precision.
        scores: (P,) float32 heatmap value at the integer peak.
        counts: (C,) int64 peaks per channel (so `channels` is `repeat_interleave(arange(C), counts)`).
    """

    channels: torch.Tensor
    xy: torch.Tensor
    scores: torch.Tensor
    counts: torch.Tensor

    def __len__(self) -> int:
        return int(self.channels.shape[0])


def gaussian_blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian smoothing of maps (C, H, W) with std `sigma` pixels (kernel radius 3σ, replicated
    borders)."""
    radius = max(1, round(3.0 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=maps.dtype, device=maps.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    x = maps.unsqueeze(1)  # (C, 1, H, W)
    x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1))
    x = F.conv2d(x, kernel.view(1, 1, -1, 1))
    return x.squeeze(1)


def local_maxima(maps: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pixels above `threshold` that are maxima of their four-neighbourhood (outside the map counts as -inf).

    A peak must exceed its left and upper neighbours and be >= its right and lower ones, so that a plateau of
    equal values (a Gaussian centred between two pixels) yields exactly one peak, its top-left pixel. Only the
    pixels above the threshold are compared, which keeps this cheap for sparse heatmaps.

    Args:
        maps: (C, H, W).
    Returns:
        channels, ys, xs: (P,) int64, ordered by channel then row-major position.
    """
    H, W = maps.shape[-2:]
    padded = F.pad(maps, (1, 1, 1, 1), value=float("-inf")).reshape(-1)
    channels, ys, xs = torch.nonzero(maps > threshold, as_tuple=True)
    centre = channels * ((H + 2) * (W + 2)) + (ys + 1) * (W + 2) + (xs + 1)
    value = padded[centre].unsqueeze(1)
    before = padded[centre.unsqueeze(1) - torch.tensor([1, W + 2], device=maps.device)]  # left, up
    after = padded[centre.unsqueeze(1) + torch.tensor([1, W + 2], device=maps.device)]  # right, down
    peak = ((value > before) & (value >= after)).all(dim=1)
    return channels[peak], ys[peak], xs[peak]


def refine_peaks_parabola(
    heatmaps: torch.Tensor, channels: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor
) -> torch.Tensor:
    """Sub-pixel peak positions from a parabola through each peak and its two neighbours, per axis.

    Along x, the parabola through (-1, f_left), (0, f_centre), (1, f_right) has its vertex at
    0.5 (f_left - f_right) / (f_left - 2 f_centre + f_right); likewise along y.

    Args:
        heatmaps: (C, H, W) maps.
        channels, ys, xs: (P,) int64 channel, row and column of each integer peak.
    Returns:
        (P, 2) float32 (x, y) map pixels. Along an axis where the peak sits on the border or the three values
        do not bend down (flat or not a maximum), the integer coordinate is kept; offsets are clamped to ±0.5.
    """
    H, W = heatmaps.shape[-2:]
    centre = torch.stack([xs, ys], dim=1)
    xy = centre.to(torch.float32)
    if xs.numel() == 0:
        return xy
    flat = heatmaps.reshape(-1).to(torch.float32)
    base = channels * (H * W) + ys * W + xs  # (P,)
    inside = (centre > 0) & (centre < torch.tensor([W - 1, H - 1], device=centre.device))  # (P, 2)
    step = torch.tensor([1, W], device=base.device)  # flat index step along x, y
    step = torch.where(inside, step, torch.zeros_like(step))  # border peaks: sample the centre thrice
    f_centre = flat[base].unsqueeze(1)  # (P, 1)
    f_before = flat[base.unsqueeze(1) - step]  # (P, 2)
    f_after = flat[base.unsqueeze(1) + step]
    curvature = f_before - 2.0 * f_centre + f_after
    bends = curvature < 0
    offset = 0.5 * (f_before - f_after) / torch.where(bends, curvature, torch.ones_like(curvature))
    return xy + torch.where(bends, offset, torch.zeros_like(offset)).clamp(-0.5, 0.5)


def find_peaks(
    heatmaps: torch.Tensor, threshold: float, smooth_sigma: float = 0.0, subpixel: bool = True
) -> Peaks:
    """All local maxima of heatmaps (C, H, W) above `threshold`.

    With `smooth_sigma` > 0 the maxima are searched on a Gaussian-smoothed copy (as CMU OpenPose does), while
    scores and the sub-pixel fit use the original maps.
    """
    search = gaussian_blur(heatmaps, smooth_sigma) if smooth_sigma > 0 else heatmaps
    channels, ys, xs = local_maxima(search, threshold)
    scores = heatmaps[channels, ys, xs].to(torch.float32)
    xy = refine_peaks_parabola(heatmaps, channels, ys, xs) if subpixel else torch.stack([xs, ys], 1).float()
    counts = torch.bincount(channels, minlength=heatmaps.shape[0])
    return Peaks(channels=channels, xy=xy, scores=scores, counts=counts)


def argmax_subpixel(heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The maximum of each heatmap, refined by the parabola fit.

    Args:
        heatmaps: (N, K, H, W) maps (one person per item, e.g. a top-down head).
    Returns:
        xy (N, K, 2) float32 map pixels, and conf (N, K) float32 = the maximum value.
    """
    N, K, H, W = heatmaps.shape
    flat = heatmaps.reshape(N * K, H * W)
    conf, index = flat.max(dim=1)
    channels = torch.arange(N * K, device=heatmaps.device)
    xy = refine_peaks_parabola(heatmaps.reshape(N * K, H, W), channels, index // W, index % W)
    return xy.reshape(N, K, 2), conf.to(torch.float32).reshape(N, K)
