"""The rules the OpenPose decoder relies on in crowds, each pinned by a scene where removing it changes the
answer (issue 13)."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from pose_ros.core.decode import find_peaks
from pose_ros.core.openpose import layout
from pose_ros.core.openpose.grouping import (
    GroupingSettings,
    LimbCandidates,
    assign_greedy,
    assign_hungarian,
    score_limbs,
)
from pose_ros.core.targets import gaussian_heatmaps, paf_fields

LEFT_FOREARM = next(i for i, (a, b) in enumerate(layout.LIMBS)
                    if layout.LAYOUT.keypoints[a] == "left_elbow" and layout.LAYOUT.keypoints[b] == "left_wrist")


def _crossing_forearms() -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Two people's left forearms on a 46x46 map (a bench crowd scene): person 0 horizontal (28,23)→(32,23),
    person 1 vertical (30,22)→(30,26); they cross, their fields are averaged on the 3x3 crossing.
    Returns heatmaps (18, H, W), PAFs (38, H, W) and the keypoints (2, 18, 2)."""
    keypoints = np.zeros((2, layout.NUM_KEYPOINTS, 2), np.float32)
    visible = np.zeros((2, layout.NUM_KEYPOINTS), bool)
    elbow, wrist = layout.LIMBS[LEFT_FOREARM]
    keypoints[0, elbow], keypoints[0, wrist] = (28, 23), (32, 23)
    keypoints[1, elbow], keypoints[1, wrist] = (30, 22), (30, 26)
    visible[:, [elbow, wrist]] = True
    kp, vis = torch.from_numpy(keypoints), torch.from_numpy(visible)
    heatmaps = gaussian_heatmaps(kp, vis, 46, 46, 1.5)
    pafs = paf_fields(kp, vis, torch.from_numpy(layout.LIMBS), 46, 46, 1.0)
    return heatmaps, pafs, keypoints


def _chosen_pairs(settings: GroupingSettings, assign) -> set[tuple[tuple[float, ...], tuple[float, ...]]]:
    heatmaps, pafs, _ = _crossing_forearms()
    peaks = find_peaks(heatmaps, settings.peak_threshold)
    candidates = score_limbs(peaks, pafs.numpy(), layout.LIMBS, layout.PAF_CHANNELS, settings)
    chosen = assign(candidates, len(peaks))
    return {(tuple(peaks.xy[s].tolist()), tuple(peaks.xy[e].tolist()))
            for s, e in zip(candidates.start[chosen], candidates.end[chosen], strict=True)}


TRUE_PAIRS = {((28.0, 23.0), (32.0, 23.0)), ((30.0, 22.0), (30.0, 26.0))}


def test_crossing_limbs_are_paired_by_the_field_at_their_keypoints():
    # the crossed pairing has the larger line integral (the averaged field at the crossing points between the
    # two true directions); the field at the keypoints is each limb's own and decides
    for assign in (assign_hungarian, assign_greedy):
        assert _chosen_pairs(GroupingSettings(), assign) == TRUE_PAIRS
        crossed = _chosen_pairs(GroupingSettings(end_weight=0.0), assign)
        assert crossed.isdisjoint(TRUE_PAIRS) and len(crossed) == 2


def test_end_agreement_ranks_but_does_not_change_scores():
    heatmaps, pafs, _ = _crossing_forearms()
    peaks = find_peaks(heatmaps, 0.1)
    with_rank = score_limbs(peaks, pafs.numpy(), layout.LIMBS, layout.PAF_CHANNELS, GroupingSettings())
    plain = score_limbs(peaks, pafs.numpy(), layout.LIMBS, layout.PAF_CHANNELS, GroupingSettings(end_weight=0.0))
    np.testing.assert_array_equal(with_rank.score, plain.score)  # acceptance and person scores as OpenPose
    assert plain.rank is None and (with_rank.rank > 0).all() and (with_rank.rank <= with_rank.score + 1e-6).all()


def _reference_hungarian(candidates: LimbCandidates, num_peaks: int) -> np.ndarray:
    """One dense linear_sum_assignment per limb type (what assign_hungarian's component split must equal)."""
    chosen = np.zeros(candidates.score.size, bool)
    for limb in np.unique(candidates.limb):
        sel = np.flatnonzero(candidates.limb == limb)
        rows, r = np.unique(candidates.start[sel], return_inverse=True)
        cols, c = np.unique(candidates.end[sel], return_inverse=True)
        weights, slot = np.zeros((rows.size, cols.size)), np.full((rows.size, cols.size), -1)
        weights[r, c], slot[r, c] = candidates.ranking[sel], sel
        picked = slot[linear_sum_assignment(weights, maximize=True)]
        chosen[picked[picked >= 0]] = True
    return chosen


def test_component_wise_hungarian_equals_one_assignment_per_limb_type():
    rng = np.random.default_rng(3)
    shapes = set()
    for _ in range(400):
        num_peaks = int(rng.integers(2, 12))
        raw = np.stack([rng.integers(0, 3, 25), rng.integers(0, num_peaks // 2 + 1, 25),
                        rng.integers(num_peaks // 2, num_peaks, 25)], axis=1)[: rng.integers(0, 26)]
        key = np.unique(raw, axis=0).reshape(-1, 3)
        candidates = LimbCandidates(limb=key[:, 0], start=key[:, 1], end=key[:, 2],
                                    score=rng.uniform(0.01, 1.0, len(key)).astype(np.float32))
        chosen = assign_hungarian(candidates, num_peaks)
        np.testing.assert_array_equal(chosen, _reference_hungarian(candidates, num_peaks))
        shapes.add(len(key))
    assert max(shapes) > 15  # up to 25 candidates over 3 limb types: components larger than 2x2 occur


def _full_sampling(peaks, pafs: np.ndarray, settings: GroupingSettings) -> dict[tuple[int, int, int], float]:
    """Every pair of every limb type sampled at all `samples` points (no early rejection), rounded to the
    nearest pixel: {(limb, start, end): score} of the pairs meeting the OpenPose criteria."""
    H = pafs.shape[1]
    u = np.linspace(0.0, 1.0, settings.samples)
    needed = int(settings.min_sample_fraction * settings.samples) + 1
    out = {}
    for limb, (ka, kb) in enumerate(layout.LIMBS):
        for a in np.flatnonzero(peaks.channels == ka):
            for b in np.flatnonzero(peaks.channels == kb):
                d = peaks.xy[b] - peaks.xy[a]
                norm = max(float(np.hypot(*d)), 1e-3)
                xs = np.rint(peaks.xy[a, 0] + d[0] * u).astype(int)
                ys = np.rint(peaks.xy[a, 1] + d[1] * u).astype(int)
                cx, cy = layout.PAF_CHANNELS[limb]
                dots = (pafs[cx, ys, xs] * d[0] + pafs[cy, ys, xs] * d[1]) / norm
                score = dots.mean() + min(0.5 * H / norm - 1.0, 0.0)
                if (dots > settings.paf_threshold).sum() >= needed and score > 0:
                    out[(limb, int(a), int(b))] = float(score)
    return out


def test_staged_sampling_equals_sampling_every_pair_in_full():
    from bench.fixtures import openpose_synthetic as synthetic

    rng = np.random.default_rng(5)
    truth = synthetic.grid_scene(rng, 12, 46, 46, fill=0.9)
    heatmaps, pafs = synthetic.render_maps(truth, np.ones(truth.shape[:2], bool), 46, 46)
    pafs = pafs * torch.from_numpy(rng.random((46, 46)) > 0.06)  # holes: limbs with one miss are common
    settings = GroupingSettings()
    peaks = find_peaks(heatmaps[: layout.NUM_KEYPOINTS], settings.peak_threshold)
    staged = score_limbs(peaks, pafs.numpy(), layout.LIMBS, layout.PAF_CHANNELS, settings)
    reference = _full_sampling(peaks, pafs.numpy(), settings)
    got = {(int(li), int(s), int(e)): float(v)
           for li, s, e, v in zip(staged.limb, staged.start, staged.end, staged.score, strict=True)}
    assert got.keys() == reference.keys() and len(got) > 100
    np.testing.assert_allclose([got[k] for k in reference], list(reference.values()), atol=1e-5)
