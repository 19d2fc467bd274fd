"""Property-based tests (hypothesis): letterbox and person-crop back-mapping invert the real forward mapping (the
resize / sampling itself, read through a coordinate-ramp image), and OKS / PCK equal their direct formulas."""

from __future__ import annotations

import math

import numpy as np
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pose_ros.core.estimators.crops import boxes_to_crop_transforms, crop_to_image, sample_crops
from pose_ros.core.estimators.letterbox import Letterbox
from pose_ros.core.metrics import COCO_KEYPOINT_SIGMAS, oks, pck

EXAMPLES = settings(max_examples=40, deadline=None, database=None)


def coordinate_ramp(height: int, width: int) -> np.ndarray:
    """(H, W, 3) float32 image whose pixel (x, y) holds (x, y, 1): bilinear sampling returns the sampled point."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.stack([xs, ys, np.ones_like(xs)], axis=-1)


@EXAMPLES
@given(st.integers(1, 240), st.integers(1, 320), st.integers(8, 256), st.integers(8, 256))
def test_letterbox_back_mapping_inverts_the_resize(h: int, w: int, in_h: int, in_w: int) -> None:
    box = Letterbox.fit((h, w), (in_h, in_w))
    new_h, new_w = box.resized_size
    assert (new_w == in_w or new_h == in_h) and new_w <= in_w and new_h <= in_h
    assert abs(new_w / w - new_h / h) <= 1.0 / min(w, h) + 1e-9 or min(new_w, new_h) == 1  # aspect kept
    # centred; an odd leftover pixel goes right / below (as TF resize_with_pad)
    assert (box.pad_x, box.pad_y) == ((in_w - new_w) // 2, (in_h - new_h) // 2)
    out = box.apply(coordinate_ramp(h, w))
    rows, cols = np.mgrid[0:in_h, 0:in_w]
    normalised = np.stack([(rows + 0.5) / in_h, (cols + 0.5) / in_w], axis=-1)  # model input pixel centres (y, x)
    mapped = box.normalized_to_image(normalised)
    inside = np.zeros((in_h, in_w), bool)
    inside[box.pad_y : box.pad_y + new_h, box.pad_x : box.pad_x + new_w] = True
    # where the resize sampled inside the image (no border clamping: the clamped value, w - 1, may come back as
    # 4.9999995 for w = 6), the ramp holds the sampled point
    x_ok = (out[..., 0] > 1e-3) & (out[..., 0] < w - 1 - 1e-3) if w > 1 else np.ones_like(inside)
    y_ok = (out[..., 1] > 1e-3) & (out[..., 1] < h - 1 - 1e-3) if h > 1 else np.ones_like(inside)
    ok = inside & x_ok & y_ok
    if w > 1:
        np.testing.assert_allclose(mapped[..., 0][ok & x_ok], out[..., 0][ok & x_ok], atol=2e-3)
    if h > 1:
        np.testing.assert_allclose(mapped[..., 1][ok & y_ok], out[..., 1][ok & y_ok], atol=2e-3)
    assert not out[~inside].any()  # zero padding outside the resized image


@EXAMPLES
@given(
    st.integers(16, 200), st.integers(16, 200),  # image h, w
    st.floats(-20, 180), st.floats(-20, 180), st.floats(2, 150), st.floats(2, 150),  # box x, y, w, h
    st.integers(8, 48), st.integers(8, 48), st.floats(1.0, 2.0),  # crop h, w, padding
)
def test_crop_back_mapping_inverts_the_sampling(h, w, bx, by, bw, bh, crop_h, crop_w, padding) -> None:
    transforms = boxes_to_crop_transforms(np.array([[bx, by, bx + bw, by + bh]]), (crop_h, crop_w), padding)
    A = transforms[0]
    assert A[0, 1] == A[1, 0] == 0 and math.isclose(A[0, 0], A[1, 1])  # axis-aligned, same scale on both axes
    edges = crop_to_image(np.array([[[-0.5, -0.5], [crop_w - 0.5, crop_h - 0.5]]]), transforms)[0]
    np.testing.assert_allclose(edges.mean(axis=0), [bx + bw / 2, by + bh / 2], atol=1e-3)  # centred on the box
    span = edges[1] - edges[0]
    assert span[0] >= bw * padding - 1e-3 and span[1] >= bh * padding - 1e-3  # the padded box fits inside
    assert math.isclose(span[0] / span[1], crop_w / crop_h, rel_tol=1e-5)
    crops = sample_crops(torch.from_numpy(coordinate_ramp(h, w)), transforms, (crop_h, crop_w))[0].numpy()
    v, u = np.mgrid[0:crop_h, 0:crop_w]
    mapped = crop_to_image(np.stack([u, v], axis=-1).reshape(1, -1, 2).astype(np.float64), transforms)[0]
    sampled_inside = crops[..., 2].reshape(-1) > 1 - 1e-5  # the constant channel is whole only inside the image
    tolerance = 1e-3 * max(h, w)
    np.testing.assert_allclose(mapped[sampled_inside], crops[..., :2].reshape(-1, 2)[sampled_inside], atol=tolerance)


# ----- OKS and PCK against their direct formulas -----------------------------------------------------------------
def direct_oks(dt, gt, vis, area, boxes) -> np.ndarray:
    """COCO's OKS, one pair and one keypoint at a time: mean over labelled keypoints of exp(-d² / (2 s² (2σ)²));
    a ground truth without labelled keypoints uses the distance to its box grown by its size on every side."""
    out = np.zeros((len(dt), len(gt)))
    for i, det in enumerate(dt):
        for j, truth in enumerate(gt):
            terms = []
            for k, sigma in enumerate(COCO_KEYPOINT_SIGMAS):
                if vis[j].any() and not vis[j, k]:
                    continue
                if vis[j].any():
                    d2 = (det[k, 0] - truth[k, 0]) ** 2 + (det[k, 1] - truth[k, 1]) ** 2
                else:
                    x, y, bw, bh = boxes[j]
                    dx = max(0.0, x - bw - det[k, 0]) + max(0.0, det[k, 0] - (x + 2 * bw))
                    dy = max(0.0, y - bh - det[k, 1]) + max(0.0, det[k, 1] - (y + 2 * bh))
                    d2 = dx * dx + dy * dy
                terms.append(math.exp(-d2 / (2.0 * area[j] * (2.0 * sigma) ** 2)))
            out[i, j] = sum(terms) / len(terms)
    return out


@EXAMPLES
@given(st.integers(1, 4), st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_oks_equals_the_direct_formula(num_dt: int, num_gt: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    gt = rng.uniform(0, 300, (num_gt, 17, 2))
    dt = gt[rng.integers(0, num_gt, num_dt)] + rng.normal(0, rng.uniform(0.5, 40), (num_dt, 17, 2))
    vis = rng.random((num_gt, 17)) < rng.uniform(0.2, 1.0)
    vis[rng.random(num_gt) < 0.25] = False  # some ground truths without labelled keypoints
    area = rng.uniform(50, 40000, num_gt)
    boxes = np.column_stack([rng.uniform(0, 200, (num_gt, 2)), rng.uniform(5, 100, (num_gt, 2))])
    np.testing.assert_allclose(oks(dt, gt, vis, area, boxes), direct_oks(dt, gt, vis, area, boxes), rtol=1e-9,
                               atol=1e-12)


@EXAMPLES
@given(st.integers(1, 6), st.integers(1, 17), st.floats(0.05, 1.0), st.integers(0, 2**32 - 1))
def test_pck_equals_the_direct_formula(n: int, k: int, alpha: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    gt = rng.uniform(0, 200, (n, k, 2))
    pred = gt + rng.normal(0, 15, (n, k, 2))
    pred[rng.random((n, k)) < 0.1] = np.nan  # missing predictions are wrong
    vis = rng.random((n, k)) < 0.8
    ref = rng.uniform(0.2, 60, n)  # some below 1 px
    ref[rng.random(n) < 0.2] = rng.choice([np.nan, 0.0, -3.0])  # people without a usable reference are ignored
    mask = rng.random(k) < 0.8
    result = pck(pred, gt, vis, ref, alpha, joint_mask=mask)
    assert result.reference == "custom" and result.alpha == alpha
    correct = np.zeros((n, k), bool)
    counted = np.zeros((n, k), bool)
    for i in range(n):
        for j in range(k):
            counted[i, j] = vis[i, j] and mask[j] and np.isfinite(ref[i]) and ref[i] > 0
            distance = math.hypot(*(pred[i, j] - gt[i, j]))
            correct[i, j] = counted[i, j] and distance <= alpha * ref[i]  # NaN distance compares False
    np.testing.assert_array_equal(result.counted, counted)
    np.testing.assert_array_equal(result.correct, correct)
    for j in range(k):
        expected = correct[:, j].sum() / counted[:, j].sum() if counted[:, j].any() else np.nan
        np.testing.assert_allclose(result.per_joint[j], expected, equal_nan=True)
    total = counted.sum()
    np.testing.assert_allclose(result.mean, correct.sum() / total if total else np.nan, equal_nan=True)


# ----- reference lengths, head-normalised similarity and greedy pairing (guards from mutation testing) ------------
@EXAMPLES
@given(st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_reference_lengths_equal_their_definitions(n: int, seed: int) -> None:
    from pose_ros.core.metrics import head_top_upper_neck_length, mpii_head_size, torso_diameter
    from pose_ros.core.skeletons import COCO17, MPII16

    rng = np.random.default_rng(seed)
    coco, mpii = rng.uniform(0, 300, (n, 17, 2)), rng.uniform(0, 300, (n, 16, 2))
    coco_vis, mpii_vis = rng.random((n, 17)) < 0.7, rng.random((n, 16)) < 0.7
    boxes = np.column_stack([rng.uniform(0, 100, (n, 2)), rng.uniform(100, 200, (n, 2))])
    torso, head = torso_diameter(coco, coco_vis), head_top_upper_neck_length(mpii, mpii_vis)
    head_box = mpii_head_size(boxes)
    ls, rs, lh, rh = (COCO17.index(name) for name in ("left_shoulder", "right_shoulder", "left_hip", "right_hip"))
    top, neck = MPII16.index("head_top"), MPII16.index("upper_neck")
    for i in range(n):
        expected = np.nan  # documented: left shoulder to right hip, else right shoulder to left hip
        if coco_vis[i, ls] and coco_vis[i, rh]:
            expected = math.dist(coco[i, ls], coco[i, rh])
        elif coco_vis[i, rs] and coco_vis[i, lh]:
            expected = math.dist(coco[i, rs], coco[i, lh])
        np.testing.assert_allclose(torso[i], expected, equal_nan=True)
        want = math.dist(mpii[i, top], mpii[i, neck]) if mpii_vis[i, top] and mpii_vis[i, neck] else np.nan
        np.testing.assert_allclose(head[i], want, equal_nan=True)
        np.testing.assert_allclose(head_box[i], 0.6 * math.dist(boxes[i, :2], boxes[i, 2:]))


@EXAMPLES
@given(st.integers(1, 4), st.integers(0, 4), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_head_normalized_similarity_equals_the_direct_formula(g: int, p: int, k: int, seed: int) -> None:
    from pose_ros.core.metrics import head_normalized_similarity

    rng = np.random.default_rng(seed)
    gt = rng.uniform(0, 100, (g, k, 2))
    pred = gt[rng.integers(0, g, p)] + rng.normal(0, 10, (p, k, 2)) if p else np.zeros((0, k, 2))
    if p:
        pred[rng.random((p, k)) < 0.2] = np.nan
    vis = rng.random((g, k)) < 0.8
    ref = rng.uniform(3, 30, g)
    ref[rng.random(g) < 0.25] = rng.choice([np.nan, 0.0])
    mask = rng.random(k) < 0.8
    got = head_normalized_similarity(pred, gt, vis, ref, mask)
    assert got.shape == (g, p)
    if mask.all():  # no mask means every joint
        np.testing.assert_array_equal(head_normalized_similarity(pred, gt, vis, ref), got)
    for i in range(g):
        scored = [j for j in range(k) if vis[i, j] and mask[j] and np.isfinite(ref[i]) and ref[i] > 0]
        for q in range(p):
            terms = [0.0 if np.isnan(pred[q, j]).any() else math.exp(-math.dist(gt[i, j], pred[q, j]) ** 2
                                                                       / (2 * ref[i] ** 2)) for j in scored]
            np.testing.assert_allclose(got[i, q], sum(terms) / len(terms) if terms else 0.0, atol=1e-12)


@EXAMPLES
@given(st.integers(0, 8), st.integers(0, 8), st.integers(0, 2**32 - 1))
@example(1, 1, 0).via("a single pair")
@example(0, 3, 0).via("no ground truth")
def test_greedy_match_equals_the_sequential_rule(g: int, p: int, seed: int) -> None:
    from pose_ros.core.metrics import greedy_match

    rng = np.random.default_rng(seed)
    similarity = rng.integers(-2, 5, (g, p)).astype(np.float64) / 4  # many ties, some ≤ 0
    similarity[rng.random((g, p)) < 0.1] = np.nan
    expected = np.full(g, -1)
    used: set[int] = set()
    pairs = sorted((-similarity[i, j], i * p + j, i, j) for i in range(g) for j in range(p)
                    if similarity[i, j] > 0)  # best first; ties in row-major order
    for _, _, i, j in pairs:
        if expected[i] < 0 and j not in used:
            expected[i] = j
            used.add(j)
    np.testing.assert_array_equal(greedy_match(similarity), expected)


def test_pckh_forwards_its_joint_mask_and_names_its_reference() -> None:
    from pose_ros.core.metrics import head_top_upper_neck_length, pckh

    rng = np.random.default_rng(4)
    gt = rng.uniform(0, 200, (3, 16, 2))
    pred = gt + rng.normal(0, 8, gt.shape)
    vis = np.ones((3, 16), bool)
    mask = np.arange(16) % 3 == 0
    got = pckh(pred, gt, vis, 0.5, joint_mask=mask)
    want = pck(pred, gt, vis, head_top_upper_neck_length(gt, vis), 0.5, "head_top_upper_neck", mask)
    assert got.reference == "head_top_upper_neck" and not got.counted[:, ~mask].any()
    np.testing.assert_array_equal(got.correct, want.correct)
    boxes = np.column_stack([gt[:, 9] - 10, gt[:, 9] + 10])
    official = pckh(pred, gt, vis, 0.5, head_boxes_xyxy=boxes, joint_mask=mask)
    assert official.reference == "mpii_head_box" and not official.counted[:, ~mask].any()


def test_pck_counts_any_positive_reference_length() -> None:
    gt = np.zeros((2, 3, 2))
    pred = gt + np.array([0.1, 0.0])  # 0.1 px off
    result = pck(pred, gt, np.ones((2, 3), bool), np.array([0.5, 0.0]), alpha=0.5)  # 0.5 px head; none
    assert result.counted.tolist() == [[True] * 3, [False] * 3] and result.correct[0].all() and result.mean == 1.0
