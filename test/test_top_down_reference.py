"""Top-down models imported into torch == the same TF.js graphs run by TF.js itself, on one real image each.

Reference runtime: npm @tensorflow/tfjs on its pure-JavaScript CPU backend (bench/fixtures/tfjs_reference.cjs).

* CenterNet on basketball1.png letterboxed to 512×512: its three upsampling layers are TF ResizeBilinear in
  the legacy "asymmetric" mode (src = dst × in/out, no half-pixel shift). Measured (2026-11-24): class
  heatmap (1, 128, 128, 80) max abs difference 4.8e-7, size head 1.1e-3 px; the same import with the
  half-pixel-centres mode differs by 0.74 on the heatmap (210 px on sizes), with align-corners by 0.66, so
  this comparison pins the coordinate mode. Also compared: the decoded (1, 100, 6) detections.
* MoveNet Thunder on the crop of the left-hand player (the crop sampled by the top-down pipeline, rounded to
  integer RGB as the int32 graph input needs): the graph's (1, 1, 17, 3) output vs the imported full graph AND
  vs the batched heads + re-implemented decoding used by the pipeline.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from bench.fixtures import tfjs_reference
from pose_ros.core.estimators.centernet import CenterNetDetector, CenterNetSettings
from pose_ros.core.estimators.crops import boxes_to_crop_transforms, sample_crops
from pose_ros.core.estimators.movenet_single import MoveNetSinglePose, MoveNetSingleSettings
from pose_ros.core.models.tfjs_graph import build_module

pytestmark = pytest.mark.skipif(
    tfjs_reference.unavailable_reason() is not None, reason=f"TF.js reference: {tfjs_reference.unavailable_reason()}"
)
CENTERNET_OUTPUTS = ["tower_0/keypoints", "tower_0/wh", "tower_0/detections"]
TOLERANCE = 1e-4  # heatmap values in [0, 1], normalised keypoints; box corners in 512-px input: 1e-2


@pytest.fixture(scope="module")
def basketball(demo_data) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(demo_data / "basketball1.png")), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def detector(human_models) -> CenterNetDetector:
    return CenterNetDetector(CenterNetSettings(device="cpu", backend="torch"))


def test_centernet_with_asymmetric_resize_matches_tfjs(detector, basketball) -> None:
    model_input, letterbox = detector.preprocess(basketball)
    reference = tfjs_reference.run_reference(detector.settings.model_json, [model_input], CENTERNET_OUTPUTS)[0]
    module = build_module(detector.settings.model_json, model_input.shape, CENTERNET_OUTPUTS)
    with torch.inference_mode():
        heatmap, sizes, detections = (o.numpy() for o in module(torch.from_numpy(model_input)))
    expected_heatmap = reference.outputs["tower_0/keypoints"]
    assert heatmap.shape == expected_heatmap.shape == (1, 128, 128, 80)
    assert np.abs(heatmap - expected_heatmap).max() < TOLERANCE
    assert np.abs(sizes - reference.outputs["tower_0/wh"]).max() < 1e-2
    expected = reference.outputs["tower_0/detections"]
    confident = expected[0, :, 4] > 0.05  # below, near-equal scores may swap places in the top-100
    np.testing.assert_allclose(detections[0, confident], expected[0, confident], atol=1e-2)
    people = detector.decode(expected[0], letterbox)
    assert len(people) == 2, "TF.js's own output also finds both players"
    np.testing.assert_allclose(detector(basketball).boxes_xyxy, people.boxes_xyxy, atol=1e-2)


def test_thunder_crop_matches_tfjs(detector, basketball) -> None:
    model = MoveNetSinglePose(MoveNetSingleSettings(model="movenet_thunder", device="cpu", backend="torch"))
    box = detector(basketball).boxes_xyxy[:1]
    transforms = boxes_to_crop_transforms(box, model.input_size)
    crop = sample_crops(torch.from_numpy(basketball), transforms, model.input_size).round()
    model_input = crop.numpy().astype(np.int32)
    expected = tfjs_reference.run_reference(model.settings.model_json, [model_input])[0].outputs["Identity"]
    assert expected.shape == (1, 1, 17, 3)
    full = build_module(model.settings.model_json, model_input.shape)
    with torch.inference_mode():
        imported = full(torch.from_numpy(model_input))[0].numpy()
    assert np.abs(imported - expected).max() < TOLERANCE
    batched = model.decode_regression(model.heads(crop)).numpy()
    assert np.abs(batched[0] - expected[0, 0]).max() < TOLERANCE
    assert expected[0, 0, :, 2].mean() > 0.5, "a real person: confident keypoints"
