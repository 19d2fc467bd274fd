"""HMR network: strict loading of SPIN's checkpoint layout, output shapes, valid rotations, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pose_ros.core.body.hmr import Hmr, HmrOutput, MeanParams, load_mean_params, load_spin_checkpoint

# SPIN's released checkpoint, written out from the published architecture: ResNet-50 (torchvision names) + IEF head.
RESNET50_STAGES = ((64, 3), (128, 4), (256, 6), (512, 3))


def _batch_norm(prefix: str, channels: int) -> dict[str, tuple[int, ...]]:
    shapes = {f"{prefix}.{name}": (channels,) for name in ("weight", "bias", "running_mean", "running_var")}
    return shapes | {f"{prefix}.num_batches_tracked": ()}


def spin_checkpoint_shapes() -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {"conv1.weight": (64, 3, 7, 7), **_batch_norm("bn1", 64)}
    in_channels = 64
    for stage, (width, blocks) in enumerate(RESNET50_STAGES, start=1):
        for block in range(blocks):
            prefix = f"layer{stage}.{block}"
            shapes[f"{prefix}.conv1.weight"] = (width, in_channels, 1, 1)
            shapes |= _batch_norm(f"{prefix}.bn1", width)
            shapes[f"{prefix}.conv2.weight"] = (width, width, 3, 3)
            shapes |= _batch_norm(f"{prefix}.bn2", width)
            shapes[f"{prefix}.conv3.weight"] = (4 * width, width, 1, 1)
            shapes |= _batch_norm(f"{prefix}.bn3", 4 * width)
            if block == 0:
                shapes[f"{prefix}.downsample.0.weight"] = (4 * width, in_channels, 1, 1)
                shapes |= _batch_norm(f"{prefix}.downsample.1", 4 * width)
            in_channels = 4 * width
    for name, (out_features, in_features) in {
        "fc1": (1024, 2048 + 144 + 13),
        "fc2": (1024, 1024),
        "decpose": (144, 1024),
        "decshape": (10, 1024),
        "deccam": (3, 1024),
    }.items():
        shapes[f"{name}.weight"] = (out_features, in_features)
        shapes[f"{name}.bias"] = (out_features,)
    return shapes | {"init_pose": (1, 144), "init_shape": (1, 10), "init_cam": (1, 3)}


def random_spin_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights in SPIN's layout, scaled so that activations stay finite through 50 layers."""
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for key, shape in spin_checkpoint_shapes().items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(1000)
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(shape, generator=generator)
        elif key.endswith("running_mean") or key.endswith(".bias"):
            state[key] = 0.05 * torch.randn(shape, generator=generator)
        elif len(shape) == 4:  # convolutions: He scaling
            fan_in = shape[1] * shape[2] * shape[3]
            state[key] = torch.randn(shape, generator=generator) * (2.0 / fan_in) ** 0.5
        elif key.startswith("layer") or key.startswith("bn"):  # batch-norm scales
            state[key] = 1.0 + 0.1 * torch.randn(shape, generator=generator)
        elif key.startswith("init_"):
            state[key] = torch.randn(shape, generator=generator)
        else:  # linear layers
            scale = 0.01 if key.startswith("dec") else shape[1] ** -0.5
            state[key] = scale * torch.randn(shape, generator=generator)
    state["init_cam"] = torch.tensor([[0.9, 0.0, 0.0]])
    return state


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    state = random_spin_state_dict()
    path = tmp_path_factory.mktemp("spin") / "model_checkpoint.pt"
    torch.save({"model": state, "optimizer": {"state": {}, "param_groups": []}}, path)
    return path, state


@pytest.fixture(scope="module")
def model(checkpoint: tuple[Path, dict[str, torch.Tensor]]) -> Hmr:
    return Hmr.from_files(checkpoint[0])


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def output(model: Hmr, images: torch.Tensor) -> HmrOutput:
    with torch.inference_mode():
        return model(images)


def test_our_module_has_exactly_spins_parameter_names_and_shapes() -> None:
    ours = {key: tuple(value.shape) for key, value in Hmr().state_dict().items()}
    assert ours == spin_checkpoint_shapes()


def test_checkpoint_loads_strictly(model: Hmr, checkpoint: tuple[Path, dict[str, torch.Tensor]]) -> None:
    loaded = model.state_dict()
    for key in (
        "conv1.weight",
        "layer3.5.conv2.weight",
        "layer4.0.downsample.1.running_var",
        "fc1.weight",
        "init_pose",
    ):
        assert torch.equal(loaded[key], checkpoint[1][key]), key
    assert not model.training


def test_outputs_have_smpl_shapes_and_are_finite(output: HmrOutput) -> None:
    assert output.rotations.shape == (2, 24, 3, 3)
    assert output.betas.shape == (2, 10)
    assert output.camera.shape == (2, 3)
    assert output.pose_6d.shape == (2, 144)
    for tensor in (output.rotations, output.betas, output.camera):
        assert torch.isfinite(tensor).all()
    assert not torch.allclose(output.betas[0], output.betas[1]), "the two images should give different shapes"


def test_rotations_are_proper(output: HmrOutput) -> None:
    rotations = output.rotations.double()
    eye = torch.eye(3, dtype=torch.float64).expand_as(rotations)
    assert (rotations.transpose(-1, -2) @ rotations - eye).abs().max().item() < 1e-5
    assert (torch.linalg.det(rotations) - 1.0).abs().max().item() < 1e-5


def test_forward_is_deterministic(model: Hmr, images: torch.Tensor, output: HmrOutput) -> None:
    with torch.inference_mode():
        again = model(images)
    assert torch.equal(again.rotations, output.rotations)
    assert torch.equal(again.betas, output.betas)
    assert torch.equal(again.camera, output.camera)


def test_regressor_starts_from_the_mean_parameters(model: Hmr) -> None:
    """Zero iterations return exactly the checkpoint's mean parameters (the IEF starting point)."""
    with torch.inference_mode():
        start = model(torch.zeros(1, 3, 64, 64), iterations=0)  # the image size does not matter here
    torch.testing.assert_close(start.pose_6d, model.init_pose)
    torch.testing.assert_close(start.betas, model.init_shape)
    torch.testing.assert_close(start.camera, model.init_cam)


@pytest.mark.parametrize("change", ["missing", "unexpected", "shape"])
def test_strict_loading_rejects_other_layouts(
    checkpoint: tuple[Path, dict[str, torch.Tensor]], tmp_path: Path, change: str
) -> None:
    state = dict(checkpoint[1])
    if change == "missing":
        del state["decshape.bias"]
    elif change == "unexpected":
        state["fc3.weight"] = torch.zeros(3, 3)
    else:
        state["deccam.weight"] = torch.zeros(6, 1024)
    path = tmp_path / "bad.pt"
    torch.save({"model": state}, path)
    with pytest.raises(RuntimeError, match=r"bad\.pt"):
        load_spin_checkpoint(Hmr(), path)


def test_mean_params_file(tmp_path: Path) -> None:
    path = tmp_path / "smpl_mean_params.npz"
    pose = np.tile([1.0, 0.0, 0.0, 1.0, 0.0, 0.0], 24) + 0.01
    np.savez(path, pose=pose, shape=np.arange(10.0), cam=np.array([0.9, 0.0, 0.1]))
    params = load_mean_params(path)
    np.testing.assert_array_equal(params.pose_6d, pose)
    model = Hmr(params)
    np.testing.assert_allclose(model.init_shape.numpy()[0], np.arange(10.0))
    np.savez(path, pose=pose[:100], shape=np.zeros(10), cam=np.zeros(3))
    with pytest.raises(ValueError, match="sizes"):
        load_mean_params(path)
    assert MeanParams.neutral().pose_6d.shape == (144,)


def test_missing_checkpoint_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"model_checkpoint\.pt.*SPIN"):
        Hmr.from_files(tmp_path / "model_checkpoint.pt")


def reference_ief(model: Hmr, images: torch.Tensor, iterations: int) -> tuple[torch.Tensor, ...]:
    """SPIN's regressor loop written out from the paper/code: start at the mean parameters; each iteration feeds
    [features, pose, β, camera] through fc1 → fc2 and adds the decoders' residuals (dropout off in eval)."""
    features = model.encode(images)
    n = features.shape[0]
    pose, betas, cam = (model.init_pose.expand(n, -1), model.init_shape.expand(n, -1), model.init_cam.expand(n, -1))
    for _ in range(iterations):
        x = torch.cat([features, pose, betas, cam], dim=1)
        x = model.fc2(model.fc1(x))
        pose, betas, cam = pose + model.decpose(x), betas + model.decshape(x), cam + model.deccam(x)
    return pose, betas, cam


def test_iterative_error_feedback_runs_three_iterations(model: Hmr, images: torch.Tensor, output: HmrOutput) -> None:
    """The default forward equals the reference loop with SPIN's 3 iterations, and not with 2 or 4."""
    model.eval()
    with torch.inference_mode():
        runs = {k: reference_ief(model, images, k) for k in (2, 3, 4)}
    pose, betas, cam = runs[3]
    torch.testing.assert_close(output.pose_6d, pose, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(output.betas, betas, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(output.camera, cam, rtol=1e-5, atol=1e-6)
    for other in (2, 4):  # each iteration moves the estimate measurably: a wrong count cannot pass the check above
        assert (runs[other][0] - pose).abs().max() > 1e-3
        assert (runs[other][2] - cam).abs().max() > 1e-4
