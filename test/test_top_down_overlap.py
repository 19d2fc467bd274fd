"""Top-down on two overlapping real people: each gets their own skeleton with both decoders, also where the
detector gives the pair one box (IoU 0.6: the second-person search finds the other one inside the crop), the
heatmap decoder takes no keypoint from the neighbour, duplicate boxes of one person are removed by their
skeletons, and box NMS keeps two people whose boxes overlap (the full sweep is bench/eval_top_down_overlap.py)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from bench.diag_top_down_overlap import unoccluded
from bench.eval_top_down_overlap import composite, composite_with_labels, global_argmax_decoder, score
from bench.eval_tracking import empty_street
from bench.scenes import AnnotationSet, load_sprites, select_sprite_annotations
from pose_ros.core.estimators.centernet import NUM_CANDIDATES, PERSON_CLASS, non_maximum_suppression
from pose_ros.core.estimators.letterbox import Letterbox
from pose_ros.core.estimators.top_down import TopDownEstimator, TopDownSettings
from pose_ros.core.pipeline import PipelineConfig


@pytest.fixture(scope="module")
def people(shared_data, demo_data):
    """The 5 tallest whole people of the COCO sample (cut out), their areas, and an empty street."""
    annotations = AnnotationSet.load(shared_data / "coco-sample" / "test_coco.json")
    ids = select_sprite_annotations(annotations, 5)
    areas = [annotations.by_id(i)["area"] for i in ids]
    return load_sprites(annotations, ids), areas, empty_street(demo_data / "vtest.avi", num_samples=12)


@pytest.fixture(scope="module")
def estimator(human_models) -> TopDownEstimator:
    return TopDownEstimator(TopDownSettings(device="cpu", max_people=6))


def _with_decoder(estimator: TopDownEstimator, decoder: str) -> TopDownEstimator:
    estimator.keypoints.settings = replace(estimator.keypoints.settings, decoder=decoder)
    return estimator


@pytest.mark.parametrize(("back", "front", "iou"), [(2, 3, 0.5), (0, 1, 0.4), (2, 0, 0.7)])
def test_overlapping_people_each_get_their_own_skeleton(people, estimator, back, front, iou):
    sprites, areas, background = people
    image, truths = composite(background, sprites, areas, back, front, iou, 300.0)
    stolen = {}
    for decoder in ("regression", "heatmap"):
        similarity, stolen[decoder] = score(_with_decoder(estimator, decoder)(image), truths)
        assert min(similarity) >= 0.5, (decoder, similarity)  # one-to-one matched, each to its own person
    # The heatmap decoder takes its peaks in the cells MoveNet's own decoding picks (a joint or two nearer
    # the neighbour's same joint, as with the regression decoder; the parabola may move one across the
    # 0.1 box-height line); the global heatmap maximum it used before took many of the neighbour's joints.
    assert stolen["heatmap"] <= stolen["regression"] + 1, stolen
    model = _with_decoder(estimator, "heatmap").keypoints
    plain = model.decode_heatmap
    model.decode_heatmap = global_argmax_decoder(model)
    try:
        _, stolen_before = score(estimator(image), truths)
    finally:
        model.decode_heatmap = plain
    assert stolen_before > stolen["heatmap"], (stolen_before, stolen)


@pytest.mark.parametrize(("back", "front"), [(1, 0), (4, 0), (0, 3)])
@pytest.mark.parametrize("decoder", ["regression", "heatmap"])
def test_people_the_detector_boxes_together_are_separated(people, estimator, back, front, decoder):
    # Box IoU 0.6: CenterNet gives the back person no box of their own (one box for both, or theirs lost);
    # the keypoint network's centre heatmap still has a second peak inside the crop, which the default
    # second-person search crops again. With the search off the back person has no skeleton.
    sprites, areas, background = people
    image, truths = composite(background, sprites, areas, back, front, 0.6, 300.0)
    found = _with_decoder(estimator, decoder)(image)
    similarity, stolen = score(found, truths)
    assert min(similarity) >= 0.5, (decoder, similarity)
    assert stolen <= 4, stolen  # a joint or two near the neighbour's same joint (arms and legs overlap)
    without, _ = score(estimator(image, second_person_threshold=1.0), truths)
    assert without[0] < 0.5 <= without[1], without  # only the front person without the search


def test_second_person_threshold_is_validated():
    with pytest.raises(ValueError, match="second_person_threshold"):
        TopDownSettings(second_person_threshold=0.0).validate()
    with pytest.raises(ValueError, match="top_down_second_person_threshold"):
        PipelineConfig(mode="top_down", top_down_second_person_threshold=1.5).validate()


@pytest.mark.parametrize("decoder", ["regression", "heatmap"])
def test_duplicate_box_of_one_person_is_removed_by_its_skeleton(people, estimator, decoder):
    sprites, areas, background = people
    image, truths = composite(background, sprites, areas, 0, 1, 0.4, 300.0)
    boxes = np.array([[*t.bbox_xywh[:2], *(t.bbox_xywh[:2] + t.bbox_xywh[2:])] for t in truths])
    duplicate = boxes[0] + np.array([-8.0, 6.0, 10.0, -4.0])  # a second, slightly different box on the back one
    found = _with_decoder(estimator, decoder).estimate(
        image, np.vstack([boxes, duplicate]), np.array([0.6, 0.5, 0.4], np.float32)
    )
    assert len(found) == 2
    similarity, _ = score(found, truths)
    assert min(similarity) >= 0.5, similarity
    estimator.settings = replace(estimator.settings, duplicate_oks=1.0)  # 1: keep all
    try:
        everyone = estimator.estimate(image, np.vstack([boxes, duplicate]), np.array([0.6, 0.5, 0.4], np.float32))
    finally:
        estimator.settings = replace(estimator.settings, duplicate_oks=TopDownSettings.duplicate_oks)
    assert len(everyone) == 3


def test_box_nms_keeps_two_people_overlapping_by_iou_0_6(estimator):
    # Two person candidates overlapping with box IoU 0.6 (a couple side by side): the old NMS threshold 0.5
    # dropped the second one before any keypoint was looked at; the default 0.7 keeps both.
    assert estimator.settings.nms_iou == pytest.approx(0.7)
    raw = np.zeros((NUM_CANDIDATES, 6), np.float32)
    raw[:, 5] = PERSON_CLASS + 1  # other classes
    width = 100.0
    shift = width * (1 - 0.6) / (1 + 0.6)  # IoU of two equal boxes shifted by s: (w - s) / (w + s) = 0.6
    raw[0] = [100, 100, 100 + width, 400, 0.8, PERSON_CLASS]
    raw[1] = [100 + shift, 100, 100 + shift + width, 400, 0.7, PERSON_CLASS]
    raw[2] = [102, 101, 101 + width, 399, 0.5, PERSON_CLASS]  # a duplicate of the first (IoU 0.97)
    letterbox = Letterbox.fit((512, 512), (512, 512))
    kept = estimator.detector.decode(raw, letterbox)
    assert len(kept) == 2 and kept.scores.tolist() == pytest.approx([0.8, 0.7])
    assert non_maximum_suppression(raw[:3, :4], raw[:3, 4], 0.5).tolist() == [0]  # the old threshold: one


def test_composite_labels_say_which_person_each_pixel_shows(people):
    # bench/diag_top_down_overlap.py counts the back person's keypoints the front one hides from these labels.
    sprites, areas, background = people
    hidden = {}
    for iou in (0.3, 0.7):
        image, truths, labels = composite_with_labels(background, sprites, areas, 0, 1, iou, 300.0)
        assert image is not None and labels.shape == image.shape[:2]
        assert np.array_equal(image[labels == -1], background[labels == -1])  # the street where nobody is
        assert not np.array_equal(image[labels == 0], background[labels == 0])
        back, front = truths
        x, y, w, h = front.bbox_xywh.astype(int)
        assert (labels == 1).sum() == (labels[y : y + h, x : x + w] == 1).sum() > 0.3 * w * h  # the front sprite
        annotated, visible = unoccluded(front, labels, occluder=0)
        assert visible == annotated  # nobody is in front of the front person
        annotated, visible = unoccluded(back, labels, occluder=1)
        hidden[iou] = annotated - visible
    assert hidden[0.7] > hidden[0.3], hidden
