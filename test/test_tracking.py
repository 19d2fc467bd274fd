"""PersonTracker: stable ids through motion, crossings and short misses; ids never reused."""

from __future__ import annotations

import numpy as np
import pytest

from pose_ros.core.boxes import box_iou_xywh
from pose_ros.core.metrics import COCO_KEYPOINT_SIGMAS
from pose_ros.core.person import Person, bbox_from_keypoints
from pose_ros.core.skeletons import COCO17, COCO18_OPENPOSE, coco17_to_coco18
from pose_ros.core.tracking import PersonTracker, TrackerSettings, layout_oks_sigmas

FPS = 10.0

# A standing person in COCO-17 order, in units of body height, origin at the box centre.
_STANDING = np.array(
    [
        [0.0, -0.45], [0.03, -0.47], [-0.03, -0.47], [0.06, -0.46], [-0.06, -0.46],  # face
        [0.12, -0.3], [-0.12, -0.3], [0.15, -0.12], [-0.15, -0.12], [0.16, 0.05], [-0.16, 0.05],  # arms
        [0.08, 0.02], [-0.08, 0.02], [0.09, 0.25], [-0.09, 0.25], [0.09, 0.48], [-0.09, 0.48],  # legs
    ]
)


def make_person(centre_xy, height: float = 200.0, rng: np.random.Generator | None = None, layout="coco17"):
    """A synthetic person of `height` px centred at `centre_xy`, with optional 2 px keypoint noise."""
    xy = np.asarray(centre_xy, np.float64) + _STANDING * height
    if rng is not None:
        xy = xy + rng.normal(0.0, 2.0, xy.shape)
    conf = np.full(17, 0.9)
    if layout == "coco18_openpose":
        xy, conf = coco17_to_coco18(xy, conf)
    xy, conf = xy.astype(np.float32), conf.astype(np.float32)
    return Person(xy, conf, 0.9, bbox_from_keypoints(xy, conf), layout)


def run(tracker: PersonTracker, frames: list[list[tuple[int, Person]]]) -> list[dict[int, int]]:
    """Feed frames of (ground-truth id, person); return per frame {ground-truth id: track id}."""
    out = []
    for index, frame in enumerate(frames):
        reported = tracker.update([p for _, p in frame], index / FPS)
        ids = {gt: p.id for gt, p in frame if any(p is r for r in reported)}
        out.append(ids)
    return out


def id_switches(assignments: list[dict[int, int]]) -> int:
    """Times a ground-truth person's track id differs from its previous one."""
    last: dict[int, int] = {}
    switches = 0
    for frame in assignments:
        for gt, track_id in frame.items():
            switches += gt in last and last[gt] != track_id
            last[gt] = track_id
    return switches


def crossing_frames(num_frames=40, hide=range(18, 23), layout="coco17", dy=0.0, seed=0):
    """Person 0 walks right, person 1 walks left on (nearly) the same line; person 1 hidden in `hide`."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(num_frames):
        a = make_person((100 + 15 * i, 300), rng=rng, layout=layout)
        b = make_person((700 - 15 * i, 300 + dy), rng=rng, layout=layout)
        frames.append([(0, a)] if i in hide else [(0, a), (1, b)])
    return frames


@pytest.mark.parametrize("metric", ["oks", "iou"])
@pytest.mark.parametrize("layout", ["coco17", "coco18_openpose"])
def test_crossing_with_occlusion_keeps_ids(metric, layout):
    # The two walkers meet around frame 20 while person 1 is hidden behind person 0 (frames 18-22):
    # only the motion model can hand person 1 back its id on the far side, and only the matching cascade
    # stops the coasting track 1 (with its grown tolerance) from taking person 0's detection meanwhile.
    tracker = PersonTracker(TrackerSettings(metric=metric, max_age=10))
    assignments = run(tracker, crossing_frames(layout=layout))
    assert id_switches(assignments) == 0
    assert assignments[0] == {0: 0, 1: 1}
    assert assignments[-1] == {0: 0, 1: 1}
    assert tracker.num_ids_issued == 2


def test_crossing_with_offset_paths_keeps_ids():
    tracker = PersonTracker()
    assignments = run(tracker, crossing_frames(hide=(), dy=40.0))
    assert id_switches(assignments) == 0 and tracker.num_ids_issued == 2


def test_without_motion_model_a_full_occlusion_swaps_ids():
    # Control for the test above: with the velocity damped to zero at once, the hidden walker is predicted
    # where it vanished, so it cannot be recovered behind the other one (this is what the model buys). The
    # distance-gated second pass is off here, to test the OKS pass alone.
    settings = TrackerSettings(max_age=10, velocity_damping=0.0, second_pass_distance=0.0)
    assignments = run(PersonTracker(settings), crossing_frames())
    assert id_switches(assignments) > 0


def test_short_miss_keeps_id_long_miss_gets_new_id():
    tracker = PersonTracker(TrackerSettings(max_age=3))
    frames = [[(0, make_person((200 + 10 * i, 300)))] for i in range(30)]
    for i in (5, 6, 7):  # 3 missed frames: within max_age
        frames[i] = []
    for i in range(15, 20):  # 5 missed frames: beyond max_age
        frames[i] = []
    assignments = run(tracker, frames)
    ids = [a[0] for a in assignments if a]
    assert set(ids[:12]) == {0}  # frames 0-14 minus the 3 misses
    assert set(ids[12:]) == {1}
    assert tracker.num_ids_issued == 2


def test_ids_never_reused_and_new_person_gets_new_id():
    tracker = PersonTracker(TrackerSettings(max_age=2))
    seen: list[int] = []
    for i in range(12):
        people = [make_person((100 + 5 * i, 300))]
        if i >= 6:  # a second person enters at frame 6
            people.append(make_person((600, 300)))
        seen.append(tuple(p.id for p in tracker.update(people, i / FPS)))
    assert seen[5] == (0,) and seen[6] == (0, 1) and seen[-1] == (0, 1)
    tracker.update([], 2.0)
    tracker.update([], 2.1)
    tracker.update([], 2.2)  # both tracks older than max_age now
    assert tracker.tracks == []
    again = tracker.update([make_person((100, 300))], 2.3)
    assert again[0].id == 2
    tracker.reset()
    assert tracker.update([make_person((100, 300))], 0.0)[0].id == 3


def test_min_hits_reports_only_confirmed_tracks():
    tracker = PersonTracker(TrackerSettings(min_hits=3))
    reported = [tracker.update([make_person((300 + 5 * i, 300))], i / FPS) for i in range(4)]
    assert [len(r) for r in reported] == [0, 0, 1, 1]
    assert reported[2][0].id == 0 and reported[2][0].tracked
    # A one-frame false positive never gets an id.
    tracker.update([make_person((320, 300)), make_person((900, 300))], 0.4)
    tracker.update([make_person((325, 300))], 0.5)
    assert tracker.num_ids_issued == 1


def test_layouts_are_not_matched_across():
    tracker = PersonTracker()
    tracker.update([make_person((300, 300))], 0.0)
    out = tracker.update([make_person((300, 300), layout="coco18_openpose")], 0.1)
    assert out[0].id == 1


def test_box_iou_and_sigmas():
    iou = box_iou_xywh(np.array([[0, 0, 10, 10], [20, 20, 5, 5]]), np.array([[5, 0, 10, 10]]))
    np.testing.assert_allclose(iou[:, 0], [50 / 150, 0.0])
    np.testing.assert_allclose(layout_oks_sigmas(COCO17), COCO_KEYPOINT_SIGMAS)
    sigmas18 = layout_oks_sigmas(COCO18_OPENPOSE)
    neck = COCO18_OPENPOSE.index("neck")
    assert sigmas18[neck] == COCO_KEYPOINT_SIGMAS[COCO17.index("left_shoulder")]
    assert sigmas18[COCO18_OPENPOSE.index("left_ankle")] == COCO_KEYPOINT_SIGMAS[COCO17.index("left_ankle")]


def test_settings_are_validated():
    with pytest.raises(ValueError, match="metric"):
        PersonTracker(TrackerSettings(metric="euclid"))
    with pytest.raises(ValueError, match="max_age"):
        TrackerSettings(max_age=-1).validate()
    with pytest.raises(ValueError, match="second_pass_distance"):
        TrackerSettings(second_pass_distance=-0.1).validate()


def test_velocity_follows_the_body_not_the_box():
    # Walking right at 100 px/s; in the last frame one arm shoots out to the left and widens the box by
    # 80 px: the box centre jumps left, the median keypoint shift does not.
    tracker = PersonTracker()
    for i in range(5):
        tracker.update([make_person((200 + 10 * i, 300))], i / FPS)
    person = make_person((250, 300))
    person.keypoints_xy[COCO17.index("right_wrist")] -= np.array([80.0, 0.0], np.float32)
    person.bbox_xywh = bbox_from_keypoints(person.keypoints_xy, person.confidences)
    tracker.update([person], 0.5)
    np.testing.assert_allclose(tracker.tracks[0].velocity, [100.0, 0.0], atol=1.0)


def test_speed_is_clipped_to_max_speed():
    # A detection jump of 20 px in 10 ms (2000 px/s) is clipped to 3 box heights per second (570 px/s).
    tracker = PersonTracker(TrackerSettings(metric="iou", max_speed=3.0))
    tracker.update([make_person((300, 300))], 0.0)
    tracker.update([make_person((320, 300))], 0.01)
    assert len(tracker.tracks) == 1
    height = tracker.tracks[0].bbox_xywh[3]
    np.testing.assert_allclose(np.linalg.norm(tracker.tracks[0].velocity), 3.0 * height, rtol=1e-6)


def fast_walkers(num_frames=10, speed=0.16, height=200.0, seed=0):
    """Three people walking apart from frame 0 at `speed` box heights per frame (so no track has a velocity
    yet when the first jump comes), with 2 px keypoint noise."""
    rng = np.random.default_rng(seed)
    starts = np.array([[300.0, 300.0], [700.0, 300.0], [500.0, 700.0]])
    directions = np.array([[-1.0, 0.0], [1.0, 0.0], [0.6, 0.8]])
    step = speed * height * 0.95  # make_person's keypoint box is 0.95 of `height` tall
    return [
        [(k, make_person(starts[k] + i * step * directions[k], height, rng)) for k in range(3)]
        for i in range(num_frames)
    ]


def test_fast_new_people_keep_ids_with_the_second_pass():
    # At 0.16 box heights per frame a new track's prediction (no velocity yet) is 0.16 box heights off: OKS
    # about 0.1, below the 0.3 gate, so without the distance-gated second pass every frame starts new ids.
    tracker = PersonTracker()
    assert id_switches(run(tracker, fast_walkers())) == 0 and tracker.num_ids_issued == 3
    control = PersonTracker(TrackerSettings(second_pass_distance=0.0, camera_compensation=False))
    assert id_switches(run(control, fast_walkers())) >= 10


def panning_frames(speed=0.3, height=200.0, num_frames=12, reverse_at=6, seed=0):
    """Five standing people 0.7 box heights apart seen by a camera panning at `speed` box heights per frame
    to the right, then back from frame `reverse_at` on (the image moves the other way)."""
    rng = np.random.default_rng(seed)
    world_x = 200.0 + 0.7 * height * np.arange(5)
    frames, pan = [], 0.0
    for i in range(num_frames):
        frames.append([(k, make_person((x - pan, 400.0), height, rng)) for k, x in enumerate(world_x)])
        pan += speed * height * 0.95 * (1 if i < reverse_at else -1)
    return frames


def test_camera_compensation_follows_a_pan_reversal():
    # When the pan reverses, every track's velocity points the wrong way: its prediction is 0.6 box heights
    # off, beyond the second pass's gate. The shift shared by all tracks (the camera's) is found from the
    # detections and the tracks' predictions moved by it match.
    assert id_switches(run(PersonTracker(), panning_frames())) == 0
    control = PersonTracker(TrackerSettings(camera_compensation=False))
    assert id_switches(run(control, panning_frames())) > 0


def test_camera_compensation_leaves_independent_walkers_alone():
    # A static camera with two people walking in opposite directions and one standing: no common shift of
    # two or more tracks exists, so nothing changes (the crossing tests above cover occlusions).
    tracker = PersonTracker()
    frames = [
        [(0, make_person((100 + 15 * i, 300))), (1, make_person((900 - 15 * i, 300))), (2, make_person((500, 700)))]
        for i in range(20)
    ]
    assert id_switches(run(tracker, frames)) == 0 and tracker.num_ids_issued == 3


def test_clear_mot_counts_of_the_benchmark():
    # The CLEAR-MOT scoring of bench/eval_tracking.py on a hand-made sequence with known answers.
    from bench.eval_tracking import GroundTruth, clear_mot

    def hyp(track_id, x):
        person = make_person((x, 300))
        person.id = track_id
        return person

    def truth(gt_id, x, visibility=1.0):
        return GroundTruth(gt_id, make_person((x, 300)).bbox_xywh.astype(np.float64), visibility)

    frames_truth = [
        [truth(0, 100), truth(1, 400)],
        [truth(0, 110), truth(1, 390)],
        [truth(0, 120), truth(1, 380), truth(2, 700, visibility=0.3)],  # 2: don't-care, undetected
        [truth(0, 130), truth(1, 370), truth(2, 700, visibility=0.3)],  # 2: don't-care, detected
    ]
    frames_hyp = [
        [hyp(10, 100), hyp(11, 400)],
        [hyp(11, 110), hyp(10, 390)],  # both ids swap: 2 IDSW
        [hyp(11, 120), hyp(12, 1000)],  # person 1 missed (FN), a false positive far away (FP)
        [hyp(11, 130), hyp(10, 370), hyp(13, 700)],  # 13 on the don't-care person: neither TP nor FP
    ]
    counts, ids = clear_mot(frames_truth, frames_hyp, iou_threshold=0.5, min_visibility=0.5)
    assert (counts.gt, counts.tp, counts.fn, counts.fp, counts.idsw) == (8, 7, 1, 1, 2)
    assert counts.mota == pytest.approx(1 - 4 / 8)
    assert ids == {0: {10, 11}, 1: {11, 10}, 2: {13}}


def test_repeated_or_backward_stamps_do_not_move_tracks():
    tracker = PersonTracker()
    for i in range(3):
        tracker.update([make_person((300 + 10 * i, 300))], i / FPS)
    velocity = tracker.tracks[0].velocity.copy()
    assert tracker.update([make_person((320, 300))], 0.2)[0].id == 0  # same stamp again
    assert tracker.update([make_person((320, 300))], 0.1)[0].id == 0  # backwards
    np.testing.assert_allclose(tracker.tracks[0].velocity, velocity)  # no division by zero or negative time
    assert tracker.update([], 0.0) == [] and tracker.tracks[0].bbox_xywh[0] == pytest.approx(320 - 0.16 * 200)
