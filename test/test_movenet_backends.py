"""The onnxruntime backend (ONNX exported from the project's torch module) gives the torch backend's people."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from pose_ros.core import assets
from pose_ros.core.estimators.movenet import MoveNetMultiPose, MoveNetMultiPoseSettings
from pose_ros.core.models import backends

# Measured: the two backends' raw outputs differ by <= 3.4e-6 (float32, other kernels); see test_movenet_reference.
TOLERANCE = 1e-4
PIXEL_TOLERANCE = 0.05


def _settings(backend: str, **overrides) -> MoveNetMultiPoseSettings:
    return MoveNetMultiPoseSettings(**{"device": "cpu", "backend": backend, "fallback_to_torch": False, **overrides})


@pytest.fixture(scope="module")
def estimators(human_models) -> dict[str, MoveNetMultiPose]:
    return {name: MoveNetMultiPose(_settings(name)) for name in ("torch", "onnxruntime")}


def test_auto_backend_is_onnxruntime_on_cpu_and_torch_on_cuda():
    assert backends.resolve_backend("auto", torch.device("cpu")) == "onnxruntime"
    assert backends.resolve_backend("auto", torch.device("cuda")) == "torch"
    with pytest.raises(ValueError, match="backend"):
        backends.resolve_backend("tensorrt", torch.device("cpu"))


def test_both_backends_find_the_same_people(estimators, vtest_frames):
    assert estimators["onnxruntime"].backend == "onnxruntime" and estimators["torch"].backend == "torch"
    for frame in vtest_frames:
        model_input, _ = estimators["torch"].preprocess(frame)
        raw = {name: estimator.run_model(model_input) for name, estimator in estimators.items()}
        assert np.abs(raw["torch"] - raw["onnxruntime"]).max() < TOLERANCE
        people = {name: estimator(frame) for name, estimator in estimators.items()}
        assert len(people["torch"]) == len(people["onnxruntime"]) > 0
        for ours, theirs in zip(people["torch"], people["onnxruntime"], strict=True):
            assert abs(ours.score - theirs.score) < TOLERANCE
            assert np.abs(ours.keypoints_xy - theirs.keypoints_xy).max() < PIXEL_TOLERANCE
            np.testing.assert_allclose(ours.confidences, theirs.confidences, atol=TOLERANCE)


def test_export_is_cached_by_model_size_and_weights(estimators):
    runner = estimators["onnxruntime"].runner
    assert runner.path.parent == assets.exported_models_dir() and "384x512" in runner.path.name
    before = runner.path.stat().st_mtime_ns
    again = MoveNetMultiPose(_settings("onnxruntime"))
    assert again.runner.path == runner.path and runner.path.stat().st_mtime_ns == before


def test_export_failure_is_clear_and_can_fall_back_to_torch(human_models, monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(assets, "exported_models_dir", lambda: tmp_path)

    def broken_export(*args, **kwargs):
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(torch.onnx, "export", broken_export)
    small = {"input_width": 128, "input_height": 96}
    with pytest.raises(backends.BackendError, match=r"ONNX.*exporter exploded.*backend='torch'"):
        MoveNetMultiPose(_settings("onnxruntime", **small))
    assert not list(tmp_path.iterdir()), "no partial ONNX file is left behind"
    with caplog.at_level(logging.WARNING):
        estimator = MoveNetMultiPose(_settings("onnxruntime", fallback_to_torch=True, **small))
    assert estimator.backend == "torch" and "falling back to torch" in caplog.text
