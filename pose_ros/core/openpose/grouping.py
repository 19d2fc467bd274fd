"""Part Affinity Field grouping: heatmaps + PAFs → people (the OpenPose decoder), vectorised.

Steps (Cao et al., "Realtime Multi-Person 2D Pose Estimation using Part Affinity Fields", CVPR 2017):
1. keypoint candidates = heatmap peaks (`pose_ros.core.decode.find_peaks`), refined to sub-pixel;
2. every (A, B) candidate pair of every limb type is scored by the PAF line integral
   ∫ L_c(p(u)) · v̂_AB du, sampled at `samples` points of the segment (nearest map pixel), plus OpenPose's
   distance prior min(0.5 · H / |AB| - 1, 0); a pair is a limb candidate when more than `min_sample_fraction`
   of the samples exceed `paf_threshold` and the prior-weighted score is positive;
3. per limb type, a one-to-one assignment: the Hungarian algorithm (maximum total score) or OpenPose's greedy
   rule (best score first);
4. people = connected components of the assigned limbs of the skeleton tree; the redundant shoulder→ear
   limbs only merge a component into another when their keypoints do not overlap; people with fewer than
   `min_parts` keypoints or a mean score (keypoint + limb scores per keypoint) below `min_mean_score` are
   dropped.

All pair scoring runs as tensor operations on the maps' device (no Python loop over candidate pairs); the
Hungarian step loops over the 19 limb types on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from pose_ros.core.decode import Peaks, find_peaks
from pose_ros.core.openpose import layout

ASSIGNMENTS = ("hungarian", "greedy")


@dataclass(frozen=True)
class GroupingSettings:
    """Decoder thresholds (defaults: the published OpenPose values).

    Attributes:
        peak_threshold: minimum heatmap value of a keypoint candidate (OpenPose thre1 = 0.1).
        smooth_sigma: Gaussian smoothing (map pixels) before the peak search; 0 = none. OpenPose smooths its
            image-resolution maps with σ = 3.
        subpixel: refine peaks by the parabola fit.
        paf_threshold: minimum PAF · direction of a sample that counts as on the limb (thre2 = 0.05).
        samples: points sampled along a candidate limb (mid_num = 10).
        min_sample_fraction: fraction of samples that must exceed `paf_threshold` (0.8).
        assignment: "hungarian" or "greedy".
        min_parts: fewest keypoints of a reported person (OpenPose drops people with fewer than 4).
        min_mean_score: minimum (keypoint scores + limb scores) / keypoints of a person (0.4).
    """

    peak_threshold: float = 0.1
    smooth_sigma: float = 0.0
    subpixel: bool = True
    paf_threshold: float = 0.05
    samples: int = 10
    min_sample_fraction: float = 0.8
    assignment: str = "hungarian"
    min_parts: int = 4
    min_mean_score: float = 0.4

    def __post_init__(self) -> None:
        if self.assignment not in ASSIGNMENTS:
            raise ValueError(f"assignment must be one of {ASSIGNMENTS}, got {self.assignment!r}")
        if self.samples < 2:
            raise ValueError(f"samples must be >= 2, got {self.samples}")


@dataclass
class LimbCandidates:
    """Accepted candidate limbs of all limb types (T of them).

    Attributes:
        limb: (T,) int64 limb type. start, end: (T,) int64 peak indices (first / second keypoint of the limb).
        score: (T,) float32 PAF score with the distance prior.
    """

    limb: torch.Tensor
    start: torch.Tensor
    end: torch.Tensor
    score: torch.Tensor


@dataclass
class Poses:
    """Decoded people, best first.

    Attributes:
        keypoints_xy: (N, K, 2) float32 map pixels, NaN where a keypoint was not found.
        confidences: (N, K) float32 heatmap peak values, 0 where not found.
        scores: (N,) float32 person score in [0, 1]: mean of its keypoint and limb scores.
    """

    keypoints_xy: np.ndarray
    confidences: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return int(self.scores.shape[0])


def _pair_indices(peaks: Peaks, limbs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All (start, end) peak pairs of every limb type: limb (T,), start (T,), end (T,) int64."""
    counts = peaks.counts
    first = torch.cumsum(counts, 0) - counts  # index of each channel's first peak
    n_start, n_end = counts[limbs[:, 0]], counts[limbs[:, 1]]
    pairs = n_start * n_end
    limb = torch.repeat_interleave(torch.arange(len(limbs), device=counts.device), pairs)
    offset = torch.cumsum(pairs, 0) - pairs
    rank = torch.arange(limb.numel(), device=counts.device) - offset[limb]
    start = first[limbs[limb, 0]] + torch.div(rank, n_end[limb], rounding_mode="floor")
    end = first[limbs[limb, 1]] + rank % n_end[limb]
    return limb, start, end


def _sample_dots(
    flat_pafs: torch.Tensor, size: tuple[int, int], channels: torch.Tensor, start_xy: torch.Tensor,
    delta: torch.Tensor, unit: torch.Tensor, u: torch.Tensor,
) -> torch.Tensor:
    """PAF · v̂ at the points start + u·delta (rounded to the nearest pixel, clamped into the map).

    flat_pafs: (2L·H·W,) fields; channels (T, 2) x/y channel per pair; start_xy, delta, unit (T, 2); u (S,).
    Returns (T, S).
    """
    H, W = size
    points = start_xy.unsqueeze(1) + u.view(1, -1, 1) * delta.unsqueeze(1)  # (T, S, 2)
    xs = points[..., 0].round().long().clamp_(0, W - 1)
    ys = points[..., 1].round().long().clamp_(0, H - 1)
    pixel = ys * W + xs
    field_x = flat_pafs[(channels[:, 0:1] * (H * W)) + pixel]
    field_y = flat_pafs[(channels[:, 1:2] * (H * W)) + pixel]
    return field_x * unit[:, 0:1] + field_y * unit[:, 1:2]


def score_limbs(
    peaks: Peaks, pafs: torch.Tensor, limbs: torch.Tensor, paf_channels: torch.Tensor, settings: GroupingSettings
) -> LimbCandidates:
    """Score every candidate pair by the sampled PAF line integral and keep those passing the OpenPose criteria.

    A pair needs `needed` of its samples above the PAF threshold, so it is rejected as soon as more than
    `samples - needed` have missed. Samples are therefore taken in stages, dropping rejected pairs between
    them: first the two end samples (the fields at the peaks themselves, looked up once per peak), then a few
    evenly spread interior samples, then the rest. The result equals sampling every pair in full.

    Args:
        peaks: keypoint candidates (channel = keypoint index).
        pafs: (2L, H, W) fields on the same grid as the peaks.
        limbs: (L, 2) int64 keypoint indices; paf_channels: (L, 2) int64 x/y channel of each limb.
    """
    H, W = pafs.shape[-2:]
    S = settings.samples
    needed = int(settings.min_sample_fraction * S) + 1  # samples that must pass
    limb, start, end = _pair_indices(peaks, limbs)
    a = peaks.xy[start]
    delta = peaks.xy[end] - a
    norm = delta.norm(dim=1).clamp(min=1e-3)
    unit = delta / norm.unsqueeze(1)
    at_peaks = _fields_at_peaks(peaks, pafs, paf_channels)  # (L, P, 2): the samples at u = 0 and u = 1
    dot_start = (at_peaks[limb, start] * unit).sum(dim=1)
    dot_end = (at_peaks[limb, end] * unit).sum(dim=1)
    hits = (dot_start > settings.paf_threshold).long() + (dot_end > settings.paf_threshold).long()
    total = dot_start + dot_end
    taken = 2
    for index in _interior_stages(S, S - needed, pafs.device):
        keep = taken - hits <= S - needed
        limb, start, end, a, delta, norm, unit, hits, total = (
            t[keep] for t in (limb, start, end, a, delta, norm, unit, hits, total)
        )
        dots = _sample_dots(pafs.reshape(-1), (H, W), paf_channels[limb], a, delta, unit, index / (S - 1.0))
        hits = hits + (dots > settings.paf_threshold).sum(dim=1)
        total = total + dots.sum(dim=1)
        taken += index.numel()
    score = total / S + torch.clamp(0.5 * H / norm - 1.0, max=0.0)
    keep = (hits >= needed) & (score > 0)
    return LimbCandidates(limb=limb[keep], start=start[keep], end=end[keep], score=score[keep].float())


def _fields_at_peaks(peaks: Peaks, pafs: torch.Tensor, paf_channels: torch.Tensor) -> torch.Tensor:
    """Each limb type's PAF vector at every peak's (rounded) pixel: (L, P, 2)."""
    H, W = pafs.shape[-2:]
    xs = peaks.xy[:, 0].round().long().clamp(0, W - 1)
    ys = peaks.xy[:, 1].round().long().clamp(0, H - 1)
    return pafs[:, ys, xs][paf_channels].permute(0, 2, 1)


def _interior_stages(samples: int, allowed: int, device: torch.device) -> list[torch.Tensor]:
    """Interior sample indices (1 … samples-2) in two stages: `allowed + 1` evenly spread probes, then the rest."""
    interior = torch.arange(1, samples - 1, device=device)
    count = min(allowed + 1, interior.numel())
    probe = interior[torch.linspace(0, interior.numel() - 1, count + 2)[1:-1].round().long().unique().to(device)]
    rest = interior[~torch.isin(interior, probe)]
    return [t for t in (probe, rest) if t.numel()]


def _unique_rank(score: torch.Tensor) -> torch.Tensor:
    """Rank of each score (0 = lowest), ties broken by position: a strict total order."""
    order = torch.argsort(score, stable=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=score.device)
    return rank


def assign_greedy(candidates: LimbCandidates, num_peaks: int) -> torch.Tensor:
    """OpenPose's greedy per-limb assignment (best score first, each peak used once per limb type).

    Computed as rounds of "locally dominant" pairs: a pair that is the best remaining pair at both of its
    ends is exactly the pair the sequential greedy rule would take, so each round accepts all of them at once.
    Returns a (T,) bool mask of the chosen candidates.
    """
    T = candidates.score.numel()
    device = candidates.score.device
    chosen = torch.zeros(T, dtype=torch.bool, device=device)
    if T == 0:
        return chosen
    rank = _unique_rank(candidates.score)
    key_start = candidates.limb * num_peaks + candidates.start
    key_end = candidates.limb * num_peaks + candidates.end
    size = int(candidates.limb.max()) * num_peaks + num_peaks
    active = torch.ones(T, dtype=torch.bool, device=device)
    while bool(active.any()):
        live_rank = torch.where(active, rank, torch.full_like(rank, -1))
        best_start = torch.full((size,), -1, dtype=rank.dtype, device=device).scatter_reduce(
            0, key_start, live_rank, reduce="amax"
        )
        best_end = torch.full((size,), -1, dtype=rank.dtype, device=device).scatter_reduce(
            0, key_end, live_rank, reduce="amax"
        )
        win = active & (best_start[key_start] == rank) & (best_end[key_end] == rank)
        chosen |= win
        used_start = torch.zeros(size, dtype=torch.bool, device=device)
        used_end = torch.zeros(size, dtype=torch.bool, device=device)
        used_start[key_start[win]] = True
        used_end[key_end[win]] = True
        active &= ~(used_start[key_start] | used_end[key_end])
    return chosen


def assign_hungarian(candidates: LimbCandidates, num_peaks: int) -> torch.Tensor:
    """Per limb type, the one-to-one assignment of maximum total score (scipy's linear_sum_assignment).

    Rejected pairs weigh 0, so the full assignment equals a maximum-weight matching over the accepted ones.
    Returns a (T,) bool mask of the chosen candidates.
    """
    chosen = _conflict_free(candidates, num_peaks)
    contested = torch.unique(candidates.limb[~chosen]).cpu().numpy()
    if contested.size == 0:
        return chosen
    limb = candidates.limb.cpu().numpy()
    start = candidates.start.cpu().numpy()
    end = candidates.end.cpu().numpy()
    score = candidates.score.cpu().numpy()
    picked_all = chosen.cpu().numpy()
    index = np.arange(limb.shape[0])
    for limb_type in contested:
        sel = index[limb == limb_type]
        rows, row_of = np.unique(start[sel], return_inverse=True)
        cols, col_of = np.unique(end[sel], return_inverse=True)
        weights = np.zeros((rows.size, cols.size), dtype=np.float64)
        slot = np.full((rows.size, cols.size), -1, dtype=np.int64)
        weights[row_of, col_of] = score[sel]
        slot[row_of, col_of] = sel
        r, c = linear_sum_assignment(weights, maximize=True)
        picked = slot[r, c]
        picked_all[picked[picked >= 0]] = True
    return torch.from_numpy(picked_all).to(candidates.score.device)


def _conflict_free(candidates: LimbCandidates, num_peaks: int) -> torch.Tensor:
    """(T,) bool: candidates of limb types in which no peak has two candidates (any assignment takes them all)."""
    if candidates.limb.numel() == 0:
        return torch.zeros(0, dtype=torch.bool, device=candidates.limb.device)
    num_limbs = int(candidates.limb.max()) + 1
    key_start = candidates.limb * num_peaks + candidates.start
    key_end = candidates.limb * num_peaks + candidates.end
    size = num_limbs * num_peaks
    shared = (torch.bincount(key_start, minlength=size)[key_start] > 1) | (
        torch.bincount(key_end, minlength=size)[key_end] > 1
    )
    contested = torch.zeros(num_limbs, dtype=torch.bool, device=shared.device)
    contested[candidates.limb[shared]] = True
    return ~contested[candidates.limb]


def connected_components(num_nodes: int, edges: np.ndarray) -> tuple[int, np.ndarray]:
    """Connected components of an undirected graph: (count, labels (num_nodes,) in 0..count-1).

    Vectorised label propagation: every edge pulls both ends to the smaller label, then labels jump to their
    label's label, until nothing changes (a few rounds for skeleton-sized components). edges: (E, 2) int.
    """
    labels = np.arange(num_nodes)
    while edges.size:
        a, b = labels[edges[:, 0]], labels[edges[:, 1]]
        if (a == b).all():
            break
        low = np.minimum(a, b)
        np.minimum.at(labels, np.maximum(a, b), low)
        np.minimum.at(labels, edges[:, 0], low)
        np.minimum.at(labels, edges[:, 1], low)
        while True:
            jumped = labels[labels]
            if (jumped == labels).all():
                break
            labels = jumped
    roots, compact = np.unique(labels, return_inverse=True)
    return int(roots.size), compact


def _merge_redundant(
    labels: np.ndarray,
    parts: np.ndarray,
    limb_total: np.ndarray,
    limb_count: np.ndarray,
    edges: np.ndarray,
    scores: np.ndarray,
) -> None:
    """Merge components joined by redundant limbs (start, end peak pairs in `edges`, scores (E,)) when their
    keypoints are disjoint. Updates labels (P,), parts (C, K) bool and the per-component limb score sum and
    limb count (C,) in place."""
    for (p, q), s in zip(edges, scores, strict=True):
        cp, cq = labels[p], labels[q]
        if cp == cq or parts[cp][parts[cq]].any():
            continue
        labels[labels == cq] = cp
        parts[cp] |= parts[cq]
        parts[cq] = False
        limb_total[cp] += limb_total[cq] + s
        limb_count[cp] += limb_count[cq] + 1
        limb_total[cq] = limb_count[cq] = 0


def assemble(
    peaks: Peaks,
    candidates: LimbCandidates,
    chosen: torch.Tensor,
    num_keypoints: int,
    settings: GroupingSettings,
    redundant_limbs: tuple[int, ...] = layout.REDUNDANT_LIMBS,
) -> Poses:
    """Group the chosen limbs into people (see the module docstring) and filter them.

    `redundant_limbs` are limb types that close cycles of the skeleton: they merge people, never start one.
    """
    P = len(peaks)
    channel = peaks.channels.cpu().numpy()
    xy = peaks.xy.cpu().numpy()
    peak_score = peaks.scores.cpu().numpy().astype(np.float64)
    limb = candidates.limb[chosen].cpu().numpy()
    edges = torch.stack([candidates.start[chosen], candidates.end[chosen]], 1).cpu().numpy()
    edge_score = candidates.score[chosen].cpu().numpy().astype(np.float64)
    tree = ~np.isin(limb, redundant_limbs)
    n_comp, labels = connected_components(P, edges[tree])
    parts = np.zeros((n_comp, num_keypoints), dtype=bool)
    parts[labels, channel] = True
    limb_total = np.bincount(labels[edges[tree, 0]], weights=edge_score[tree], minlength=n_comp)
    limb_count = np.bincount(labels[edges[tree, 0]], minlength=n_comp).astype(np.float64)
    if not tree.all():
        _merge_redundant(labels, parts, limb_total, limb_count, edges[~tree], edge_score[~tree])
    num_parts = np.bincount(labels, minlength=n_comp)
    total = np.bincount(labels, weights=peak_score, minlength=n_comp) + limb_total
    keep = (num_parts >= settings.min_parts) & (total / np.maximum(num_parts, 1) >= settings.min_mean_score)
    people = np.flatnonzero(keep)
    person_score = np.clip(total[people] / (num_parts[people] + limb_count[people]), 0.0, 1.0)
    order = np.argsort(-person_score, kind="stable")
    people, person_score = people[order], person_score[order]
    slot = np.full(n_comp, -1)
    slot[people] = np.arange(people.size)
    keypoints = np.full((people.size, num_keypoints, 2), np.nan, dtype=np.float32)
    confidences = np.zeros((people.size, num_keypoints), dtype=np.float32)
    mine = slot[labels] >= 0
    keypoints[slot[labels[mine]], channel[mine]] = xy[mine]
    confidences[slot[labels[mine]], channel[mine]] = peak_score[mine]
    return Poses(keypoints_xy=keypoints, confidences=confidences, scores=person_score.astype(np.float32))


def group_people(
    heatmaps: torch.Tensor,
    pafs: torch.Tensor,
    settings: GroupingSettings | None = None,
    limbs: np.ndarray = layout.LIMBS,
    paf_channels: np.ndarray = layout.PAF_CHANNELS,
    redundant_limbs: tuple[int, ...] = layout.REDUNDANT_LIMBS,
) -> Poses:
    """Decode people from OpenPose maps.

    Args:
        heatmaps: (K, H, W) keypoint heatmaps, K = 1 + the largest keypoint index in `limbs`; further channels
            (OpenPose's background map) are ignored.
        pafs: (2L, H, W) Part Affinity Fields on the same grid.
        settings: thresholds and assignment rule.
        limbs: (L, 2) keypoint indices; paf_channels: (L, 2) x/y PAF channel of each limb.
        redundant_limbs: limb types that close cycles (see `assemble`).
    Returns:
        `Poses` in map pixels (pixel centres at integer coordinates).
    """
    settings = settings or GroupingSettings()
    num_keypoints = int(limbs.max()) + 1
    heatmaps = heatmaps[:num_keypoints]
    peaks = find_peaks(heatmaps, settings.peak_threshold, settings.smooth_sigma, settings.subpixel)
    device = pafs.device
    limbs_t = torch.as_tensor(limbs, dtype=torch.int64, device=device)
    channels_t = torch.as_tensor(paf_channels, dtype=torch.int64, device=device)
    candidates = score_limbs(peaks, pafs.float(), limbs_t, channels_t, settings)
    if settings.assignment == "greedy":
        chosen = assign_greedy(candidates, len(peaks))
    else:
        chosen = assign_hungarian(candidates, len(peaks))
    return assemble(peaks, candidates, chosen, num_keypoints, settings, redundant_limbs)
