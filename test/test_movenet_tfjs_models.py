"""The TF.js importer on the top-down models: CenterNet and MoveNet SinglePose == TF.js on a real image.

Same reference runtime as test_movenet_reference.py (npm @tensorflow/tfjs, pure-JS CPU backend). Inputs:
basketball1.png letterboxed to each model's fixed input size (CenterNet: float32 512×512 RGB 0..255;
MoveNet Lightning: int32 192×192; MoveNet Thunder: int32 256×256).

Measured (2026-11-24), max abs diff / max |tfjs value| of each output: CenterNet class heatmap 4.8e-7 / 1,
box sizes `wh` 1.1e-3 / 348 px, detections 4.9e-4 / 512 px; Lightning and Thunder keypoints 1.1e-6 and
1.2e-6 / 1 (float32 sums in another order over ~60 conv layers).
Tolerance per output: 1e-5 × (1 + max |tfjs value|), ≥ 3× those.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from pose_ros.core.estimators.letterbox import Letterbox
from pose_ros.core.models.tfjs_graph import build_module
from pose_ros.tools import tfjs_reference

TOLERANCE = 1e-5  # times (1 + the output's largest magnitude), see the module docstring

pytestmark = pytest.mark.skipif(
    tfjs_reference.unavailable_reason() is not None, reason=f"TF.js reference: {tfjs_reference.unavailable_reason()}"
)


@pytest.fixture(scope="module")
def basketball(demo_data) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(demo_data / "basketball1.png")), cv2.COLOR_BGR2RGB)


@pytest.mark.parametrize(
    ("model", "size", "dtype"),
    [("centernet", 512, np.float32), ("movenet-lightning", 192, np.int32), ("movenet-thunder", 256, np.int32)],
)
def test_imported_model_matches_tfjs(human_models, basketball, model, size, dtype):
    model_json = human_models / f"{model}.json"
    model_input = Letterbox.fit(basketball.shape[:2], (size, size)).apply(basketball)[None].astype(dtype)
    module = build_module(model_json, model_input.shape)
    reference = tfjs_reference.run_reference(model_json, [model_input], module.output_names)[0].outputs
    with torch.inference_mode():
        outputs = module(torch.from_numpy(model_input))
    for name, ours in zip(module.output_names, outputs, strict=True):
        theirs = reference[name]
        assert ours.shape == theirs.shape, name
        error = np.abs(ours.numpy() - theirs).max()
        assert error <= TOLERANCE * (1 + np.abs(theirs).max()), (name, error)
    if model == "centernet":  # the detections are real: the two best person boxes are the two players
        detections = reference["tower_0/detections"][0]
        people = detections[detections[:, 5] == 0]
        centres_x = (people[:2, 0] + people[:2, 2]) / 2
        assert (people[:2, 4] > 0.4).all() and abs(centres_x[0] - centres_x[1]) > 100
