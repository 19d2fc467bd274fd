"""OpenPose training: COCO-format data → multi-stage net with a loss at every stage → the full decoder."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from bench.fixtures import openpose_synthetic as synthetic
from pose_ros.core.estimators.openpose import OpenPoseEstimator, OpenPoseSettings
from pose_ros.core.models.openpose import CompactOpenPose, load_model
from pose_ros.core.skeletons import coco17_to_coco18, coco18_to_coco17
from pose_ros.core.training.openpose import TargetSettings, make_sample, read_coco_people, stage_loss
from pose_ros.tools import train_openpose

SIZE = 64


def write_synthetic_coco(directory: Path, num_images: int = 12, seed: int = 0) -> Path:
    """Stick-figure images (1-2 people each) and their COCO-17 keypoint annotations; returns the JSON path."""
    rng = np.random.default_rng(seed)
    images, annotations = [], []
    for i in range(num_images):
        count = 1 + i % 2
        people = []
        for k in range(count):
            cx = SIZE * (0.5 if count == 1 else 0.28 + 0.44 * k) + rng.uniform(-4, 4)
            centre = (cx, SIZE * 0.5 + rng.uniform(-4, 4))
            people.append(synthetic.random_person(rng, centre, SIZE * rng.uniform(0.6, 0.75), jitter=0.01))
        coco17, _ = coco18_to_coco17(np.stack(people), np.ones((count, 18), np.float32))
        drawn, _ = coco17_to_coco18(coco17, np.ones((count, 17), np.float32))  # neck = shoulders' midpoint
        image = synthetic.render_image(drawn, np.ones(drawn.shape[:2], bool), SIZE, SIZE)
        name = f"{i:03d}.png"
        cv2.imwrite(str(directory / name), image[..., ::-1])
        images.append({"id": i, "file_name": name, "height": SIZE, "width": SIZE})
        for person in coco17:
            keypoints = np.concatenate([person, np.full((17, 1), 2.0)], axis=1).ravel().tolist()
            annotations.append({"id": len(annotations), "image_id": i, "category_id": 1, "iscrowd": 0,
                                "num_keypoints": 17, "keypoints": keypoints})
    path = directory / "person_keypoints.json"
    categories = [{"id": 1, "name": "person"}]
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def test_stage_loss_supervises_every_stage():
    model = CompactOpenPose(width=8, stage_width=8, num_stages=3, kernel=3, num_pools=2)
    outputs = model.stages(torch.zeros(1, 3, 16, 16))
    heatmaps, pafs = torch.rand(1, 19, 4, 4), torch.rand(1, 38, 4, 4)
    loss = stage_loss(outputs, heatmaps, pafs)
    loss.backward()
    first_stage = model.heatmap_branches[0][0][0].weight.grad
    assert len(outputs) == 3 and first_stage is not None and first_stage.abs().sum() > 0
    per_stage = [torch.nn.functional.mse_loss(h, heatmaps) + torch.nn.functional.mse_loss(p, pafs) for h, p in outputs]
    assert loss.item() == pytest.approx(sum(v.item() for v in per_stage))


def test_training_on_synthetic_coco_recovers_the_people(tmp_path):
    annotations = write_synthetic_coco(tmp_path)
    output = tmp_path / "compact.pth"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small convolutions: one thread is faster on a shared machine
    try:
        losses = train_openpose.main([
            "--annotations", str(annotations), "--images", str(tmp_path), "--output", str(output),
            "--architecture", "compact", "--input-size", str(SIZE), "--iterations", "500", "--batch-size", "4",
            "--lr", "3e-3", "--width", "32", "--stage-width", "32", "--stages", "2", "--kernel", "3",
            "--pools", "2", "--device", "cpu",
        ])
    finally:
        torch.set_num_threads(threads)
    assert np.mean(losses[:5]) / np.mean(losses[-10:]) >= 10.0, (losses[:5], losses[-10:])
    model = load_model(output)
    assert isinstance(model, CompactOpenPose) and model.stride == 4
    settings = OpenPoseSettings(device="cpu", input_width=SIZE, input_height=SIZE, upsample=4)
    estimator = OpenPoseEstimator(settings, model=model)
    recovered = total = 0
    for name, (truth, _) in read_coco_people(annotations).items():
        image = cv2.imread(str(tmp_path / name))[..., ::-1].copy()
        people = estimator(image)
        for person in truth:
            total += 1
            close = [np.sum(np.linalg.norm(p.keypoints_xy - person, axis=1) < 0.08 * SIZE) for p in people]
            recovered += max(close, default=0) >= 14  # at least 14 of 18 keypoints within 5 px
    assert total == 18 and recovered >= 0.9 * total


def test_coco_reader_and_targets_follow_the_input_transform(tmp_path):
    annotations = write_synthetic_coco(tmp_path, num_images=1)
    people = read_coco_people(annotations)
    xy, visible = people["000.png"]
    assert xy.shape == (1, 18, 2) and visible.all()
    settings = TargetSettings(input_size=(32, 48), stride=4, map_offset=1.5)  # image 64 → scale 0.5
    image = cv2.imread(str(tmp_path / "000.png"))[..., ::-1].copy()
    sample = make_sample(image, xy, visible, settings)
    assert sample.image.shape == (3, 32, 48) and sample.heatmaps.shape == (19, 8, 12)
    assert sample.image[:, :, 32:].abs().max() == 0  # padding at 128 = 0 after normalisation
    nose = ((xy[0, 0] + 0.5) * 0.5 - 0.5 - 1.5) / 4  # expected map position of the nose
    peak = np.unravel_index(int(sample.heatmaps[0].argmax()), (8, 12))
    assert abs(peak[1] - nose[0]) <= 0.5 and abs(peak[0] - nose[1]) <= 0.5
