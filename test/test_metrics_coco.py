"""COCO keypoint AP/AR and OKS (pose_ros.core.metrics) against pycocotools on real COCO annotations.

Detections are made from the real ground truth of ../shared/data/coco-sample (14 people in 4 images,
including two with no labelled keypoint) and perturbed in seeded ways: keypoint noise, dropped people,
false positives, duplicates, tied scores, crowd regions, more than 20 detections in an image.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from pose_ros.core.metrics import COCO_KEYPOINT_SIGMAS, COCO_KEYPOINT_STATS, coco_keypoint_eval, oks

Dets = list[dict[str, Any]]


@pytest.fixture(scope="module")
def coco_gt(shared_data: Path) -> dict[str, Any]:
    return json.loads((shared_data / "coco-sample" / "test_coco.json").read_text())


def pycocotools_stats(gt: dict[str, Any], dets: Dets) -> np.ndarray:
    """The ten COCOeval keypoint stats for `dets` (copies: pycocotools edits its inputs)."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = copy.deepcopy(gt)
        coco.createIndex()
        evaluator = COCOeval(coco, coco.loadRes(copy.deepcopy(dets)), "keypoints")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return np.asarray(evaluator.stats)


def assert_agrees(gt: dict[str, Any], dets: Dets) -> dict[str, float]:
    ours = coco_keypoint_eval(gt, copy.deepcopy(dets))
    np.testing.assert_allclose([ours[k] for k in COCO_KEYPOINT_STATS], pycocotools_stats(gt, dets), rtol=0, atol=1e-6)
    return ours


def detections_from_gt(gt: dict[str, Any], rng: np.random.Generator, noise_px: float) -> Dets:
    """One detection per annotated person: its keypoints plus Gaussian noise, random visibility and score."""
    dets = []
    for ann in gt["annotations"]:
        kp = np.asarray(ann["keypoints"], float).reshape(-1, 3)
        kp[:, :2] += rng.normal(0.0, noise_px, (len(kp), 2))
        kp[:, 2] = rng.uniform(0.0, 1.0, len(kp))
        dets.append(
            {
                "image_id": ann["image_id"],
                "category_id": 1,
                "keypoints": kp.ravel().tolist(),
                "score": float(rng.uniform(0.05, 1.0)),
            }
        )
    return dets


def false_positive(gt: dict[str, Any], rng: np.random.Generator, image_id: int, score: float) -> dict[str, Any]:
    """A person-shaped detection at a random place in the image."""
    image = next(img for img in gt["images"] if img["id"] == image_id)
    size = rng.uniform(20, 150)
    centre = rng.uniform([0, 0], [image["width"], image["height"]])
    xy = centre + rng.uniform(-0.5, 0.5, (17, 2)) * [size * 0.5, size]
    kp = np.concatenate([xy, rng.uniform(0, 1, (17, 1))], axis=1)
    return {"image_id": image_id, "category_id": 1, "keypoints": kp.ravel().tolist(), "score": score}


def test_exact_ground_truth_scores_perfectly(coco_gt) -> None:
    dets = detections_from_gt(coco_gt, np.random.default_rng(0), noise_px=0.0)
    labelled = [d for d, ann in zip(dets, coco_gt["annotations"], strict=True) if ann["num_keypoints"] > 0]
    assert_agrees(coco_gt, dets)  # unlabelled people's all-zero keypoints become false positives
    ours = assert_agrees(coco_gt, labelled)
    assert ours["AP"] == pytest.approx(1.0) and ours["AR"] == pytest.approx(1.0)


@pytest.mark.parametrize("noise_px", [1.0, 4.0, 10.0, 25.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_noisy_keypoints(coco_gt, noise_px: float, seed: int) -> None:
    ours = assert_agrees(coco_gt, detections_from_gt(coco_gt, np.random.default_rng(seed), noise_px))
    assert 0.0 <= ours["AP"] < 1.0


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_dropped_people_false_positives_and_duplicates(coco_gt, seed: int) -> None:
    rng = np.random.default_rng(seed)
    dets = detections_from_gt(coco_gt, rng, noise_px=5.0)
    dets = [d for d in dets if rng.uniform() > 0.25]  # missed people
    dets += [dict(d, score=d["score"] * 0.9) for d in dets[:3]]  # duplicates of found people
    image_ids = [img["id"] for img in coco_gt["images"]]
    dets += [false_positive(coco_gt, rng, int(rng.choice(image_ids)), float(rng.uniform())) for _ in range(8)]
    rng.shuffle(dets)
    assert_agrees(coco_gt, dets)


def test_tied_scores_across_images(coco_gt) -> None:
    rng = np.random.default_rng(5)
    dets = detections_from_gt(coco_gt, rng, noise_px=8.0)
    for det in dets:
        det["score"] = float(rng.choice([0.3, 0.6, 0.9]))
    dets += [false_positive(coco_gt, rng, img["id"], 0.6) for img in coco_gt["images"]]
    assert_agrees(coco_gt, dets)


def test_more_than_20_detections_in_an_image(coco_gt) -> None:
    rng = np.random.default_rng(6)
    dets = detections_from_gt(coco_gt, rng, noise_px=3.0)
    busy = coco_gt["images"][2]["id"]
    dets += [false_positive(coco_gt, rng, busy, float(rng.uniform(0.0, 1.0))) for _ in range(30)]
    assert_agrees(coco_gt, dets)


def test_crowd_regions_and_unlabelled_people(coco_gt) -> None:
    gt = copy.deepcopy(coco_gt)
    rng = np.random.default_rng(7)
    dets = detections_from_gt(gt, rng, noise_px=4.0)
    crowd = gt["annotations"][4]
    crowd["iscrowd"] = 1  # a crowd may absorb several detections, all ignored
    dets += [dict(dets[4], score=0.99), dict(dets[4], score=0.98)]
    # Detections near people without labelled keypoints (num_keypoints == 0) are matched through their box.
    for ann in gt["annotations"]:
        if ann["num_keypoints"] == 0:
            x, y, w, h = ann["bbox"]
            xy = rng.uniform([x - w, y - h], [x + 2 * w, y + 2 * h], (17, 2))
            kp = np.concatenate([xy, np.ones((17, 1))], axis=1)
            dets.append(
                {"image_id": ann["image_id"], "category_id": 1, "keypoints": kp.ravel().tolist(), "score": 0.95}
            )
    assert_agrees(gt, dets)


def test_detection_boxes_set_the_detection_area(coco_gt) -> None:
    rng = np.random.default_rng(8)
    dets = detections_from_gt(coco_gt, rng, noise_px=6.0)
    dets += [false_positive(coco_gt, rng, img["id"], 0.5) for img in coco_gt["images"]]
    for det in dets:
        det["bbox"] = rng.uniform([0, 0, 5, 5], [300, 300, 200, 200]).tolist()
    assert_agrees(coco_gt, dets)


def test_subset_of_images_and_no_detections(coco_gt) -> None:
    dets = detections_from_gt(coco_gt, np.random.default_rng(9), noise_px=2.0)
    first = coco_gt["images"][0]["id"]
    only_first = coco_keypoint_eval(coco_gt, [d for d in dets if d["image_id"] == first], image_ids=[first])
    assert only_first["AP"] == pytest.approx(1.0)
    empty = coco_keypoint_eval(coco_gt, [])
    assert all(empty[k] == 0.0 for k in ("AP", "AP50", "AR", "APm", "APl"))
    with pytest.raises(ValueError, match="not in the ground truth"):
        coco_keypoint_eval(coco_gt, [dict(dets[0], image_id=123)])


def test_oks_by_hand() -> None:
    gt = np.zeros((1, 17, 2))
    visible = np.zeros((1, 17), bool)
    visible[0, [0, 5]] = True  # nose and left shoulder labelled
    dt = gt.copy()[None, 0].repeat(2, axis=0)
    dt[1, 0] += [3.0, 4.0]  # nose 5 px away
    area = np.array([400.0])
    result = oks(dt, gt, visible, area)
    expected_nose = np.exp(-25.0 / (2 * 400.0 * (2 * COCO_KEYPOINT_SIGMAS[0]) ** 2))
    np.testing.assert_allclose(result[:, 0], [1.0, (expected_nose + 1.0) / 2], rtol=1e-6)


def test_many_images_random_mixture(coco_gt) -> None:
    """40 copies of the sample images with perturbed people, crowds, misses and false positives, all at once."""
    rng = np.random.default_rng(10)
    gt = {"images": [], "annotations": [], "categories": coco_gt["categories"]}
    dets: Dets = []
    for copy_index in range(10):
        for img in coco_gt["images"]:
            new_id = copy_index * 1_000_000 + img["id"]
            gt["images"].append(dict(img, id=new_id))
            anns = [a for a in coco_gt["annotations"] if a["image_id"] == img["id"]]
            for ann in anns:
                new = dict(ann, image_id=new_id, id=len(gt["annotations"]) + 1, iscrowd=int(rng.uniform() < 0.1))
                gt["annotations"].append(new)
            part = {"images": [], "annotations": [dict(a, image_id=new_id) for a in anns]}
            found = [d for d in detections_from_gt(part, rng, float(rng.uniform(1, 20))) if rng.uniform() < 0.8]
            dets += found + [false_positive(coco_gt, rng, img["id"], float(rng.uniform())) for _ in range(2)]
            dets[-2:] = [dict(d, image_id=new_id) for d in dets[-2:]]
    rng.shuffle(dets)
    assert_agrees(gt, dets)


@pytest.mark.parametrize("crowd", [False, True])
def test_overlapping_people_prefer_the_not_ignored_one(coco_gt, crowd: bool) -> None:
    """A detection close to a medium person and closer still to an overlapping large (or crowd) one."""
    gt = copy.deepcopy(coco_gt)
    medium = next(a for a in gt["annotations"] if 32**2 < a["area"] < 96**2 and a["num_keypoints"] > 10)
    twin = copy.deepcopy(medium)
    kp = np.asarray(twin["keypoints"], float).reshape(17, 3)
    kp[:, :2] += 2.0
    twin.update(id=999_999, keypoints=kp.ravel().tolist(), area=medium["area"] * 1.5, iscrowd=int(crowd))
    gt["annotations"].append(twin)
    dets = [{"image_id": medium["image_id"], "category_id": 1, "keypoints": twin["keypoints"], "score": 0.9}]
    ours = assert_agrees(gt, dets)
    assert ours["ARm"] > 0  # the medium person is found in the medium range, not lost to its ignored twin
