"""The TF.js importer on MoveNet SinglePose Lightning == TF.js on a real image.

CenterNet (with its "asymmetric" resize) and MoveNet Thunder are checked against TF.js by
test_top_down_reference.py; MultiPose by test_movenet_reference.py. Lightning shares Thunder's op set but
not its weights or input size, so it gets its own check here. Reference runtime: npm @tensorflow/tfjs on its
pure-JS CPU backend (bench/fixtures/tfjs_reference.cjs). Input: basketball1.png letterboxed to int32 192×192.

Measured (2026-11-24): max abs diff of the (1, 1, 17, 3) output 1.1e-6 (normalised y, x and scores; float32
sums in another order over ~50 conv layers). Tolerance 1e-5.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from bench.fixtures import tfjs_reference
from pose_ros.core.estimators.letterbox import Letterbox
from pose_ros.core.models.tfjs_graph import build_module

TOLERANCE = 1e-5

pytestmark = pytest.mark.skipif(
    tfjs_reference.unavailable_reason() is not None, reason=f"TF.js reference: {tfjs_reference.unavailable_reason()}"
)


def test_lightning_matches_tfjs_on_a_real_image(human_models, demo_data):
    image = cv2.cvtColor(cv2.imread(str(demo_data / "basketball1.png")), cv2.COLOR_BGR2RGB)
    model_json = human_models / "movenet-lightning.json"
    model_input = Letterbox.fit(image.shape[:2], (192, 192)).apply(image)[None].astype(np.int32)
    module = build_module(model_json, model_input.shape)
    reference = tfjs_reference.run_reference(model_json, [model_input])[0].outputs["Identity"]
    with torch.inference_mode():
        (ours,) = module(torch.from_numpy(model_input))
    assert ours.shape == reference.shape == (1, 1, 17, 3)
    assert np.abs(ours.numpy() - reference).max() < TOLERANCE
    assert (reference[0, 0, :, 2] > 0.2).sum() >= 5, "a real pose: several confident keypoints"
