"""Guards for the OpenPose decoder's scoring rules, computed by hand (issue 22).

- the PAF score's distance prior min(0.5 · H / |AB| - 1, 0) on limbs longer than half the map height;
- the "enough samples above threshold" rule: more than `min_sample_fraction` · samples must exceed the PAF
  threshold (9 of 10 by default; a sample equal to the threshold is a miss);
- the Hungarian step picks exactly the maximum-weight one-to-one assignment (brute force on small cases);
- heatmap peaks on the right and bottom borders (whose "next" pixel in flat memory is another row or map).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from pose_ros.core.decode import Peaks, argmax_subpixel, find_peaks, gaussian_blur, refine_peaks_parabola
from pose_ros.core.openpose.grouping import (
    GroupingSettings,
    LimbCandidates,
    assemble,
    assign_hungarian,
    group_people,
    score_limbs,
)

LIMB = np.array([[0, 1]])  # one limb type: keypoint 0 → keypoint 1
CHANNELS = np.array([[0, 1]])  # its PAF x / y channels


def two_peaks(a_xy, b_xy) -> Peaks:
    """One candidate of keypoint 0 at a_xy and one of keypoint 1 at b_xy."""
    return Peaks(
        channels=np.array([0, 1]),
        xy=np.array([a_xy, b_xy], np.float32),
        scores=np.array([0.9, 0.9], np.float32),
        counts=np.array([1, 1]),
    )


def uniform_field(height: int, width: int, direction_xy, magnitude: float) -> np.ndarray:
    """(2, H, W) PAF of constant `magnitude` along the unit vector `direction_xy`."""
    unit = np.asarray(direction_xy, np.float64) / np.linalg.norm(direction_xy)
    field = np.zeros((2, height, width), np.float32)
    field[0], field[1] = magnitude * unit[0], magnitude * unit[1]
    return field


# ----- distance prior ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("length", "magnitude", "expected"),
    [
        (10.0, 0.7, 0.7),  # short limb: 0.5·40/10 - 1 = 1 > 0, no penalty
        (20.0, 0.7, 0.7),  # exactly half the map height: 0.5·40/20 - 1 = 0
        (30.0, 1.0, 1.0 + (0.5 * 40 / 30 - 1)),  # 2/3
        (60.0, 1.0, 1.0 + (0.5 * 40 / 60 - 1)),  # 1/3
        (50.0, 0.9, 0.9 + (0.5 * 40 / 50 - 1)),  # 0.5
    ],
)
def test_distance_prior_on_long_limbs(length: float, magnitude: float, expected: float) -> None:
    height, width = 40, 80
    a, b = (5.0, 20.0), (5.0 + length, 20.0)
    found = score_limbs(two_peaks(a, b), uniform_field(height, width, (1, 0), magnitude), LIMB, CHANNELS,
                        GroupingSettings())
    assert found.score.tolist() == pytest.approx([expected], abs=1e-5)


def test_distance_prior_uses_the_map_height_and_rejects_a_negative_score() -> None:
    # |AB| = 50 in a 40-high map: prior 0.4 - 1 = -0.6; a field of 0.55 leaves -0.05, rejected even though
    # every sample is above the PAF threshold. In an 80-wide, 40-high map the prior must use H = 40, not W.
    height, width = 40, 80
    peaks = two_peaks((10.0, 20.0), (60.0, 20.0))
    rejected = score_limbs(peaks, uniform_field(height, width, (1, 0), 0.55), LIMB, CHANNELS, GroupingSettings())
    assert rejected.score.size == 0
    kept = score_limbs(peaks, uniform_field(height, width, (1, 0), 0.65), LIMB, CHANNELS, GroupingSettings())
    assert kept.score.tolist() == pytest.approx([0.65 - 0.6], abs=1e-5)
    # A vertical limb of 30 px in a 100-high, 40-wide map: no prior (0.5·100/30 > 1).
    tall = score_limbs(two_peaks((20.0, 10.0), (20.0, 40.0)), uniform_field(100, 40, (0, 1), 0.8), LIMB, CHANNELS,
                       GroupingSettings())
    assert tall.score.tolist() == pytest.approx([0.8], abs=1e-5)


def test_field_against_the_limb_direction_scores_negative_and_is_rejected() -> None:
    peaks = two_peaks((5.0, 5.0), (14.0, 5.0))
    assert score_limbs(peaks, uniform_field(20, 20, (-1, 0), 1.0), LIMB, CHANNELS, GroupingSettings()).score.size == 0
    diagonal = score_limbs(peaks, uniform_field(20, 20, (1, 1), 1.0), LIMB, CHANNELS, GroupingSettings())
    assert diagonal.score.tolist() == pytest.approx([np.sqrt(0.5)], abs=1e-5)  # cos 45°


# ----- enough samples above the threshold ------------------------------------------------------------------------
def field_with_misses(misses: tuple[int, ...], miss_value: float = 0.0, hit_value: float = 1.0) -> np.ndarray:
    """PAF (2, 20, 12) along +x on row 5 with value `hit_value` at columns 0..9 except `misses` (`miss_value`).

    The limb (0, 5) → (9, 5) sampled at 10 points hits exactly columns 0, 1, …, 9; 20 rows: no distance prior.
    """
    field = np.zeros((2, 20, 12), np.float32)
    field[0, 5, :10] = hit_value
    for column in misses:
        field[0, 5, column] = miss_value
    return field


def test_nine_of_ten_samples_pass_eight_do_not() -> None:
    peaks = two_peaks((0.0, 5.0), (9.0, 5.0))
    settings = GroupingSettings()  # paf_threshold 0.05, samples 10, min_sample_fraction 0.8 → 9 needed
    for miss in range(10):
        found = score_limbs(peaks, field_with_misses((miss,)), LIMB, CHANNELS, settings)
        assert found.score.tolist() == pytest.approx([0.9], abs=1e-6), f"one miss at sample {miss}"
    for misses in itertools.combinations(range(10), 2):
        found = score_limbs(peaks, field_with_misses(misses), LIMB, CHANNELS, settings)
        assert found.score.size == 0, f"two misses at samples {misses} must reject the pair (score would be 0.8)"


def test_a_sample_equal_to_the_threshold_is_a_miss() -> None:
    peaks = two_peaks((0.0, 5.0), (9.0, 5.0))
    at_threshold = field_with_misses((2, 7), miss_value=0.05)
    assert score_limbs(peaks, at_threshold, LIMB, CHANNELS, GroupingSettings()).score.size == 0
    just_above = field_with_misses((2, 7), miss_value=0.0501)
    found = score_limbs(peaks, just_above, LIMB, CHANNELS, GroupingSettings())
    assert found.score.tolist() == pytest.approx([(8 + 2 * 0.0501) / 10], abs=1e-6)


def test_the_fraction_and_the_threshold_are_the_settings() -> None:
    peaks = two_peaks((0.0, 5.0), (9.0, 5.0))
    three_misses = field_with_misses((1, 4, 8))
    lenient = GroupingSettings(min_sample_fraction=0.6)  # int(6) + 1 = 7 needed, 7 hits
    assert score_limbs(peaks, three_misses, LIMB, CHANNELS, lenient).score.tolist() == pytest.approx([0.7], abs=1e-6)
    assert score_limbs(peaks, three_misses, LIMB, CHANNELS, GroupingSettings(min_sample_fraction=0.7)).score.size == 0
    weak = field_with_misses((), hit_value=0.3)  # every sample 0.3
    assert score_limbs(peaks, weak, LIMB, CHANNELS, GroupingSettings(paf_threshold=0.3)).score.size == 0
    found = score_limbs(peaks, weak, LIMB, CHANNELS, GroupingSettings(paf_threshold=0.29))
    assert found.score.tolist() == pytest.approx([0.3], abs=1e-6)


def test_samples_setting_changes_where_the_field_is_read() -> None:
    # 4 samples on (0, 5) → (9, 5) read columns 0, 3, 6, 9: misses anywhere else are never seen.
    peaks = two_peaks((0.0, 5.0), (9.0, 5.0))
    settings = GroupingSettings(samples=4)
    unseen = field_with_misses((1, 2, 4, 5, 7, 8))
    assert score_limbs(peaks, unseen, LIMB, CHANNELS, settings).score.tolist() == pytest.approx([1.0], abs=1e-6)
    assert score_limbs(peaks, field_with_misses((6,)), LIMB, CHANNELS, settings).score.size == 0  # 3 of 4 < 4


# ----- Hungarian assignment --------------------------------------------------------------------------------------
def brute_force_best(candidates: LimbCandidates) -> np.ndarray:
    """(T,) bool: per limb type, the set of candidates with no shared start or end of maximum total score."""
    chosen = np.zeros(candidates.score.size, dtype=bool)
    for limb_type in np.unique(candidates.limb):
        members = np.flatnonzero(candidates.limb == limb_type)
        best, best_total = (), -np.inf
        for size in range(len(members) + 1):
            for subset in itertools.combinations(members, size):
                starts, ends = candidates.start[list(subset)], candidates.end[list(subset)]
                if len(set(starts.tolist())) < size or len(set(ends.tolist())) < size:
                    continue
                total = float(candidates.score[list(subset)].astype(np.float64).sum())
                if total > best_total + 1e-12:
                    best, best_total = subset, total
        chosen[list(best)] = True
    return chosen


def test_hungarian_equals_the_brute_force_optimum() -> None:
    rng = np.random.default_rng(22)
    contested = 0
    for _ in range(60):
        num_limbs, n_start, n_end = int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.integers(1, 4))
        grid = [(limb, s, e) for limb in range(num_limbs) for s in range(n_start) for e in range(n_end)]
        count = int(rng.integers(1, min(len(grid), 8) + 1))
        picked = rng.choice(len(grid), size=count, replace=False)
        limb, start, end = (np.array(v, np.int64) for v in zip(*[grid[i] for i in picked], strict=True))
        candidates = LimbCandidates(limb=limb, start=start, end=end + n_start,
                                    score=rng.uniform(0.05, 1.0, count).astype(np.float32))
        reference = brute_force_best(candidates)
        np.testing.assert_array_equal(assign_hungarian(candidates, n_start + n_end), reference)
        contested += reference.sum() < count
    assert contested >= 20  # most cases have candidates the assignment must leave out


def test_hungarian_prefers_two_good_pairs_over_one_best() -> None:
    # start 0 → end 0 scores 1.0, but taking it leaves only start 1 → end 0/1 pairs that collide; the best total is
    # 0→1 (0.8) + 1→0 (0.7) = 1.5 > 1.0 + 0.1.
    candidates = LimbCandidates(
        limb=np.zeros(4, np.int64), start=np.array([0, 0, 1, 1]), end=np.array([2, 3, 2, 3]),
        score=np.array([1.0, 0.8, 0.7, 0.1], np.float32),
    )
    assert assign_hungarian(candidates, 4).tolist() == [False, True, True, False]


# ----- peaks on the right / bottom border ------------------------------------------------------------------------
def test_peak_on_the_right_border_beside_a_higher_pixel_of_the_next_row() -> None:
    # In flat memory the right neighbour of (x = W-1, y) is (0, y+1): a higher value there must not hide the peak.
    maps = torch.zeros(1, 10, 12)
    maps[0, 4, 11], maps[0, 3, 11], maps[0, 5, 11], maps[0, 4, 10] = 0.6, 0.3, 0.5, 0.2
    maps[0, 5, 0] = 0.9  # a separate peak on the left border of the next row
    peaks = find_peaks(maps, threshold=0.1)
    y_offset = 0.5 * (0.3 - 0.5) / (0.3 - 2 * 0.6 + 0.5)  # parabola vertex along y: +0.25
    np.testing.assert_allclose(peaks.xy, [[11.0, 4.0 + y_offset], [0.0, 5.0]], atol=1e-6)
    assert peaks.scores.tolist() == pytest.approx([0.6, 0.9])


def test_peak_on_the_bottom_border_beside_a_higher_pixel_of_the_next_map() -> None:
    # In flat memory the lower neighbour of the last row of map 0 is the first row of map 1.
    maps = torch.zeros(2, 8, 9)
    maps[0, 7, 3], maps[0, 7, 2], maps[0, 7, 4], maps[0, 6, 3] = 0.5, 0.2, 0.4, 0.1
    maps[1, 0, 3] = 0.95
    peaks = find_peaks(maps, threshold=0.1)
    x_offset = 0.5 * (0.2 - 0.4) / (0.2 - 2 * 0.5 + 0.4)  # +0.25
    assert peaks.counts.tolist() == [1, 1]
    np.testing.assert_allclose(peaks.xy, [[3.0 + x_offset, 7.0], [3.0, 0.0]], atol=1e-6)


def test_bottom_right_corner_peak_and_argmax() -> None:
    maps = torch.zeros(2, 6, 7)
    maps[0, 5, 6], maps[0, 5, 5], maps[0, 4, 6] = 0.8, 0.7, 0.1
    maps[1, 0, 0] = 0.9  # the next map's first pixel, flat neighbour of map 0's last pixel
    peaks = find_peaks(maps, threshold=0.05)
    assert peaks.counts.tolist() == [1, 1]
    assert peaks.xy[0].tolist() == [6.0, 5.0]  # on both borders: no sub-pixel shift
    xy, conf = argmax_subpixel(maps[None])
    assert xy[0].tolist() == [[6.0, 5.0], [0.0, 0.0]] and conf[0].tolist() == pytest.approx([0.8, 0.9])
    edge = torch.zeros(1, 1, 6, 7)
    edge[0, 0, 2, 6], edge[0, 0, 1, 6], edge[0, 0, 3, 6] = 0.8, 0.6, 0.2  # right border, y bends toward row 1
    xy, _ = argmax_subpixel(edge)
    np.testing.assert_allclose(xy[0, 0], [6.0, 2.0 + 0.5 * (0.6 - 0.2) / (0.6 - 1.6 + 0.2)], atol=1e-6)


# ----- Gaussian smoothing and dtypes (mutation-testing survivors) --------------------------------------------------
@pytest.mark.parametrize("sigma", [0.7, 1.0, 2.0])
def test_gaussian_blur_equals_scipy_with_a_3_sigma_kernel_and_replicated_borders(sigma: float) -> None:
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(3)
    maps = rng.random((2, 15, 17)).astype(np.float32)
    maps[:, :, 0] = 5.0  # a bright border column: zero padding instead of replication would dim it
    ours = gaussian_blur(torch.from_numpy(maps), sigma).numpy()
    # scipy's kernel radius is int(truncate · σ + 0.5) = round(3σ) for these σ; mode "nearest" replicates the border
    reference = np.stack([gaussian_filter(m.astype(np.float64), sigma, mode="nearest", truncate=3.0) for m in maps])
    np.testing.assert_allclose(ours, reference, atol=2e-6)


def test_argmax_subpixel_returns_float32_confidences_for_any_map_dtype() -> None:
    maps = torch.zeros(1, 2, 6, 6, dtype=torch.float64)
    maps[0, 0, 2, 3], maps[0, 1, 4, 1] = 0.75, 0.5
    xy, conf = argmax_subpixel(maps)
    assert conf.dtype == torch.float32 and xy.dtype == torch.float32
    assert conf.tolist() == [[0.75, 0.5]] and xy.tolist() == [[[3.0, 2.0], [1.0, 4.0]]]


def test_refine_peaks_parabola_by_hand() -> None:
    maps = torch.zeros(2, 5, 6)
    maps[0, 2, 3], maps[0, 2, 2], maps[0, 2, 4], maps[0, 1, 3], maps[0, 3, 3] = 1.0, 0.6, 0.8, 0.5, 0.5
    maps[1, 4, 0], maps[1, 4, 1], maps[1, 3, 0] = 0.9, 0.3, 0.6  # bottom-left corner: no shift on either axis
    xy = refine_peaks_parabola(maps, torch.tensor([0, 1]), torch.tensor([2, 4]), torch.tensor([3, 0]))
    x_offset = 0.5 * (0.6 - 0.8) / (0.6 - 2.0 + 0.8)  # vertex of the parabola through 0.6, 1.0, 0.8: +1/6
    np.testing.assert_allclose(xy, [[3.0 + x_offset, 2.0], [0.0, 4.0]], atol=1e-6)  # equal up/down: no y shift


def test_find_peaks_thresholds_the_smoothed_map_but_reports_original_values() -> None:
    maps = torch.zeros(1, 9, 9)
    maps[0, 2, 2] = 0.3  # isolated: after smoothing with σ = 0.8 its peak is 0.3 · 0.25 ≈ 0.075 < 0.1
    maps[0, 6, 6] = 0.9
    maps[0, 6, 5], maps[0, 6, 7], maps[0, 5, 6], maps[0, 7, 6] = 0.2, 0.4, 0.3, 0.3
    plain = find_peaks(maps, threshold=0.1)
    assert plain.counts.tolist() == [2]
    smoothed = find_peaks(maps, threshold=0.1, smooth_sigma=0.8)
    assert smoothed.counts.tolist() == [1]
    assert smoothed.scores.tolist() == pytest.approx([0.9])  # the original value, not the smoothed one
    x_offset = 0.5 * (0.2 - 0.4) / (0.2 - 1.8 + 0.4)  # parabola on the original values: +1/12
    np.testing.assert_allclose(smoothed.xy, [[6.0 + x_offset, 6.0]], atol=1e-6)


def test_threshold_is_exclusive_and_a_plateau_gives_its_top_left_pixel() -> None:
    maps = torch.zeros(1, 8, 8)
    maps[0, 1, 1] = 0.5  # exactly the threshold: not a peak
    maps[0, 4:6, 3:5] = 0.7  # a 2 × 2 plateau
    peaks = find_peaks(maps, threshold=0.5)
    assert peaks.counts.tolist() == [1]
    np.testing.assert_allclose(peaks.xy, [[3.5, 4.5]])  # found at its top-left pixel, refined to its centre


def test_find_peaks_without_subpixel_gives_integer_float32_positions() -> None:
    maps = torch.zeros(1, 6, 6)
    maps[0, 2, 3], maps[0, 2, 4], maps[0, 2, 2] = 1.0, 0.8, 0.2  # the parabola moves x by 0.5·0.6/1.0 = 0.3
    coarse = find_peaks(maps, threshold=0.1, subpixel=False)
    assert coarse.xy.dtype == np.float32 and coarse.xy.tolist() == [[3.0, 2.0]]
    np.testing.assert_allclose(find_peaks(maps, threshold=0.1).xy, [[3.3, 2.0]], atol=1e-6)


# ----- people from limbs: components, redundant limbs, scores and filters (by hand) -----------------------------
# A 4-keypoint chain 0-1-2-3 (limb types 0, 1, 2) and a redundant limb type 3 = (1, 3) that closes a cycle.
CHAIN_REDUNDANT = (3,)
_PEAKS = [  # name, keypoint type, score, (x, y)
    ("a0", 0, 0.9, (10, 10)), ("b0", 0, 0.5, (50, 10)), ("c0", 0, 0.8, (90, 10)), ("d0", 0, 0.1, (130, 10)),
    ("a1", 1, 0.8, (10, 20)), ("b1", 1, 0.5, (50, 20)), ("c1", 1, 0.8, (90, 20)), ("k1", 1, 0.7, (95, 20)),
    ("d1", 1, 0.1, (130, 20)),
    ("a2", 2, 0.7, (10, 30)), ("b2", 2, 0.5, (50, 30)), ("k2", 2, 0.6, (95, 30)), ("f2", 2, 0.45, (200, 30)),
    ("a3", 3, 0.6, (10, 40)), ("b3", 3, 0.5, (50, 40)), ("k3", 3, 0.6, (95, 40)), ("e3", 3, 1.3, (170, 40)),
]
_LIMBS = [  # limb type, start, end, score, chosen
    (0, "a0", "a1", 0.5, True), (1, "a1", "a2", 0.4, True), (2, "a2", "a3", 0.3, True),  # A: one chain
    (0, "b0", "b1", 0.7, True), (2, "b2", "b3", 0.6, True), (3, "b1", "b3", 0.5, True),  # B: 2 halves + redundant
    (0, "c0", "c1", 0.9, True), (1, "k1", "k2", 0.8, True), (2, "k2", "k3", 0.7, True),  # C, K: both have a 1
    (3, "c1", "k3", 0.4, True),  # redundant limb between overlapping parts: no merge
    (0, "d0", "d1", 0.05, True),  # D: mean score (0.1 + 0.1 + 0.05) / 2 = 0.125 < 0.4
    (0, "a0", "b1", 0.99, False),  # not chosen by the assignment: ignored
]


def chain_scene(peak_rows=_PEAKS, limb_rows=_LIMBS) -> tuple[Peaks, LimbCandidates, np.ndarray, dict[str, int]]:
    """Peaks (sorted by keypoint type), candidates and the chosen mask from the tables above."""
    index = {name: i for i, (name, *_) in enumerate(peak_rows)}
    peaks = Peaks(
        channels=np.array([t for _, t, _, _ in peak_rows]), xy=np.array([xy for *_, xy in peak_rows], np.float32),
        scores=np.array([s for _, _, s, _ in peak_rows], np.float32),
        counts=np.bincount([t for _, t, _, _ in peak_rows], minlength=4),
    )
    candidates = LimbCandidates(
        limb=np.array([t for t, *_ in limb_rows]), start=np.array([index[a] for _, a, *_ in limb_rows]),
        end=np.array([index[b] for _, _, b, *_ in limb_rows]),
        score=np.array([s for *_, s, _ in limb_rows], np.float32),
    )
    return peaks, candidates, np.array([c for *_, c in limb_rows]), index


def test_assemble_people_scores_and_filters_by_hand() -> None:
    peaks, candidates, chosen, index = chain_scene()
    found = assemble(peaks, candidates, chosen, 4, GroupingSettings(min_parts=1, min_mean_score=0.4), CHAIN_REDUNDANT)
    # (keypoint scores + limb scores) / (keypoints + limbs), clipped to 1, best first:
    expected = [
        ("e3",), 1.0,  # 1.3 / 1, clipped
        ("c0", "c1"), (0.8 + 0.8 + 0.9) / 3,
        ("k1", "k2", "k3"), (0.7 + 0.6 + 0.6 + 0.8 + 0.7) / 5,
        ("a0", "a1", "a2", "a3"), (0.9 + 0.8 + 0.7 + 0.6 + 0.5 + 0.4 + 0.3) / 7,
        ("b0", "b1", "b2", "b3"), (4 * 0.5 + 0.7 + 0.6 + 0.5) / 7,  # merged by the redundant limb: 3 limbs
        ("f2",), 0.45,  # alone: 0.45 / 1 >= min_mean_score
    ]
    members, scores = expected[0::2], expected[1::2]
    np.testing.assert_allclose(found.scores, scores, atol=1e-6)
    for person, names in enumerate(members):
        want_xy = np.full((4, 2), np.nan)
        want_conf = np.zeros(4)
        for name in names:
            _, kind, score, xy = _PEAKS[index[name]]
            want_xy[kind], want_conf[kind] = xy, score
        np.testing.assert_allclose(found.keypoints_xy[person], want_xy, atol=1e-6)
        np.testing.assert_allclose(found.confidences[person], want_conf, atol=1e-6)
    at_least_two = assemble(peaks, candidates, chosen, 4, GroupingSettings(min_parts=2), CHAIN_REDUNDANT)
    np.testing.assert_allclose(at_least_two.scores, scores[1:5], atol=1e-6)
    whole = assemble(peaks, candidates, chosen, 4, GroupingSettings(min_parts=4), CHAIN_REDUNDANT)
    np.testing.assert_allclose(whole.scores, scores[3:5], atol=1e-6)


def test_empty_maps_give_no_people_with_either_assignment() -> None:
    from pose_ros.core.openpose import layout
    from pose_ros.core.openpose.grouping import group_people

    for assignment in ("hungarian", "greedy"):
        heat, paf = torch.zeros(layout.NUM_HEATMAP_CHANNELS, 30, 40), torch.zeros(layout.NUM_PAF_CHANNELS, 30, 40)
        poses = group_people(heat, paf, GroupingSettings(assignment=assignment))
        assert len(poses) == 0 and poses.keypoints_xy.shape == (0, layout.NUM_KEYPOINTS, 2)
    empty = LimbCandidates(limb=np.zeros(0, np.int64), start=np.zeros(0, np.int64), end=np.zeros(0, np.int64),
                           score=np.zeros(0, np.float32))
    assert assign_hungarian(empty, 0).dtype == bool and assign_hungarian(empty, 0).size == 0


def test_a_merged_person_keeps_the_parts_of_both_halves() -> None:
    # g0-g1 and g2-g3 merge through the redundant limb g1-g3; h0-h1 then reaches g3 through another redundant
    # limb, but the merged person already has keypoints 0 and 1: h0-h1 stays a person of its own.
    peak_rows = [("g0", 0, 0.9, (10, 10)), ("h0", 0, 0.8, (30, 10)), ("g1", 1, 0.9, (10, 20)),
                 ("h1", 1, 0.8, (30, 20)), ("g2", 2, 0.9, (10, 30)), ("g3", 3, 0.9, (10, 40))]
    limb_rows = [(0, "g0", "g1", 0.6, True), (2, "g2", "g3", 0.6, True), (0, "h0", "h1", 0.6, True),
                 (3, "g1", "g3", 0.6, True), (3, "h1", "g3", 0.5, True)]
    peaks, candidates, chosen, _ = chain_scene(peak_rows, limb_rows)
    found = assemble(peaks, candidates, chosen, 4, GroupingSettings(min_parts=2), CHAIN_REDUNDANT)
    np.testing.assert_allclose(found.scores, [(4 * 0.9 + 3 * 0.6) / 7, (2 * 0.8 + 0.6) / 3], atol=1e-6)
    np.testing.assert_allclose(found.keypoints_xy[1], [[30, 10], [30, 20], [np.nan, np.nan], [np.nan, np.nan]])


def test_group_people_passes_its_redundant_limbs_and_peak_settings_on() -> None:
    # The 4-keypoint chain again, now as maps: P (keypoints 0, 1) and Q (1, 2, 3) are joined by a redundant (1, 3)
    # limb from P's 1 to Q's 3. Q already has a keypoint 1: with limb 3 redundant they stay two people; were it a
    # tree limb, one.
    from pose_ros.core.targets import gaussian_heatmaps, paf_fields

    limbs = np.array([[0, 1], [1, 2], [2, 3], [1, 3]])
    channels = np.arange(8).reshape(4, 2)
    p = [(8.3, 8.0), (8.0, 30.4), (np.nan, np.nan), (np.nan, np.nan)]
    q = [(np.nan, np.nan), (50.0, 10.0), (50.2, 35.0), (30.0, 55.3)]
    kp = torch.tensor(np.nan_to_num(np.array([p, q])), dtype=torch.float32)
    visible = torch.tensor([[True, True, False, False], [False, True, True, True]])
    heat = gaussian_heatmaps(kp, visible, 64, 64, sigma=1.5)
    paf = torch.zeros(8, 64, 64)
    paf[:6] = paf_fields(kp, visible, torch.from_numpy(limbs[:3]), 64, 64, 1.0)
    bridge = torch.tensor([[p[1], q[3]]], dtype=torch.float32)  # P's 1 → Q's 3
    paf[6:] = paf_fields(bridge, torch.ones(1, 2, dtype=torch.bool), torch.tensor([[0, 1]]), 64, 64, 1.0)
    settings = GroupingSettings(min_parts=2)
    two = group_people(heat, paf, settings, limbs=limbs, paf_channels=channels, redundant_limbs=(3,))
    assert len(two) == 2
    one = group_people(heat, paf, settings, limbs=limbs, paf_channels=channels, redundant_limbs=())
    assert len(one) == 1
    # peak settings reach find_peaks: no smoothing by default (scores are the maps' values), integer positions
    # without sub-pixel refinement
    coarse = group_people(heat, paf, GroupingSettings(min_parts=2, subpixel=False), limbs=limbs,
                          paf_channels=channels, redundant_limbs=(3,))
    found = coarse.keypoints_xy[np.isfinite(coarse.keypoints_xy)]
    np.testing.assert_array_equal(found, np.round(found))
    assert not np.array_equal(two.keypoints_xy[np.isfinite(two.keypoints_xy)], found)
    for xy, conf in zip(coarse.keypoints_xy, coarse.confidences, strict=True):  # confidences: map values there
        for k in np.flatnonzero(np.isfinite(xy[:, 0])):
            assert conf[k] == pytest.approx(float(heat[k, int(xy[k, 1]), int(xy[k, 0])]))


def test_sub_pixel_limbs_poses_dtypes_and_settings_messages() -> None:
    # A limb shorter than a pixel keeps its unit direction (the norm floor is only against division by zero).
    found = score_limbs(two_peaks((5.0, 5.0), (5.6, 5.0)), uniform_field(20, 20, (1, 0), 1.0), LIMB, CHANNELS,
                        GroupingSettings())
    assert found.score.tolist() == pytest.approx([1.0], abs=1e-5)
    peaks, candidates, chosen, _ = chain_scene()
    poses = assemble(peaks, candidates, chosen, 4, GroupingSettings(min_parts=1), CHAIN_REDUNDANT)
    assert poses.keypoints_xy.dtype == poses.confidences.dtype == poses.scores.dtype == np.float32
    with pytest.raises(ValueError, match="samples must be >= 2, got 1"):
        GroupingSettings(samples=1)
    with pytest.raises(ValueError, match="assignment must be one of"):
        GroupingSettings(assignment="auction")


def test_peak_on_the_last_pixel_of_the_last_map() -> None:
    maps = torch.zeros(2, 4, 5)
    maps[1, 3, 4], maps[1, 3, 3] = 0.7, 0.4  # the very last element in memory
    peaks = find_peaks(maps, threshold=0.1)
    assert peaks.counts.tolist() == [0, 1] and peaks.scores.tolist() == pytest.approx([0.7])
    np.testing.assert_allclose(peaks.xy, [[4.0, 3.0]])
