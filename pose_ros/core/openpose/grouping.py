"""Part Affinity Field grouping: heatmaps + PAFs → people (the OpenPose decoder), vectorised.

Steps (Cao et al., "Realtime Multi-Person 2D Pose Estimation using Part Affinity Fields", CVPR 2017):
1. keypoint candidates = heatmap peaks (`pose_ros.core.decode.find_peaks`), refined to sub-pixel;
2. every (A, B) candidate pair of every limb type is scored by the PAF line integral
   ∫ L_c(p(u)) · v̂_AB du, sampled at `samples` points of the segment (nearest map pixel), plus OpenPose's
   distance prior min(0.5 · H / |AB| - 1, 0); a pair is a limb candidate when more than `min_sample_fraction`
   of the samples exceed `paf_threshold` and the prior-weighted score is positive;
3. per limb type, a one-to-one assignment: the Hungarian algorithm (maximum total rank) or OpenPose's greedy
   rule (best rank first). The rank is the score plus `end_weight` · (mean PAF · direction at the two
   keypoints - 1): where limbs of one type cross, their fields are averaged and the integrals of the right and
   the crossed pairing differ by a few hundredths, but at the keypoints themselves (distinct peaks) the field
   is the limb's own, so a wrong pairing leaves it at an angle there;
4. people = connected components of the assigned limbs of the skeleton tree; the redundant shoulder→ear
   limbs only merge a component into another when their keypoints do not overlap; people with fewer than
   `min_parts` keypoints or a mean score (keypoint + limb scores per keypoint) below `min_mean_score` are
   dropped.

Peak detection is dense work and runs with torch on the maps' device. Everything after it works on a few
hundred peaks and runs vectorised in NumPy on the CPU (no Python loop over candidate pairs; the PAF maps are
fetched from the device once): at these sizes NumPy's per-operation cost is several times lower than torch's.
The Hungarian step loops over the limb types that have competing candidates.
"""

from __future__ import annotations

import functools
import itertools
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
        end_weight: weight of the PAF agreement at a limb's two keypoints in the assignment's rank (0 = rank
            by the line integral alone, as OpenPose).
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
    end_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.assignment not in ASSIGNMENTS:
            raise ValueError(f"assignment must be one of {ASSIGNMENTS}, got {self.assignment!r}")
        if self.samples < 2:
            raise ValueError(f"samples must be >= 2, got {self.samples}")
        if self.end_weight < 0:
            raise ValueError(f"end_weight must be >= 0, got {self.end_weight}")


@dataclass
class LimbCandidates:
    """Accepted candidate limbs of all limb types (T of them).

    Attributes:
        limb: (T,) int64 limb type. start, end: (T,) int64 peak indices (first / second keypoint of the limb).
        score: (T,) float32 PAF score with the distance prior (acceptance, person scores).
        rank: (T,) float32 what the assignment maximises: the score plus the end agreement term (module
            docstring), at least 1e-6 (an accepted pair always outweighs no pair); None = the score.
    """

    limb: np.ndarray
    start: np.ndarray
    end: np.ndarray
    score: np.ndarray
    rank: np.ndarray | None = None

    @property
    def ranking(self) -> np.ndarray:
        """(T,) the assignment's weights: `rank` if set, else `score`."""
        return self.score if self.rank is None else self.rank


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


# Rows of the per-pair arrays in `score_limbs` (one contiguous row per quantity: NumPy gathers and arithmetic on
# 1-D rows are several times faster than on the columns of a (T, F) array). Integer rows: limb type, start and
# end peak, flat offsets of the limb's x and y PAF channel; float32 rows: start point, end - start, unit vector,
# length.
_LIMB, _START, _END, _OFFSET_X, _OFFSET_Y, _BASE, _END_COUNT = range(7)
_AX, _AY, _DX, _DY, _UX, _UY, _NORM = range(7)


def _pair_indices(counts: np.ndarray, limbs: np.ndarray, channel_offsets: np.ndarray) -> np.ndarray:
    """All (start, end) peak pairs of every limb type, limb-major, then start-major: from peaks per keypoint
    type `counts` (K,) and the flat offsets (L, 2) of each limb's x/y PAF channel.

    Built by repeating rows (no division): a row per limb type is repeated once per start peak (a block of
    that start's pairs), and a row per block once per pair in it; the end peak is the pair's position in its
    block plus the limb's first end peak. Returns (5, T) int64 rows `_LIMB` … `_OFFSET_Y`.
    """
    template, first_types, second_types = _limb_table(np.asarray(limbs, dtype=np.int64).tobytes(), len(limbs),
                                                      np.asarray(channel_offsets, dtype=np.int64).tobytes())
    first = np.cumsum(counts) - counts  # index of each type's first peak
    n_start = counts[first_types]
    per_limb = template.copy()
    per_limb[_START] = first[first_types]
    per_limb[_END] = first[second_types]
    per_limb[_BASE] = np.cumsum(n_start) - n_start
    per_limb[_END_COUNT] = counts[second_types]
    blocks = np.repeat(per_limb, n_start, axis=1)  # one column per (limb, start peak)
    size = blocks[_END_COUNT]
    blocks[_START] += np.arange(size.size) - blocks[_BASE]  # the block's start peak
    blocks[_END] = np.cumsum(size) - size - blocks[_END]  # first pair of the block - the first end peak
    out = np.repeat(blocks[:5], size, axis=1)
    np.subtract(np.arange(out.shape[1]), out[_END], out=out[_END])
    return out


@functools.lru_cache(maxsize=16)
def _limb_table(limbs: bytes, num_limbs: int, channel_offsets: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The per-limb rows of `_pair_indices` that do not depend on the peaks (limb index, channel offsets;
    from the int64 bytes of limbs (L, 2) and channel offsets (L, 2)), and each limb's first and second
    keypoint type (L,)."""
    pairs = np.frombuffer(limbs, dtype=np.int64).reshape(num_limbs, 2)
    offsets = np.frombuffer(channel_offsets, dtype=np.int64).reshape(num_limbs, 2)
    template = np.zeros((7, num_limbs), dtype=np.int64)
    template[_LIMB] = np.arange(num_limbs)
    template[_OFFSET_X], template[_OFFSET_Y] = offsets[:, 0], offsets[:, 1]
    return template, pairs[:, 0].copy(), pairs[:, 1].copy()


def _sample_dots(flat: np.ndarray, width: int, geometry: np.ndarray, offsets: np.ndarray, u: np.ndarray
                 ) -> np.ndarray:
    """PAF · v̂ at the points A + u·(B - A), rounded to the nearest pixel.

    flat: the PAF maps (2L, H, W) flattened; geometry (7, T) float32 rows `_AX` … `_NORM` (peaks lie inside
    the map, so every point of the segment does: no clamping); offsets (2, T) flat offsets of each pair's x/y
    channel; u (S,) float32. Returns (S, T): samples major, so that the sums over samples add whole rows
    (NumPy reduces a short last axis slowly).
    """
    point = geometry[_DX:_DY + 1, None] * u[:, None]  # (2, S, T) x, y
    point += geometry[_AX:_AY + 1, None]
    np.rint(point, out=point)
    point[1] *= width
    point[1] += point[0]
    field = np.take(flat, point[1].astype(np.intp) + offsets[:, None])  # (2, S, T) x, y components
    field *= geometry[_UX:_UY + 1, None]
    return field[0] + field[1]


def score_limbs(peaks: Peaks, pafs: np.ndarray, limbs: np.ndarray, paf_channels: np.ndarray,
                settings: GroupingSettings) -> LimbCandidates:
    """Score every candidate pair by the sampled PAF line integral and keep those passing the OpenPose criteria.

    A pair needs `needed` of its samples above the PAF threshold, so it is rejected as soon as more than
    `samples - needed` have missed. The samples are therefore taken in two rounds: first a few evenly spread
    interior probes on all pairs (a pair joining two different people crosses empty field there and misses
    them all), then all samples on the survivors only. The sum over the samples is added in the same order
    as sampling stage by stage (`_sample_stages`), and the result equals sampling every pair in full.

    Args:
        peaks: keypoint candidates (channel = keypoint index).
        pafs: (2L, H, W) float32 fields on the same grid as the peaks.
        limbs: (L, 2) int64 keypoint indices; paf_channels: (L, 2) int64 x/y channel of each limb.
    """
    S = settings.samples
    needed = int(settings.min_sample_fraction * S) + 1  # samples that must pass
    stages, u_all, bounds, ends = _sample_plan(S, S - needed)
    flat, width = pafs.reshape(-1), pafs.shape[2]
    pairs = _pair_indices(peaks.counts, limbs, paf_channels * (pafs.shape[1] * width))
    xy = np.ascontiguousarray(peaks.xy.T)  # (2, P)
    geometry = np.empty((7, pairs.shape[1]), dtype=np.float32)
    geometry[_AX:_AY + 1] = np.take(xy, pairs[_START], axis=1)
    np.subtract(np.take(xy, pairs[_END], axis=1), geometry[_AX:_AY + 1], out=geometry[_DX:_DY + 1])
    geometry[_NORM] = np.maximum(np.hypot(geometry[_DX], geometry[_DY]), 1e-3)
    np.divide(geometry[_DX:_DY + 1], geometry[_NORM], out=geometry[_UX:_UY + 1])
    if len(stages) > 1:  # probes on all pairs, then everything on those with few enough misses
        probe = stages[0]
        hits = (_sample_dots(flat, width, geometry, pairs[_OFFSET_X:_OFFSET_Y + 1], probe)
                > settings.paf_threshold).sum(axis=0)
        keep = np.flatnonzero(hits >= probe.size - (S - needed))
        pairs, geometry = np.take(pairs, keep, axis=1), np.take(geometry, keep, axis=1)
    dots = _sample_dots(flat, width, geometry, pairs[_OFFSET_X:_OFFSET_Y + 1], u_all)  # (S, T) stage by stage
    hits = (dots > settings.paf_threshold).sum(axis=0)
    total = dots[: bounds[0]].sum(axis=0)
    for low, high in itertools.pairwise(bounds):
        total += dots[low:high].sum(axis=0)
    score = total / S + np.minimum(0.5 * pafs.shape[1] / geometry[_NORM] - 1.0, 0.0)
    keep = np.flatnonzero((hits >= needed) & (score > 0))
    limb, start, end = np.take(pairs[:3], keep, axis=1)
    score = np.take(score, keep).astype(np.float32)
    rank = None
    if settings.end_weight > 0 and keep.size:
        at_ends = 0.5 * (np.take(dots[ends[0]], keep) + np.take(dots[ends[1]], keep))  # at u = 0 and 1
        rank = np.maximum(score + settings.end_weight * (at_ends - 1.0), 1e-6).astype(np.float32)
    return LimbCandidates(limb=limb, start=start, end=end, score=score, rank=rank)


@functools.lru_cache(maxsize=8)
def _sample_plan(samples: int, allowed: int) -> tuple[tuple[np.ndarray, ...], np.ndarray, tuple[int, ...],
                                                      tuple[int, int]]:
    """`_sample_stages`, all their fractions in stage order (S,), the row where each stage ends, and the rows
    of u = 0 and u = 1 in that order."""
    stages = _sample_stages(samples, allowed)
    u_all = np.concatenate(stages)
    bounds = tuple(int(b) for b in np.cumsum([stage.size for stage in stages]))
    return stages, u_all, bounds, (int(np.flatnonzero(u_all == 0.0)[0]), int(np.flatnonzero(u_all == 1.0)[0]))


@functools.lru_cache(maxsize=8)
def _sample_stages(samples: int, allowed: int) -> tuple[np.ndarray, ...]:
    """Sample fractions u in stages: `allowed + 1` evenly spread interior probes (if they all miss, the pair
    has too many misses), then `allowed + 1` more interior probes between them (most pairs still alive then
    miss one of them as well), then all the others (first and last: the keypoints, u = 0 and 1). float32."""
    index = np.arange(samples)
    stages = []
    interior = index[1:-1]
    for _ in range(2):
        if interior.size <= allowed + 1:
            break
        probe = interior[np.rint(np.linspace(0, interior.size - 1, allowed + 3)[1:-1]).astype(np.int64)]
        if np.unique(probe).size != allowed + 1:
            break
        stages.append(probe)
        interior = np.setdiff1d(interior, probe)
    stages.append(np.setdiff1d(index, np.concatenate(stages)) if stages else index)
    return tuple((t / (samples - 1.0)).astype(np.float32) for t in stages)


def assign_greedy(candidates: LimbCandidates, num_peaks: int) -> np.ndarray:
    """OpenPose's greedy per-limb assignment (best score first, each peak used once per limb type).

    Computed as rounds of "locally dominant" pairs: a pair that is the best remaining pair at both of its
    ends is exactly the pair the sequential greedy rule would take, so each round accepts all of them at once.
    Ties are broken by candidate order. Returns a (T,) bool mask of the chosen candidates.
    """
    T = candidates.score.size
    chosen = np.zeros(T, dtype=bool)
    order = np.argsort(-candidates.ranking, kind="stable")  # best first
    key_start = (candidates.limb * num_peaks + candidates.start)[order]
    key_end = (candidates.limb * num_peaks + candidates.end)[order]
    active = np.ones(T, dtype=bool)
    while active.any():
        live = np.flatnonzero(active)
        best_start = np.zeros(T, dtype=bool)
        best_end = np.zeros(T, dtype=bool)
        best_start[live[np.unique(key_start[live], return_index=True)[1]]] = True  # first = best per peak
        best_end[live[np.unique(key_end[live], return_index=True)[1]]] = True
        win = best_start & best_end
        chosen[order[win]] = True
        active &= ~(np.isin(key_start, key_start[win]) | np.isin(key_end, key_end[win]))
    return chosen


def assign_hungarian(candidates: LimbCandidates, num_peaks: int) -> np.ndarray:
    """Per limb type, the one-to-one assignment of maximum total weight (`candidates.ranking`, all > 0).

    The problem splits into the connected components of the bipartite graph (start peaks, end peaks) of
    each limb type; each is solved on its own, vectorised over all components of the common shapes in a
    crowd: a lone pair (taken), a star (one start or one end: its best pair), and two starts × two ends (the
    better of the two diagonals, where a missing pair weighs 0). The larger components go together, as one
    block-diagonal matrix (zero between components, so its optimum is theirs), to scipy's
    linear_sum_assignment. Returns a (T,) bool mask of the chosen candidates.
    """
    T = candidates.score.size
    chosen = np.zeros(T, dtype=bool)
    if T == 0:
        return chosen
    weight = candidates.ranking.astype(np.float64)
    nodes = (int(candidates.limb.max()) + 1) * num_peaks  # node keys per side: limb type · peaks + peak
    row = candidates.limb * num_peaks + candidates.start  # start node of each candidate
    col = (nodes - 1) - (candidates.limb * num_peaks + candidates.end)  # end node (keys reversed: see below)
    comp, first_of_row, first_of_col = _bipartite_components(row, col, nodes)
    rows = np.bincount(comp[first_of_row], minlength=T)  # start nodes per component (indexed by its label)
    cols = np.bincount(comp[first_of_col], minlength=T)
    labels = np.flatnonzero(comp == np.arange(T))  # one per component (a label is its smallest candidate)
    best = np.full(T, -np.inf)
    np.maximum.at(best, comp, weight)
    top = np.flatnonzero(weight == best[comp])
    first = np.full(T, T)
    np.minimum.at(first, comp[top], top)  # (T,) by label: the best candidate, the first of equals
    star = (rows == 1) | (cols == 1)  # (T,) by label
    chosen[first[labels[star[labels]]]] = True  # lone pairs and stars
    square = (rows == 2) & (cols == 2)
    if square.any():
        chosen |= _two_by_two(square[comp], comp, row, col, weight)
    large = ~star & ~square
    if large.any():  # all larger components in one block-diagonal problem: one solver call
        sel = np.flatnonzero(large[comp])
        r_index, r_of = np.unique(row[sel], return_inverse=True)
        c_index, c_of = np.unique(col[sel], return_inverse=True)
        matrix = np.zeros((r_index.size, c_index.size))
        slot = np.full(matrix.shape, -1, dtype=np.int64)
        matrix[r_of, c_of] = weight[sel]
        slot[r_of, c_of] = sel
        picked = slot[linear_sum_assignment(matrix, maximize=True)]
        chosen[picked[picked >= 0]] = True
    return chosen


def _bipartite_components(row: np.ndarray, col: np.ndarray, nodes: int) -> tuple[np.ndarray, np.ndarray,
                                                                                   np.ndarray]:
    """Connected components of a bipartite graph given by its edges (start node `row`, end node `col`, (T,)
    ints in [0, nodes)), labelled on the edges: each edge's label is the smallest edge index of its component.

    Label propagation over dense node arrays (no sorting): every node takes the smallest label of its edges,
    every edge the smaller of its two nodes' labels, then labels jump to their label's label, until nothing
    changes (one or two rounds for the components of a crowd). Returns the labels (T,) and masks (T,) of the
    first edge of each start node and of each end node.
    """
    T = row.size
    index = np.arange(T)
    at_row, at_col = np.full(nodes, T), np.full(nodes, T)
    np.minimum.at(at_row, row, index)
    np.minimum.at(at_col, col, index)
    first_row, first_col = at_row[row], at_col[col]
    labels = np.minimum(first_row, first_col)
    while True:
        labels = labels[labels]
        at_row[row] = T
        at_col[col] = T
        np.minimum.at(at_row, row, labels)
        np.minimum.at(at_col, col, labels)
        merged = np.minimum(at_row[row], at_col[col])
        if (merged == labels).all():
            return labels, first_row == index, first_col == index
        labels = merged


_INT_MAX = np.iinfo(np.int64).max


def _two_by_two(mask: np.ndarray, comp: np.ndarray, row: np.ndarray, col: np.ndarray, weight: np.ndarray
                ) -> np.ndarray:
    """Maximum-weight matchings of the components with two start and two end nodes (candidates `mask`;
    component labels `comp` in [0, T)): per component the better diagonal ((r0, c0) + (r1, c1) against
    (r0, c1) + (r1, c0), r0 < r1 and c0 < c1; missing pairs 0). Returns the (T,) bool mask of the chosen
    candidates."""
    sel = np.flatnonzero(mask)
    slot = comp[sel]
    S = mask.size
    r_low = np.full(S, _INT_MAX)
    c_low = np.full(S, _INT_MAX)
    np.minimum.at(r_low, slot, row[sel])
    np.minimum.at(c_low, slot, col[sel])
    r, c = (row[sel] != r_low[slot]).astype(np.int64), (col[sel] != c_low[slot]).astype(np.int64)
    w = np.zeros((S, 2, 2))
    w[slot, r, c] = weight[sel]
    diagonal = w[:, 0, 0] + w[:, 1, 1] >= w[:, 0, 1] + w[:, 1, 0]  # (S,)
    chosen = np.zeros(mask.size, dtype=bool)
    chosen[sel] = (r == c) == diagonal[slot]
    return chosen


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


def _forest_components(num_nodes: int, parents: np.ndarray, children: np.ndarray) -> tuple[int, np.ndarray] | None:
    """`connected_components` in a few NumPy calls when the edges (parents[i] → children[i], (E,) each) form a
    forest, each node the child of at most one edge (the skeleton tree's limbs after a one-to-one assignment
    per limb type): every node points to its parent, then pointers jump to their pointer's pointer until each
    points to its root; components are numbered by their smallest node, as `connected_components` does.
    Every node's root is reached along edges, so when both ends of every edge have the same root the roots are
    the components; otherwise (a node with two parents, a cycle) None."""
    if num_nodes == 0:
        return None
    root = np.arange(num_nodes)
    root[children] = parents
    for _ in range(64):  # chains halve each round: 64 rounds reach any root of a forest
        jumped = root[root]
        if (jumped == root).all():
            break
        root = jumped
    else:
        return None
    if not (root[parents] == root[children]).all():
        return None
    smallest = np.full(num_nodes, num_nodes)
    np.minimum.at(smallest, root, np.arange(num_nodes))
    smallest = smallest[root]  # (N,) the smallest node of each node's component
    number = np.cumsum(smallest == np.arange(num_nodes)) - 1
    return int(number[-1]) + 1, number[smallest]


def _merge_redundant(
    labels: np.ndarray,
    parts: np.ndarray,
    limb_total: np.ndarray,
    limb_count: np.ndarray,
    edges: np.ndarray,
    scores: np.ndarray,
) -> None:
    """Merge components joined by redundant limbs (start, end peak pairs in `edges`, scores (E,)), in edge
    order, when their keypoints are disjoint. Updates labels (P,), parts (C, K) bool and the per-component limb
    score sum and limb count (C,) in place. Edges within one component or between overlapping ones are skipped
    up front (merging only grows components, so they would be skipped in the loop as well); the rest are
    merged in plain Python (a few per person: NumPy's per-call cost would dominate), with each component's
    keypoints as the bits of an int and the merged components pointing to the one they joined."""
    cp, cq = labels[edges[:, 0]], labels[edges[:, 1]]
    live = np.flatnonzero((cp != cq) & ~(parts[cp] & parts[cq]).any(axis=1))
    if live.size == 0:
        return
    K = parts.shape[1]
    bits = (parts.astype(np.int64) << np.arange(K)).sum(axis=1).tolist() if K < 63 else None
    into: dict[int, int] = {}  # merged component → the component it joined
    totals, counts = limb_total.tolist(), limb_count.tolist()
    for p, q, s in zip(cp[live].tolist(), cq[live].tolist(), scores[live].tolist(), strict=True):
        while p in into:
            p = into[p]
        while q in into:
            q = into[q]
        if p == q:
            continue
        if bits is not None:
            if bits[p] & bits[q]:
                continue
            bits[p] |= bits[q]
            bits[q] = 0
        else:
            if (parts[p] & parts[q]).any():
                continue
            parts[p] |= parts[q]
            parts[q] = False
        into[q] = p
        totals[p] += totals[q] + s
        counts[p] += counts[q] + 1
        totals[q] = counts[q] = 0
    if not into:
        return
    root = np.arange(parts.shape[0])
    for q in into:
        p = into[q]
        while p in into:
            p = into[p]
        root[q] = p
    labels[:] = root[labels]
    if bits is not None:  # each surviving component gets the keypoints of all that joined it
        merged = np.fromiter(into, dtype=np.int64, count=len(into))
        np.logical_or.at(parts, root[merged], parts[merged])
        parts[merged] = False
    limb_total[:] = totals
    limb_count[:] = counts


def assemble(
    peaks: Peaks,
    candidates: LimbCandidates,
    chosen: np.ndarray,
    num_keypoints: int,
    settings: GroupingSettings,
    redundant_limbs: tuple[int, ...] = layout.REDUNDANT_LIMBS,
) -> Poses:
    """Group the chosen limbs into people (see the module docstring) and filter them.

    `redundant_limbs` are limb types that close cycles of the skeleton: they merge people, never start one.
    """
    P = len(peaks)
    channel, xy, peak_score = peaks.channels, peaks.xy, peaks.scores.astype(np.float64)
    chosen = np.flatnonzero(chosen)
    limb = candidates.limb[chosen]
    tree = np.ones(limb.size, dtype=bool)
    for redundant in redundant_limbs:
        tree &= limb != redundant
    all_tree = bool(tree.all())
    tree_limbs = chosen if all_tree else chosen[tree]
    parents, children = candidates.start[tree_limbs], candidates.end[tree_limbs]
    found = _forest_components(P, parents, children)
    if found is None:
        found = connected_components(P, np.stack([parents, children], axis=1))
    n_comp, labels = found
    parts = np.zeros((n_comp, num_keypoints), dtype=bool)
    parts[labels, channel] = True
    owner = labels[parents]  # component of each tree limb
    limb_total = np.bincount(owner, weights=candidates.score[tree_limbs].astype(np.float64), minlength=n_comp)
    limb_count = np.bincount(owner, minlength=n_comp).astype(np.float64)
    if not all_tree:
        extra = chosen[~tree]
        _merge_redundant(labels, parts, limb_total, limb_count,
                         np.stack([candidates.start[extra], candidates.end[extra]], axis=1),
                         candidates.score[extra].astype(np.float64))  # fmt: skip
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
    person = slot[labels]
    mine = np.flatnonzero(person >= 0)
    person, kind = person[mine], channel[mine]
    keypoints[person, kind] = xy[mine]
    confidences[person, kind] = peak_score[mine]
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
    peaks = find_peaks(heatmaps[:num_keypoints], settings.peak_threshold, settings.smooth_sigma, settings.subpixel)
    fields = pafs.detach().to("cpu", torch.float32).numpy()
    candidates = score_limbs(peaks, fields, limbs, paf_channels, settings)
    assign = assign_greedy if settings.assignment == "greedy" else assign_hungarian
    chosen = assign(candidates, len(peaks))
    return assemble(peaks, candidates, chosen, num_keypoints, settings, redundant_limbs)
