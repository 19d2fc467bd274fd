"""SMPL layer: equality with the PyPI smplx package, textbook invariants, rotation-matrix input, dtypes, gradients."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
import torch

from bench.fixtures.smpl_synthetic import SMPL_NUM_FACES, SMPL_NUM_VERTICES, make_synthetic_smpl
from pose_ros.core.body.rotations import axis_angle_to_matrix
from pose_ros.core.body.smpl import Smpl, ancestor_jumps
from pose_ros.core.body.smpl_files import SmplModelData, official_arrays
from pose_ros.core.skeletons import SMPL24_PARENTS


@pytest.fixture(scope="module")
def model_data() -> SmplModelData:
    return make_synthetic_smpl(seed=7)


def _smplx_reference(data: SmplModelData) -> torch.nn.Module:
    smplx = pytest.importorskip("smplx")
    from smplx.utils import Struct

    arrays = official_arrays(data)
    arrays["kintree_table"][0, 0] = 2**32 - 1  # as in the official files
    struct = Struct(**arrays)
    return smplx.SMPL(model_path="", data_struct=struct, dtype=torch.float64, create_transl=False)


def _random_params(batch: int, seed: int, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    betas = 2.0 * torch.randn(batch, 10, generator=generator, dtype=dtype)
    pose = 0.6 * torch.randn(batch, 72, generator=generator, dtype=dtype)
    return betas, pose


def test_synthetic_model_has_smpl_shapes(model_data: SmplModelData) -> None:
    assert model_data.v_template.shape == (SMPL_NUM_VERTICES, 3)
    assert model_data.shapedirs.shape == (SMPL_NUM_VERTICES, 3, 10)
    assert model_data.posedirs.shape == (SMPL_NUM_VERTICES, 3, 207)
    assert model_data.j_regressor.shape == (24, SMPL_NUM_VERTICES)
    assert model_data.weights.shape == (SMPL_NUM_VERTICES, 24)
    assert model_data.faces.shape == (SMPL_NUM_FACES, 3)
    assert tuple(model_data.parents) == SMPL24_PARENTS
    np.testing.assert_allclose(model_data.weights.sum(axis=1), 1.0, atol=1e-6)


def test_matches_smplx_in_float64(model_data: SmplModelData) -> None:
    reference = _smplx_reference(model_data)
    ours = Smpl(model_data, dtype=torch.float64)
    betas, pose = _random_params(batch=6, seed=0)
    with torch.no_grad():
        mine = ours(betas, pose)
        theirs = reference(betas=betas, global_orient=pose[:, :3], body_pose=pose[:, 3:])
    assert mine.vertices.shape == (6, SMPL_NUM_VERTICES, 3)
    assert mine.joints.shape == (6, 24, 3)
    assert (mine.vertices - theirs.vertices).abs().max().item() <= 1e-5
    assert (mine.joints - theirs.joints[:, :24]).abs().max().item() <= 1e-5
    # The posed mesh really moved: the comparison is not between two templates.
    assert (mine.vertices[0] - torch.from_numpy(model_data.v_template)).abs().max().item() > 0.05


def test_rotation_matrix_input_equals_axis_angle(model_data: SmplModelData) -> None:
    model = Smpl(model_data, dtype=torch.float64)
    betas, pose = _random_params(batch=3, seed=1)
    from_axis_angle = model(betas, pose)
    from_matrices = model(betas, axis_angle_to_matrix(pose.view(3, 24, 3)))
    torch.testing.assert_close(from_matrices.vertices, from_axis_angle.vertices, atol=1e-12, rtol=0)


def test_rest_pose_is_template_plus_shape(model_data: SmplModelData) -> None:
    """θ = 0: no pose blendshapes, identity skinning; joints are the regressor applied to the shaped template."""
    model = Smpl(model_data, dtype=torch.float64)
    betas, _ = _random_params(batch=2, seed=2)
    out = model(betas, torch.zeros(2, 72, dtype=torch.float64))
    shaped = model_data.v_template + np.einsum("vcs,bs->bvc", model_data.shapedirs, betas.numpy())
    np.testing.assert_allclose(out.vertices.numpy(), shaped, atol=1e-12)
    np.testing.assert_allclose(out.joints.numpy(), np.einsum("jv,bvc->bjc", model_data.j_regressor, shaped), atol=1e-12)


def test_float32_and_translation(model_data: SmplModelData) -> None:
    betas, pose = _random_params(batch=2, seed=3)
    transl = torch.tensor([[0.1, -0.2, 3.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    exact = Smpl(model_data, dtype=torch.float64)(betas, pose, transl)
    single = Smpl(model_data)(betas.float(), pose.float(), transl.float())
    assert single.vertices.dtype == torch.float32
    assert (single.vertices.double() - exact.vertices).abs().max().item() < 1e-5
    shifted = Smpl(model_data, dtype=torch.float64)(betas, pose)
    torch.testing.assert_close(exact.joints - shifted.joints, transl[:, None].expand(2, 24, 3))


def test_gradients_reach_shape_and_pose(model_data: SmplModelData) -> None:
    model = Smpl(model_data, dtype=torch.float64)
    betas, pose = (tensor.requires_grad_() for tensor in _random_params(batch=1, seed=4))
    model(betas, pose).vertices.square().sum().backward()
    assert betas.grad is not None and betas.grad.abs().sum() > 0
    assert pose.grad is not None and pose.grad.abs().sum() > 0


def test_ancestor_jumps_reach_the_root_in_log_depth_rounds() -> None:
    parents = np.array(SMPL24_PARENTS)
    rounds = ancestor_jumps(parents)
    assert len(rounds) == 4  # the deepest chain, pelvis → ... → hand, has 9 joints ≤ 2⁴
    virtual = len(parents)
    np.testing.assert_array_equal(rounds[0][:virtual], np.where(parents < 0, virtual, parents))
    for ancestors, doubled in pairwise(rounds):
        np.testing.assert_array_equal(doubled, ancestors[ancestors])
    assert np.all(rounds[-1][rounds[-1]] == virtual)


def test_rejects_wrong_joint_count(model_data: SmplModelData) -> None:
    model = Smpl(model_data)
    with pytest.raises(ValueError, match="24 joints"):
        model(torch.zeros(1, 10), torch.zeros(1, 69))


def test_module_conversion_moves_every_buffer(model_data: SmplModelData) -> None:
    """`.double()` (like `.to(device)`) converts the whole layer; only the float32 rounding of its arrays differs."""
    converted = Smpl(model_data).double()
    assert converted.dtype == torch.float64 and all(index.device == torch.device("cpu") for index in converted._jumps)
    betas, pose = _random_params(batch=2, seed=5)
    exact = Smpl(model_data, dtype=torch.float64)(betas, pose)
    assert (converted(betas, pose).vertices - exact.vertices).abs().max().item() < 1e-5
    with pytest.raises(ValueError, match="num_betas"):
        Smpl(model_data, num_betas=11)
