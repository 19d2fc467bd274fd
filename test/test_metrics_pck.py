"""PCK and PCKh (pose_ros.core.metrics) on hand-computed cases and on the real MPII sample."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pose_ros.core import metrics
from pose_ros.core.skeletons import COCO17, MPII16


def test_pck_hand_computed() -> None:
    gt = np.zeros((2, 3, 2))
    pred = gt.copy()
    pred[0, 0] = [3.0, 4.0]  # 5 px: inside 0.5 · 10 (boundary counts as correct)
    pred[0, 1] = [6.0, 0.0]  # 6 px: outside
    pred[0, 2] = np.nan  # missing prediction: wrong
    pred[1, 0] = [0.0, 9.0]  # 9 px: inside 0.5 · 20
    pred[1, 1] = [0.0, 11.0]  # 11 px: outside; but joint 1 of person 1 is not visible
    visible = np.array([[True, True, True], [True, False, True]])
    result = metrics.pck(pred, gt, visible, ref_lengths=np.array([10.0, 20.0]), alpha=0.5, reference="test")
    np.testing.assert_array_equal(result.counted, visible)
    np.testing.assert_array_equal(result.correct, [[True, False, False], [True, False, True]])
    np.testing.assert_allclose(result.per_joint, [1.0, 0.0, 0.5])
    assert result.mean == pytest.approx(3 / 5)
    assert (result.alpha, result.reference) == (0.5, "test")


def test_pck_ignores_people_without_reference_and_masked_joints() -> None:
    gt = np.zeros((2, 2, 2))
    pred = gt + 1.0  # √2 px off everywhere
    result = metrics.pck(pred, gt, np.ones((2, 2), bool), np.array([np.nan, 4.0]), 0.5, joint_mask=[True, False])
    np.testing.assert_array_equal(result.counted, [[False, False], [True, False]])
    assert np.isnan(result.per_joint[1]) and result.per_joint[0] == 1.0 and result.mean == 1.0
    nothing = metrics.pck(pred, gt, np.zeros((2, 2), bool), np.array([1.0, 1.0]), 0.5)
    assert np.isnan(nothing.mean)


def test_reference_lengths_by_hand() -> None:
    xy = np.zeros((1, 17, 2))
    xy[0, COCO17.index("left_shoulder")] = [0, 0]
    xy[0, COCO17.index("right_hip")] = [30, 40]
    xy[0, COCO17.index("right_shoulder")] = [10, 0]
    xy[0, COCO17.index("left_hip")] = [10, 60]
    visible = np.ones((1, 17), bool)
    assert metrics.torso_diameter(xy, visible)[0] == pytest.approx(50.0)  # left shoulder – right hip
    visible[0, COCO17.index("right_hip")] = False
    assert metrics.torso_diameter(xy, visible)[0] == pytest.approx(60.0)  # falls back to the other diagonal
    visible[0, COCO17.index("left_hip")] = False
    assert np.isnan(metrics.torso_diameter(xy, visible)[0])
    np.testing.assert_allclose(metrics.bbox_size(np.array([[5, 5, 30, 80], [0, 0, 50, 20]])), [80, 50])
    np.testing.assert_allclose(metrics.mpii_head_size(np.array([[10, 10, 40, 50]])), [0.6 * 50])


def test_pckh_head_box_rule_and_head_segment_variant() -> None:
    gt = np.zeros((1, 16, 2))
    gt[0, MPII16.index("upper_neck")] = [100, 100]
    gt[0, MPII16.index("head_top")] = [100, 60]  # head segment 40 px
    pred = gt.copy()
    pred[0, MPII16.index("right_wrist")] += [0, 19]  # within 0.5 · 40 = 20, not within 0.5 · 0.6 · 50 = 15
    visible = np.ones((1, 16), bool)
    variant = metrics.pckh(pred, gt, visible)
    assert variant.reference == "head_top_upper_neck" and variant.mean == 1.0
    official = metrics.pckh(pred, gt, visible, head_boxes_xyxy=np.array([[70, 50, 100, 90]]))
    assert official.reference == "mpii_head_box"
    assert not official.correct[0, MPII16.index("right_wrist")] and official.mean == pytest.approx(15 / 16)


def test_pckh_on_the_real_mpii_sample(shared_data: Path) -> None:
    people = json.loads((shared_data / "mpii-sample" / "test_mpii.json").read_text())
    gt = np.array([p["joints"] for p in people], float)
    visible = np.array([p["joints_vis"] for p in people]) > 0
    head = metrics.head_top_upper_neck_length(gt, visible)
    assert np.all(head > 10)  # every sample person has a head segment of a plausible size
    assert metrics.pckh(gt, gt, visible).mean == 1.0
    # Shift every joint by 0.4 head segments: all correct at α = 0.5, none at α = 0.3.
    direction = np.array([0.6, 0.8])
    shifted = gt + 0.4 * head[:, None, None] * direction
    assert metrics.pckh(shifted, gt, visible, alpha=0.5).mean == 1.0
    assert metrics.pckh(shifted, gt, visible, alpha=0.3).mean == 0.0
    assert metrics.pckh(shifted, gt, visible).counted.sum() == visible.sum()


def test_greedy_match_pairs_most_similar_first() -> None:
    similarity = np.array([[0.9, 0.8, 0.0], [0.95, 0.1, 0.0], [0.0, 0.0, 0.0]])
    # GT 1 takes prediction 0 (0.95), so GT 0 gets prediction 1; GT 2 has nothing similar.
    np.testing.assert_array_equal(metrics.greedy_match(similarity), [1, 0, -1])
    np.testing.assert_array_equal(metrics.greedy_match(np.zeros((2, 0))), [-1, -1])


def test_head_normalized_similarity_prefers_the_closer_prediction() -> None:
    gt = np.array([[[0.0, 0.0], [10.0, 0.0]]])
    preds = np.stack([gt[0] + 2.0, gt[0] + 20.0, np.full((2, 2), np.nan)])
    sim = metrics.head_normalized_similarity(preds, gt, np.ones((1, 2), bool), np.array([10.0]))
    np.testing.assert_allclose(sim[0, 0], np.exp(-8.0 / 200.0))
    assert sim[0, 0] > sim[0, 1] > 0 and sim[0, 2] == 0
