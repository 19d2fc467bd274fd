"""Heatmap decoding shared by every heatmap head: local peaks, argmax, parabola sub-pixel refinement.

Conventions: heatmaps are torch tensors (…, H, W) on any device; pixel centres are at integer
coordinates, so a peak at column x, row y has position (x, y) in map pixels, and the refined position
moves at most half a pixel from it.

Dense work (thresholding, argmax, gathering each candidate's 3×3 cross) runs with torch on the maps'
device, or with NumPy on views of CPU maps; the few values per candidate then come to the CPU, where the
peak test and the parabola fit run in NumPy (at these sizes NumPy's per-operation cost is several times
lower than torch's).
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class Peaks:
    """Local maxima of a stack of heatmaps, ordered by channel (then row-major position). NumPy arrays.

    Attributes:
        channels: (P,) int64 channel index of each peak.
        xy: (P, 2) float32 map pixels, refined to sub-pixel precision.
        scores: (P,) float32 heatmap value at the integer peak.
        counts: (C,) int64 peaks per channel (so `channels` is `repeat(arange(C), counts)`).
    """

    channels: np.ndarray
    xy: np.ndarray
    scores: np.ndarray
    counts: np.ndarray

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


def _cross(flat: torch.Tensor | np.ndarray, index: torch.Tensor | np.ndarray, height: int, width: int
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Values of flat pixels `index` (P,) of maps (C, H, W) flattened to `flat`, and of their four neighbours.

    `flat` and `index` are torch tensors on any device or NumPy arrays (CPU maps: NumPy, whose per-operation
    cost is several times lower than torch's at these sizes).
    Returns NumPy arrays on the CPU: values (5, P) float32 rows centre, left, up, right, down (-inf outside
    the map); xy (2, P) int64 rows column, row; and the flat indices (P,).
    """
    if isinstance(flat, np.ndarray):
        flat_index = np.asarray(index, dtype=np.int64)
        gather = np.clip(flat_index + np.array([[0], [-1], [-width], [1], [width]]), 0, flat.size - 1)
        values = np.take(flat, gather).astype(np.float32, copy=False)
    else:
        steps = torch.tensor([0, -1, -width, 1, width], device=index.device).unsqueeze(1)
        values = flat[(index + steps).clamp_(0, flat.numel() - 1)].cpu().numpy().astype(np.float32, copy=False)
        flat_index = index.cpu().numpy()
    x = flat_index % width
    y = (flat_index // width) % height
    values[1, x == 0] = -np.inf
    values[2, y == 0] = -np.inf
    values[3, x == width - 1] = -np.inf
    values[4, y == height - 1] = -np.inf
    return values, np.stack([x, y]), flat_index


def _parabola_xy(values: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Integer positions xy (2, P) plus, per axis, the vertex offset of the parabola through the neighbours
    (values (5, P) as from `_cross`): 0.5 (f_before - f_after) / (f_before - 2 f_centre + f_after), clamped to
    ±0.5; no offset on a border or where the values do not bend down. Returns (P, 2) float32 x, y."""
    before, centre, after = values[1:3], values[0], values[3:5]
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        curvature = before - 2.0 * centre + after
        bends = np.isfinite(curvature) & (curvature < 0)
        offset = np.clip(0.5 * (before - after) / curvature, -0.5, 0.5)  # used only where it bends
    return (xy + np.where(bends, offset, 0.0)).T.astype(np.float32)


def refine_peaks_parabola(
    heatmaps: torch.Tensor, channels: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor
) -> np.ndarray:
    """Sub-pixel peak positions from a parabola through each peak and its two neighbours, per axis.

    Along x, the parabola through (-1, f_left), (0, f_centre), (1, f_right) has its vertex at
    0.5 (f_left - f_right) / (f_left - 2 f_centre + f_right); likewise along y.

    Args:
        heatmaps: (C, H, W) maps.
        channels, ys, xs: (P,) int64 channel, row and column of each integer peak.
    Returns:
        (P, 2) float32 NumPy (x, y) map pixels. Along an axis where the peak sits on the border or the three
        values do not bend down (flat or not a maximum), the integer coordinate is kept; offsets are clamped
        to ±0.5.
    """
    H, W = heatmaps.shape[-2:]
    values, xy, _ = _cross(heatmaps.reshape(-1), channels * (H * W) + ys * W + xs, H, W)
    return _parabola_xy(values, xy)


@functools.lru_cache(maxsize=16)
def _neighbour_steps(width: int) -> np.ndarray:
    """(5, 1) flat offsets of a pixel and its left, upper, right, lower neighbours in rows of `width` pixels."""
    return np.array([[0], [-1], [-width], [1], [width]], dtype=np.int64)


_FRAMES = threading.local()  # per thread: the last shape's framed buffer (only its interior is ever written)


def _frame(*shape: int) -> np.ndarray:
    """A float32 array of `shape` whose border pixels (first/last row and column of each map) are -inf, reused
    by the calling thread while the shape stays the same (its interior is overwritten by every caller)."""
    framed = getattr(_FRAMES, "array", None)
    if framed is None or framed.shape != shape:
        framed = np.full(shape, -np.inf, dtype=np.float32)
        _FRAMES.array = framed
    return framed


def _find_peaks_padded(maps: np.ndarray, threshold: float, subpixel: bool) -> Peaks:
    """`find_peaks` on CPU maps (C, H, W) float32 without smoothing, in few NumPy calls (at 46×46 the fixed
    cost per call dominates). The maps are copied once into a frame of -inf pixels and flattened; then the
    four neighbours of every pixel are the flat array shifted by ±1 and ±(W + 2) (outside the map = the frame,
    no border cases), so the peak test is five comparisons of contiguous slices, and one gather fetches the five
    values of each peak for the parabola fit. Same result as the general path."""
    C, H, W = maps.shape
    Wp = W + 2
    framed = _frame(C, H + 2, Wp)
    framed[:, 1:-1, 1:-1] = maps
    flat = framed.reshape(-1)
    centre = flat[Wp + 1 : -Wp - 1]  # every pixel with a whole cross inside `flat`; frame pixels are -inf
    peak = centre > threshold
    peak &= centre > flat[Wp : -Wp - 2]  # left
    peak &= centre > flat[1 : -2 * Wp - 1]  # up
    peak &= centre >= flat[Wp + 2 : -Wp]  # right
    peak &= centre >= flat[2 * Wp + 1 : -1]  # down
    index = np.flatnonzero(peak) + (Wp + 1)  # framed flat index
    values = np.take(flat, index + _neighbour_steps(Wp))  # (5, P) centre, left, up, right, down
    channels, rest = np.divmod(index, (H + 2) * Wp)
    xy = np.empty((2, index.size), dtype=np.int64)  # (2, P) column, row
    np.divmod(rest, Wp, out=(xy[1], xy[0]))
    xy -= 1  # framed → map pixels
    refined = _parabola_xy(values, xy) if subpixel else xy.T.astype(np.float32)
    return Peaks(channels=channels, xy=refined, scores=values[0].copy(), counts=np.bincount(channels, minlength=C))


def find_peaks(
    heatmaps: torch.Tensor, threshold: float, smooth_sigma: float = 0.0, subpixel: bool = True
) -> Peaks:
    """All local maxima of heatmaps (C, H, W) above `threshold`.

    A peak must exceed its left and upper neighbours and be >= its right and lower ones (outside the map
    counts as -inf), so that a plateau of equal values (a Gaussian centred between two pixels) yields exactly
    one peak, its top-left pixel. Only pixels above the threshold are examined, which keeps this cheap.
    With `smooth_sigma` > 0 the maxima are searched on a Gaussian-smoothed copy (as CMU OpenPose does), while
    scores and the sub-pixel fit use the original maps.
    """
    C, H, W = heatmaps.shape
    maps = heatmaps.detach().float()
    if maps.device.type == "cpu" and not smooth_sigma > 0:
        return _find_peaks_padded(maps.contiguous().numpy(), threshold, subpixel)
    search = gaussian_blur(maps, smooth_sigma) if smooth_sigma > 0 else maps
    if maps.device.type == "cpu":  # NumPy views of the same memory; the neighbour tests on shifted slices
        maps, search = maps.contiguous().numpy(), search.contiguous().numpy()
        peak = search > threshold
        peak[:, :, 1:] &= search[:, :, 1:] > search[:, :, :-1]  # > left
        peak[:, 1:] &= search[:, 1:] > search[:, :-1]  # > up
        peak[:, :, :-1] &= search[:, :, :-1] >= search[:, :, 1:]  # >= right
        peak[:, :-1] &= search[:, :-1] >= search[:, 1:]  # >= down
        values, xy, flat_index = _cross(search.reshape(-1), np.flatnonzero(peak), H, W)
    else:
        flat = search.reshape(-1)
        index = torch.nonzero(flat > threshold).squeeze(1)
        values, xy, flat_index = _cross(flat, index, H, W)
        peak = np.flatnonzero((values[0] > values[1]) & (values[0] > values[2]) & (values[0] >= values[3])
                              & (values[0] >= values[4]))
        values, xy = np.take(values, peak, axis=1), np.take(xy, peak, axis=1)
        flat_index = np.take(flat_index, peak)
    channels = flat_index // (H * W)
    if smooth_sigma > 0:
        original = maps.reshape(-1)
        values, _, _ = _cross(original, flat_index if isinstance(original, np.ndarray)
                              else torch.from_numpy(flat_index).to(original.device), H, W)
    refined = _parabola_xy(values, xy) if subpixel else xy.T.astype(np.float32)
    return Peaks(channels=channels, xy=refined, scores=values[0].copy(), counts=np.bincount(channels, minlength=C))


def argmax_subpixel(heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The maximum of each heatmap, refined by the parabola fit.

    Args:
        heatmaps: (N, K, H, W) maps (one person per item, e.g. a top-down head).
    Returns:
        xy (N, K, 2) float32 map pixels, and conf (N, K) float32 = the maximum value; on the maps' device.
    """
    N, K, H, W = heatmaps.shape
    flat = heatmaps.reshape(N * K, H * W)
    conf, index = flat.max(dim=1)
    index = index + torch.arange(N * K, device=heatmaps.device) * (H * W)
    values, xy, _ = _cross(heatmaps.reshape(-1).float(), index, H, W)
    refined = torch.from_numpy(_parabola_xy(values, xy)).to(heatmaps.device)
    return refined.reshape(N, K, 2), conf.to(torch.float32).reshape(N, K)
