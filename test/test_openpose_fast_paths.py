"""The OpenPose decoder's few-call fast paths equal their plain definitions: the framed peak search, the pair
table, the bipartite and forest component labelling, and the redundant-limb merges."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from pose_ros.core.decode import find_peaks, refine_peaks_parabola
from pose_ros.core.openpose import layout
from pose_ros.core.openpose.grouping import (
    _bipartite_components,
    _forest_components,
    _merge_redundant,
    _pair_indices,
    connected_components,
)


def _reference_peaks(maps: np.ndarray, threshold: float) -> list[tuple[int, int, int]]:
    """(channel, row, column) of every pixel above `threshold` that is > its left and upper neighbours and >= its
    right and lower ones (outside the map = -inf), in channel-major, row-major order: one pixel at a time."""
    C, H, W = maps.shape
    out = []
    for c, y, x in itertools.product(range(C), range(H), range(W)):
        v = maps[c, y, x]

        def at(yy: int, xx: int, c: int = c) -> float:
            return maps[c, yy, xx] if 0 <= yy < H and 0 <= xx < W else -np.inf

        if v > threshold and v > at(y, x - 1) and v > at(y - 1, x) and v >= at(y, x + 1) and v >= at(y + 1, x):
            out.append((c, y, x))
    return out


@pytest.mark.parametrize("shape", [(3, 17, 23), (2, 1, 9), (2, 8, 1), (4, 30, 30)])
def test_framed_peak_search_equals_pixel_by_pixel_definition(shape):
    rng = np.random.default_rng(sum(shape))
    for blur in (0.0, 1.2):
        maps = ((rng.random(shape) > 0.9) * rng.random(shape)).astype(np.float32)
        if blur:
            maps = (gaussian_filter(maps, (0, blur, blur)) * 6).astype(np.float32)
        maps[0, 0, : min(3, shape[2])] = 0.5  # a plateau touching the border: one peak, its left pixel
        peaks = find_peaks(torch.from_numpy(maps), 0.1)
        reference = _reference_peaks(maps, 0.1)
        assert len(reference) > 0
        c, y, x = (np.array(v, dtype=np.int64) for v in zip(*reference, strict=True))
        np.testing.assert_array_equal(peaks.channels, c)
        np.testing.assert_array_equal(peaks.scores, maps[c, y, x])
        np.testing.assert_array_equal(peaks.counts, np.bincount(c, minlength=shape[0]))
        subpixel = refine_peaks_parabola(torch.from_numpy(maps), torch.from_numpy(c), torch.from_numpy(y),
                                         torch.from_numpy(x))  # fmt: skip
        np.testing.assert_array_equal(peaks.xy, subpixel)  # the same parabola fit as the general path
        whole = find_peaks(torch.from_numpy(maps), 0.1, subpixel=False)
        np.testing.assert_array_equal(whole.xy, np.stack([x, y], axis=1).astype(np.float32))


def test_pair_table_lists_every_pair_limb_then_start_major():
    rng = np.random.default_rng(3)
    for _ in range(20):
        counts = rng.integers(0, 5, layout.NUM_KEYPOINTS)
        offsets = layout.PAF_CHANNELS * 100
        pairs = _pair_indices(counts, layout.LIMBS, offsets)
        first = np.cumsum(counts) - counts
        expected = [(limb, first[a] + i, first[b] + j, *offsets[limb])
                    for limb, (a, b) in enumerate(layout.LIMBS)
                    for i in range(counts[a]) for j in range(counts[b])]  # fmt: skip
        assert [tuple(column) for column in pairs.T.tolist()] == [tuple(map(int, e)) for e in expected]


def test_bipartite_edge_labels_are_the_smallest_edge_of_each_component():
    rng = np.random.default_rng(4)
    for _ in range(300):
        nodes, T = int(rng.integers(1, 12)), int(rng.integers(1, 25))
        row, col = rng.integers(0, nodes, T), rng.integers(0, nodes, T)
        labels, first_of_row, first_of_col = _bipartite_components(row, col, nodes)
        _, node_label = connected_components(2 * nodes, np.stack([row, nodes + col], axis=1))
        component = node_label[row]
        smallest = {c: int(np.flatnonzero(component == c).min()) for c in set(component.tolist())}
        np.testing.assert_array_equal(labels, [smallest[c] for c in component.tolist()])
        np.testing.assert_array_equal(np.flatnonzero(first_of_row), np.sort(np.unique(row, return_index=True)[1]))
        np.testing.assert_array_equal(np.flatnonzero(first_of_col), np.sort(np.unique(col, return_index=True)[1]))


def test_forest_components_equal_label_propagation_or_decline():
    rng = np.random.default_rng(6)
    used = declined = 0
    for trial in range(600):
        n = int(rng.integers(1, 30))
        if trial % 2 == 0 and n > 1:  # a forest: parent → child, every child once
            child = rng.permutation(np.arange(1, n))[: int(rng.integers(0, n))]
            edges = np.stack([[int(rng.integers(0, c)) for c in child], child], axis=1).astype(np.int64)
        else:  # anything: nodes with two parents, cycles
            edges = rng.integers(0, n, (int(rng.integers(0, 40)), 2))
        edges = edges.reshape(-1, 2)
        found = _forest_components(n, edges[:, 0], edges[:, 1])
        if found is None:
            declined += 1
            assert trial % 2 == 1
            continue
        used += 1
        count, labels = connected_components(n, edges)
        assert found[0] == count
        np.testing.assert_array_equal(found[1], labels)
    assert used > 300 and declined > 100


def _reference_merge(labels, parts, limb_total, limb_count, edges, scores) -> None:
    """Redundant limbs in order, one NumPy update at a time (the rule `_merge_redundant` implements)."""
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


@pytest.mark.parametrize("num_keypoints", [6, 18, 70])  # 70: more keypoints than bits in an int64
def test_redundant_merges_equal_the_sequential_rule(num_keypoints):
    rng = np.random.default_rng(num_keypoints)
    merged = 0
    for _ in range(200):
        P, C = int(rng.integers(2, 40)), int(rng.integers(1, 12))
        labels = np.sort(rng.integers(0, C, P))
        labels = np.unique(labels, return_inverse=True)[1]
        C = int(labels.max()) + 1
        channel = rng.integers(0, num_keypoints, P)
        parts = np.zeros((C, num_keypoints), dtype=bool)
        parts[labels, channel] = True
        total, count = rng.random(C), rng.integers(0, 5, C).astype(np.float64)
        edges, scores = rng.integers(0, P, (int(rng.integers(0, 12)), 2)), rng.random(12)
        scores = scores[: len(edges)]
        expected = [a.copy() for a in (labels, parts, total, count)]
        _reference_merge(*expected, edges, scores)
        _merge_redundant(labels, parts, total, count, edges, scores)
        for got, want in zip((labels, parts, total, count), expected, strict=True):
            np.testing.assert_array_equal(got, want)
        merged += int(len(np.unique(labels)) < C)
    assert merged > 50
