"""Guards for the tracker's motion model while a track coasts and its growing OKS tolerance (issue 22).

Expected values are computed by hand from the documented model: a damped constant-velocity prediction
(velocity × `velocity_damping` per missed frame, exponential smoothing of measured velocities) and an OKS scale
s² = predicted box area × (1 + frames missed).
"""

from __future__ import annotations

import numpy as np
import pytest

from pose_ros.core.metrics import COCO_KEYPOINT_SIGMAS
from pose_ros.core.person import Person, bbox_from_keypoints
from pose_ros.core.tracking import PersonTracker, TrackerSettings

# A standing person in COCO-17 order, in units of body height, origin at the box centre.
_STANDING = np.array(
    [
        [0.0, -0.45], [0.03, -0.47], [-0.03, -0.47], [0.06, -0.46], [-0.06, -0.46],
        [0.12, -0.3], [-0.12, -0.3], [0.15, -0.12], [-0.15, -0.12], [0.16, 0.05], [-0.16, 0.05],
        [0.08, 0.02], [-0.08, 0.02], [0.09, 0.25], [-0.09, 0.25], [0.09, 0.48], [-0.09, 0.48],
    ]
)


# The OKS pass alone: the distance-gated second pass and camera-motion compensation (guarded in
# test_tracking.py) would rescue the shifts these tests place just outside the OKS gate.
OKS_GATE_ONLY = {"second_pass_distance": 0.0, "camera_compensation": False}


def person_at(x: float, y: float = 300.0, height: float = 200.0) -> Person:
    xy = (np.array([x, y]) + _STANDING * height).astype(np.float32)
    conf = np.full(17, 0.9, np.float32)
    return Person(xy, conf, 0.9, bbox_from_keypoints(xy, conf), "coco17")


def test_motion_model_while_coasting_and_after() -> None:
    settings = TrackerSettings(velocity_smoothing=0.5, velocity_damping=0.9, **OKS_GATE_ONLY)
    tracker = PersonTracker(settings)
    first = person_at(100.0)
    [a] = tracker.update([first], 0.0)
    [b] = tracker.update([person_at(110.0)], 0.1)  # 10 px in 0.1 s: 100 px/s (first measurement, taken whole)
    assert a.id == b.id
    track = tracker.tracks[0]
    np.testing.assert_allclose(track.velocity, [100.0, 0.0], atol=1e-3)

    assert tracker.update([], 0.2) == []  # coast 1: moves 100 · 0.1 = 10 px, then velocity 100 · 0.9 = 90
    np.testing.assert_allclose(track.keypoints_xy, first.keypoints_xy + np.array([20.0, 0.0]), atol=1e-3)
    np.testing.assert_allclose(track.velocity, [90.0, 0.0], atol=1e-3)
    assert tracker.update([], 0.3) == []  # coast 2: moves 9 px, then velocity 81
    np.testing.assert_allclose(track.keypoints_xy, first.keypoints_xy + np.array([29.0, 0.0]), atol=1e-3)
    np.testing.assert_allclose(track.bbox_xywh, first.bbox_xywh + np.array([29.0, 0.0, 0.0, 0.0]), atol=1e-3)
    np.testing.assert_allclose(track.velocity, [81.0, 0.0], atol=1e-3)
    assert track.misses == 2 and track.timestamp_s == pytest.approx(0.3)

    # Seen again at 0.4 s where the model predicts it (129 + 8.1 px from the start): the same id; the velocity
    # measured since the last detection (27.1 px in 0.3 s) is averaged with the coasted one (weight 0.5).
    [c] = tracker.update([person_at(137.1)], 0.4)
    assert c.id == a.id and track.misses == 0
    measured = 27.1 / 0.3
    np.testing.assert_allclose(track.velocity, [0.5 * measured + 0.5 * 81.0, 0.0], atol=1e-2)
    np.testing.assert_allclose(track.keypoints_xy, first.keypoints_xy + np.array([37.1, 0.0]), atol=1e-3)


def test_prediction_while_coasting_decides_the_match() -> None:
    # A person walking 100 px/s is missed for 3 frames and reappears where the damped prediction puts it (10 + 9 +
    # 8.1 + 7.29 = 34.39 px ahead of its last detection): the same id. Had the track stayed put, the OKS of that
    # 34 px shift even with the 4× tolerance (0.45 by `reference_oks`) is below the threshold 0.6.
    def same_id(reappear_x: float) -> bool:
        tracker = PersonTracker(TrackerSettings(match_threshold=0.6, **OKS_GATE_ONLY))
        [a] = tracker.update([person_at(100.0)], 0.0)
        tracker.update([person_at(110.0)], 0.1)
        tracker.update([person_at(120.0)], 0.2)
        for t in (0.3, 0.4, 0.5):
            tracker.update([], t)
        [b] = tracker.update([person_at(reappear_x)], 0.6)
        return a.id == b.id

    assert reference_oks(34.39, 64.0 * 190.0, 3) < 0.6
    assert same_id(120.0 + 10 + 9 + 8.1 + 7.29)
    assert not same_id(120.0)  # staying put is not what the model predicts


def reference_oks(shift_px: float, area: float, misses: int) -> float:
    """COCO OKS of a person shifted by `shift_px` (every keypoint), scale s² = area × (1 + misses)."""
    variances = (2.0 * COCO_KEYPOINT_SIGMAS) ** 2
    return float(np.mean(np.exp(-(shift_px**2) / (2.0 * area * (1 + misses) * variances))))


def shift_at_similarity(target: float, area: float, misses: int) -> float:
    """The shift (px) at which `reference_oks` equals `target` (bisection; OKS falls with the shift)."""
    lo, hi = 0.0, 1000.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if reference_oks(mid, area, misses) > target else (lo, mid)
    return 0.5 * (lo + hi)


@pytest.mark.parametrize("misses", [0, 1, 3])
def test_tolerance_grows_with_frames_missed(misses: int) -> None:
    threshold = 0.3
    area = float(person_at(100.0).bbox_xywh[2] * person_at(100.0).bbox_xywh[3])
    boundary = shift_at_similarity(threshold, area, misses)
    assert boundary == pytest.approx(shift_at_similarity(threshold, area, 0) * np.sqrt(1 + misses), rel=1e-6)

    def same_id(shift: float) -> bool:
        tracker = PersonTracker(TrackerSettings(match_threshold=threshold, **OKS_GATE_ONLY))
        [a] = tracker.update([person_at(100.0)], 0.0)
        tracker.update([person_at(100.0)], 0.1)  # stationary: the prediction stays put
        for frame in range(misses):
            tracker.update([], 0.2 + 0.1 * frame)
        [b] = tracker.update([person_at(100.0 + shift)], 0.2 + 0.1 * misses)
        return a.id == b.id

    assert same_id(0.97 * boundary), f"a shift of {0.97 * boundary:.1f} px after {misses} misses must match"
    assert not same_id(1.03 * boundary), f"a shift of {1.03 * boundary:.1f} px after {misses} misses must not match"


# ----- guards from mutation testing (scripts/mutate.sh tracking) ----------------------------------------------------
def test_sigmas_of_an_unknown_keypoint_name_are_the_mean_coco_sigma() -> None:
    from pose_ros.core.skeletons import Layout
    from pose_ros.core.tracking import layout_oks_sigmas

    layout = Layout("custom", ("nose", "left_knee", "right_heel", "tail"), ())
    expected = [0.026, 0.087, 0.089, float(np.mean(COCO_KEYPOINT_SIGMAS))]  # COCO values; heel → ankle; mean
    np.testing.assert_allclose(layout_oks_sigmas(layout), expected, rtol=1e-12)


def moved(person: Person, dx: float, conf: np.ndarray | None = None, box_dx: float | None = None) -> Person:
    """`person` moved by dx px; optionally other confidences and a box moved by box_dx instead."""
    xy = person.keypoints_xy + np.array([dx, 0.0], np.float32)
    box = person.bbox_xywh + np.array([dx if box_dx is None else box_dx, 0, 0, 0], np.float32)
    return Person(xy, person.confidences.copy() if conf is None else conf, 0.9, box, "coco17")


def first_id_kept(frames: list[Person], settings: TrackerSettings) -> bool:
    tracker = PersonTracker(settings)
    ids = [tracker.update([p], 0.1 * i)[0].id for i, p in enumerate(frames)]
    return len(set(ids)) == 1


def test_oks_only_counts_keypoints_confident_on_both_sides() -> None:
    base = person_at(100.0)
    conf = base.confidences.copy()
    conf[5:] = 0.25  # exactly the keypoint threshold: not confident
    far = moved(base, 0.0, conf)
    far.keypoints_xy[5:] += np.array([150.0, 0.0], np.float32)  # the unconfident keypoints are way off
    settings = TrackerSettings(match_threshold=0.9, keypoint_threshold=0.25)
    assert first_id_kept([base, far], settings)  # OKS over keypoints 0..4 only: 1.0
    assert first_id_kept([far, base], settings)  # either side unconfident excludes a keypoint


def test_unknown_keypoints_do_not_block_matching_or_the_velocity() -> None:
    base = person_at(100.0)
    conf = base.confidences.copy()
    conf[[0, 3]] = 0.0
    holes = moved(base, 10.0, conf, box_dx=30.0)  # the box moves more than the body: the velocity follows the body
    holes.keypoints_xy[[0, 3]] = np.nan  # unknown keypoints (confidence 0)
    tracker = PersonTracker(TrackerSettings(match_threshold=0.5))
    [a] = tracker.update([base], 0.0)
    [b] = tracker.update([holes], 0.1)
    assert a.id == b.id
    np.testing.assert_allclose(tracker.tracks[0].velocity, [100.0, 0.0], atol=1e-3)


def test_no_shared_confident_keypoint_or_no_box_area_means_no_match() -> None:
    base = person_at(100.0)
    upper, lower = base.confidences.copy(), base.confidences.copy()
    upper[11:], lower[:11] = 0.0, 0.0
    assert not first_id_kept([moved(base, 0.0, upper), moved(base, 0.0, lower)], TrackerSettings(**OKS_GATE_ONLY))
    dot = Person(np.full((17, 2), 50.0, np.float32), np.full(17, 0.9, np.float32), 0.9,
                 np.array([50.0, 50.0, 0.0, 0.0], np.float32), "coco17")  # zero area: OKS scale undefined
    assert not first_id_kept([dot, moved(dot, 0.0)], TrackerSettings(**OKS_GATE_ONLY))


@pytest.mark.parametrize(("confident", "expected_speed"), [(3, 100.0), (2, 300.0)])
def test_velocity_from_keypoints_needs_three_shared_else_the_box_centre(confident: int, expected_speed: float) -> None:
    # Keypoints move 10 px in 0.1 s, the reported box 30 px: with >= 3 shared confident keypoints the median keypoint
    # shift is used, with fewer the box-centre shift (a keypoint exactly at the threshold does not count).
    base = person_at(100.0)
    before = np.zeros(17, np.float32)
    before[: confident + 1] = 0.9
    after = before.copy()
    after[confident] = 0.25  # == keypoint_threshold in the new detection: not shared
    settings = TrackerSettings(metric="iou", match_threshold=0.1, keypoint_threshold=0.25)
    tracker = PersonTracker(settings)
    tracker.update([moved(base, 0.0, before)], 0.0)
    tracker.update([moved(base, 10.0, after, box_dx=30.0)], 0.1)
    np.testing.assert_allclose(tracker.tracks[0].velocity, [expected_speed, 0.0], atol=1e-3)


def test_settings_accept_their_boundaries_and_name_what_is_wrong() -> None:
    TrackerSettings(match_threshold=1.0, max_age=0, min_hits=1, keypoint_threshold=0.0, velocity_smoothing=1.0,
                    velocity_damping=1.0, max_speed=0.0).validate()  # every closed end is allowed
    TrackerSettings(velocity_damping=0.0).validate()
    wrong = {
        "match_threshold": (0.0, r"match_threshold must be in \(0, 1\], got 0.0"),
        "max_age": (-1, "max_age must be >= 0 frames, got -1"),
        "min_hits": (0, "min_hits must be >= 1, got 0"),
        "keypoint_threshold": (1.0, r"keypoint_threshold must be in \[0, 1\), got 1.0"),
        "velocity_smoothing": (0.0, r"velocity_smoothing must be in \(0, 1\], got 0.0"),
        "velocity_damping": (1.5, r"velocity_damping must be in \[0, 1\], got 1.5"),
        "max_speed": (-0.5, "max_speed must be >= 0 box heights per second, got -0.5"),
    }
    for name, (value, message) in wrong.items():
        with pytest.raises(ValueError, match=message):
            TrackerSettings(**{name: value}).validate()


def test_iou_metric_matches_boxes_not_keypoints() -> None:
    base = person_at(100.0)
    scrambled = moved(base, 0.0)
    scrambled.keypoints_xy[:] = scrambled.keypoints_xy[::-1] + np.array([40.0, 0.0], np.float32)  # same box
    assert first_id_kept([base, scrambled], TrackerSettings(metric="iou", match_threshold=0.9))
    assert not first_id_kept([base, scrambled], TrackerSettings(metric="oks", match_threshold=0.9, **OKS_GATE_ONLY))


def test_similarity_equal_to_the_threshold_matches() -> None:
    square = Person(person_at(0.0).keypoints_xy, np.full(17, 0.9, np.float32), 0.9,
                    np.array([0.0, 0.0, 10.0, 10.0], np.float32), "coco17")
    half = Person(square.keypoints_xy, square.confidences, 0.9, np.array([0.0, 0.0, 10.0, 5.0], np.float32),
                  "coco17")  # IoU exactly 0.5
    assert first_id_kept([square, half], TrackerSettings(metric="iou", match_threshold=0.5))
    assert not first_id_kept([square, half], TrackerSettings(metric="iou", match_threshold=0.5001, **OKS_GATE_ONLY))


def test_min_hits_two_reports_from_the_second_match() -> None:
    tracker = PersonTracker(TrackerSettings(min_hits=2))
    assert tracker.update([person_at(100.0)], 0.0) == []
    [second] = tracker.update([person_at(101.0)], 0.1)
    assert second.id == 0 and second.tracked


def test_box_centre_fallback_uses_the_centre_and_either_side_confidence() -> None:
    # Two confident keypoints shared (< 3): the velocity is the box-centre shift. The box moves 30 px and grows 20 px
    # wider, so its centre moves 40 px in 0.1 s. A keypoint exactly at the threshold in the earlier detection is not
    # shared either.
    base = person_at(100.0)
    before = np.zeros(17, np.float32)
    before[:3] = 0.9
    before[2] = 0.25  # == keypoint_threshold on the track's side
    after = before.copy()
    after[2] = 0.9
    later = moved(base, 10.0, after, box_dx=30.0)
    later.bbox_xywh[2] += 20.0
    tracker = PersonTracker(TrackerSettings(metric="iou", match_threshold=0.1, keypoint_threshold=0.25))
    tracker.update([moved(base, 0.0, before)], 0.0)
    tracker.update([later], 0.1)
    np.testing.assert_allclose(tracker.tracks[0].velocity, [400.0, 0.0], atol=1e-3)
    with pytest.raises(ValueError, match="velocity_smoothing"):
        TrackerSettings(velocity_smoothing=1.5).validate()
