"""Skeleton drawing (pose_ros.core.draw) on a real COCO image with its ground-truth people."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from pose_ros.core import draw
from pose_ros.core.person import Person
from pose_ros.core.skeletons import COCO17


@pytest.fixture(scope="module")
def coco_image_and_people(shared_data: Path) -> tuple[np.ndarray, list[Person]]:
    folder = shared_data / "coco-sample"
    gt = json.loads((folder / "test_coco.json").read_text())
    image_info = gt["images"][0]
    image = cv2.cvtColor(cv2.imread(str(folder / image_info["file_name"])), cv2.COLOR_BGR2RGB)
    people = []
    for i, ann in enumerate(a for a in gt["annotations"] if a["image_id"] == image_info["id"]):
        kp = np.asarray(ann["keypoints"], np.float32).reshape(17, 3)
        people.append(Person(kp[:, :2], (kp[:, 2] > 0).astype(np.float32), 1.0, np.float32(ann["bbox"]), "coco17", i))
    return image, people


def _colour_near(image: np.ndarray, xy: np.ndarray, colour: tuple[int, int, int], radius: int = 2) -> bool:
    x, y = np.round(xy).astype(int)
    patch = image[y - radius : y + radius + 1, x - radius : x + radius + 1].reshape(-1, 3).astype(int)
    return bool((np.abs(patch - colour).sum(axis=1) < 30).any())


def test_draws_joints_in_side_colours_and_leaves_input_alone(coco_image_and_people) -> None:
    image, people = coco_image_and_people
    before = image.copy()
    out = draw.draw_people(image, people)
    np.testing.assert_array_equal(image, before)
    assert out.shape == image.shape and out.dtype == np.uint8
    person = people[0]
    assert _colour_near(out, person.keypoints_xy[COCO17.index("left_knee")], draw.LEFT_COLOR)
    assert _colour_near(out, person.keypoints_xy[COCO17.index("right_knee")], draw.RIGHT_COLOR)
    assert _colour_near(out, person.keypoints_xy[COCO17.index("nose")], draw.CENTRE_COLOR)
    # The box's top-left corner is drawn in the person's id colour.
    x, y = person.bbox_xywh[:2]
    assert _colour_near(out, np.array([x, y]), draw.ID_COLORS[person.id], radius=3)


def test_low_confidence_and_unknown_keypoints_are_not_drawn(coco_image_and_people) -> None:
    image, people = coco_image_and_people
    person = people[0]
    hidden = Person(person.keypoints_xy.copy(), person.confidences.copy(), 0.5, np.zeros(4, np.float32), "coco17")
    hidden.confidences[:] = 0.1
    hidden.keypoints_xy[0] = np.nan
    out = draw.draw_people(image, [hidden], keypoint_threshold=0.3)
    np.testing.assert_array_equal(out, image)  # nothing above threshold: no joints, no bones, no box
    hidden.confidences[:] = 0.9
    changed = draw.draw_people(image, [hidden], keypoint_threshold=0.3, show_boxes=False)
    assert (changed != image).any(axis=2).sum() > 500


def test_side_by_side_layout() -> None:
    left = np.full((40, 30, 3), 10, np.uint8)
    right = np.full((50, 20, 3), 200, np.uint8)
    both = draw.side_by_side([left, right], ["prediction", "ground truth"])
    assert both.shape == (50 + 24, 50, 3)
    assert (both[24:64, :30] == 10).all() and (both[24:74, 30:] == 200).all()
