"""Rotation conversions: Rodrigues against scipy, round trips near 0 and π, 6D Gram–Schmidt validity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from pose_ros.core.body.rotations import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    matrix_to_rot6d,
    rot6d_to_matrix,
)


def _random_axis_angles(count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    axes = rng.normal(size=(count, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = np.concatenate([rng.uniform(0, math.pi, count - 6), [0.0, 1e-9, 1e-4, math.pi - 1e-6, math.pi, 2.5]])
    return axes * angles[:, None]


def test_axis_angle_to_matrix_matches_scipy_in_float64() -> None:
    rotvecs = _random_axis_angles(200)
    ours = axis_angle_to_matrix(torch.from_numpy(rotvecs)).numpy()
    np.testing.assert_allclose(ours, Rotation.from_rotvec(rotvecs).as_matrix(), atol=1e-12)


def test_axis_angle_round_trip_including_zero_and_pi() -> None:
    rotvecs = torch.from_numpy(_random_axis_angles(200, seed=1))
    matrices = axis_angle_to_matrix(rotvecs)
    back = matrix_to_axis_angle(matrices)
    # At exactly π the axis sign is ambiguous; compare the rotations, and the vectors away from π.
    np.testing.assert_allclose(axis_angle_to_matrix(back).numpy(), matrices.numpy(), atol=1e-9)
    away = rotvecs.norm(dim=-1) < math.pi - 1e-3
    np.testing.assert_allclose(back[away].numpy(), rotvecs[away].numpy(), atol=1e-9)
    assert float(back.norm(dim=-1).max()) <= math.pi + 1e-9


def test_quaternion_matches_scipy_up_to_sign() -> None:
    rotvecs = _random_axis_angles(100, seed=2)
    ours = matrix_to_quaternion(axis_angle_to_matrix(torch.from_numpy(rotvecs))).numpy()  # (w, x, y, z), w >= 0
    xyzw = Rotation.from_rotvec(rotvecs).as_quat()
    theirs = np.concatenate([xyzw[:, 3:], xyzw[:, :3]], axis=1)
    theirs *= np.where(theirs[:, :1] < 0, -1.0, 1.0)
    np.testing.assert_allclose(np.abs((ours * theirs).sum(axis=1)), 1.0, atol=1e-12)


def test_rodrigues_is_smooth_at_zero_with_gradients() -> None:
    rotvec = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(axis_angle_to_matrix, (rotvec,))
    small = (1e-5 * torch.randn(4, 3, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(axis_angle_to_matrix, (small,))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rot6d_gives_proper_rotations(dtype: torch.dtype) -> None:
    rot6d = torch.randn(500, 6, generator=torch.Generator().manual_seed(0), dtype=dtype)
    matrices = rot6d_to_matrix(rot6d)
    eye = torch.eye(3, dtype=dtype).expand_as(matrices)
    tolerance = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(matrices.transpose(-1, -2) @ matrices, eye, atol=tolerance, rtol=0)
    torch.testing.assert_close(torch.linalg.det(matrices), torch.ones(500, dtype=dtype), atol=tolerance, rtol=0)


def test_rot6d_layout_is_two_interleaved_columns() -> None:
    """SPIN's layout: the 6 numbers are a row-major (3, 2) matrix, i.e. the first two columns of R, interleaved."""
    matrices = axis_angle_to_matrix(torch.from_numpy(_random_axis_angles(50, seed=3)))
    rot6d = matrix_to_rot6d(matrices)
    np.testing.assert_array_equal(rot6d[:, 0::2].numpy(), matrices[:, :, 0].numpy())
    np.testing.assert_allclose(rot6d_to_matrix(rot6d).numpy(), matrices.numpy(), atol=1e-12)
