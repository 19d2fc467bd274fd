"""MoveNet MultiPose imported into torch == the same TF.js model run by TF.js itself, on real frames.

The reference runtime is npm @tensorflow/tfjs 4.22.0 on its pure-JavaScript CPU backend under node
(bench/fixtures/tfjs_reference.cjs). Both runtimes get the SAME int32 input tensor (the estimator's own
preprocessing). Measured here (2026-11-24, 4 frames): max abs difference of the raw (1, 6, 56) outputs
6e-8 for normalised keypoint/box coordinates and 1.2e-6 for scores (float32 sums in another order over
~80 conv layers). Tolerance: 1e-5 for both, ~10× the worst measurement, still 0.005 px at 512 px input.
Costs ~15 s of TF.js time on an idle machine (one 512×384 frame, two 256×192 images).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from bench.fixtures import tfjs_reference
from pose_ros.core.estimators.movenet import MoveNetMultiPose, MoveNetMultiPoseSettings

TOLERANCE = 1e-5  # normalised coordinates and scores, see the module docstring
PIXEL_TOLERANCE = 0.01  # keypoints in image pixels after the back-mapping

pytestmark = pytest.mark.skipif(
    tfjs_reference.unavailable_reason() is not None, reason=f"TF.js reference: {tfjs_reference.unavailable_reason()}"
)


def _estimator(width: int, height: int) -> MoveNetMultiPose:
    settings = MoveNetMultiPoseSettings(input_width=width, input_height=height, device="cpu", backend="torch")
    return MoveNetMultiPose(settings)


@pytest.fixture(scope="module")
def cases(human_models, demo_data, vtest_frames):
    """[(name, image, estimator, model input, tfjs output (1, 6, 56))] for vtest frame 100 at 512×384 and
    basketball1.png and vtest frame 300 at 256×192 (TF.js takes ~10 s per 512×384 frame, ~2.5 s at 256×192)."""
    large, small = _estimator(512, 384), _estimator(256, 192)
    basketball = cv2.cvtColor(cv2.imread(str(demo_data / "basketball1.png")), cv2.COLOR_BGR2RGB)
    groups = [
        (large, {"vtest-100": vtest_frames[1]}),
        (small, {"basketball1": basketball, "vtest-300": vtest_frames[2]}),
    ]
    found = []
    for estimator, images in groups:
        inputs = {name: estimator.preprocess(image)[0] for name, image in images.items()}
        results = tfjs_reference.run_reference(estimator.settings.model_json, list(inputs.values()))
        for (name, image), result in zip(images.items(), results, strict=True):
            found.append((name, image, estimator, inputs[name], result.outputs["Identity"]))
    return found


def test_raw_outputs_match_tfjs(cases):
    for name, _, estimator, model_input, reference in cases:
        ours = estimator.run_model(model_input)
        assert ours.shape == reference.shape == (1, 6, 56), name
        keypoints, reference_keypoints = ours[0, :, :51].reshape(6, 17, 3), reference[0, :, :51].reshape(6, 17, 3)
        coordinates = np.abs(keypoints[..., :2] - reference_keypoints[..., :2]).max()
        scores = np.abs(keypoints[..., 2] - reference_keypoints[..., 2]).max()
        boxes = np.abs(ours[0, :, 51:55] - reference[0, :, 51:55]).max()
        person_scores = np.abs(ours[0, :, 55] - reference[0, :, 55]).max()
        assert max(coordinates, scores, boxes, person_scores) < TOLERANCE, (name, coordinates, scores, boxes)


def test_people_match_tfjs(cases):
    for name, image, estimator, _, reference in cases:
        letterbox = estimator.preprocess(image)[1]
        expected = estimator.decode(reference[0], letterbox)
        people = estimator(image)
        assert len(people) == len(expected) > 0, name
        for person, other in zip(people, expected, strict=True):
            assert person.id == other.id
            assert abs(person.score - other.score) < TOLERANCE
            assert np.abs(person.keypoints_xy - other.keypoints_xy).max() < PIXEL_TOLERANCE, name
            assert np.abs(person.bbox_xywh - other.bbox_xywh).max() < PIXEL_TOLERANCE, name


def test_input_size_decides_whether_the_walkers_are_found(cases, vtest_frames):
    """vtest.avi frame 100 has ~5 walkers about 60-80 px tall: 512×384 finds them, 256×192 does not."""
    large = next(c[2] for c in cases if c[0] == "vtest-100")
    people = large(vtest_frames[1])
    assert len(people) >= 4
    scores = [p.score for p in people]
    assert scores == sorted(scores, reverse=True) and [p.id for p in people] == list(range(len(people)))
    height, width = vtest_frames[1].shape[:2]
    for person in people:
        assert person.layout == "coco17" and person.keypoints_xy.shape == (17, 2)
        x, y, w, h = person.bbox_xywh
        assert 20 < h < 150 and 0 < w < h and x >= -0.5 and x + w <= width - 0.5 and -0.5 <= y <= height
        confident = person.keypoints_xy[person.confidences > 0.3]
        inside = (confident >= [x - 5, y - 5]) & (confident <= [x + w + 5, y + h + 5])
        assert inside.all(), "confident keypoints lie in the person's box"
    centres = np.array([p.bbox_xywh[:2] + p.bbox_xywh[2:] / 2 for p in people])
    gaps = np.linalg.norm(centres[:, None] - centres[None], axis=-1) + np.eye(len(people)) * 1e3
    assert gaps.min() > 10, "distinct walkers, not duplicates"
    small = next(c[2] for c in cases if c[0] == "basketball1")
    assert len(small(vtest_frames[1])) <= 2


def test_both_basketball_players_found_at_256x192(cases):
    name, image, estimator, _, _ = next(c for c in cases if c[0] == "basketball1")
    people = estimator(image)
    assert len(people) >= 2, name
