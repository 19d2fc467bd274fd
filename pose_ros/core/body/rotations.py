"""Batched 3D rotation conversions in torch: axis-angle ⇄ matrix, 6D → matrix.

All functions accept any leading batch shape `(...)`, keep the input's dtype and device, and are differentiable.
Matrices act on column vectors (x' = R x).
"""

from __future__ import annotations

import torch

# Below this sin(angle / 2) the quaternion → axis-angle map switches to its Taylor expansion: with s² < 1e-6 the
# dropped terms are below 1e-13 relative, under float64 round-off.
_SMALL_ANGLE = 1e-3


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula: axis-angle vectors (..., 3) radians → rotation matrices (..., 3, 3).

    R = cos θ · I + (sin θ / θ) · [r]ₓ + ((1 − cos θ) / θ²) · r rᵀ with θ = |r|, written with un-normalised r and
    1 − cos θ = 2 sin²(θ / 2), which has no cancellation at small angles; θ² is clamped to the smallest normal number
    so that r = 0 gives I with finite gradients.
    """
    theta_sq = (axis_angle * axis_angle).sum(-1, keepdim=True).clamp_min(torch.finfo(axis_angle.dtype).tiny)
    theta = theta_sq.sqrt()
    half_versine = (0.5 * theta).sin().square()  # (1 − cos θ) / 2
    sinc = theta.sin() / theta
    x, y, z = (sinc * axis_angle).unbind(-1)
    zero = torch.zeros_like(x)
    skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).unflatten(-1, (3, 3))
    outer = axis_angle.unsqueeze(-1) * (2.0 * half_versine / theta_sq * axis_angle).unsqueeze(-2)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    return (1.0 - 2.0 * half_versine).unsqueeze(-1) * eye + skew + outer


def matrix_to_quaternion(matrix: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) → unit quaternions (..., 4) as (w, x, y, z) with w ≥ 0.

    Uses the largest of |w|, |x|, |y|, |z| as the divisor (Shepperd's method), so it is exact near 180° as well.
    """
    m = matrix
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    trace = m00 + m11 + m22
    # four_sq[i] = 4 q_i², each computed from the diagonal alone.
    four_sq = torch.stack([1 + trace, 1 + 2 * m00 - trace, 1 + 2 * m11 - trace, 1 + 2 * m22 - trace], dim=-1)
    two_abs = four_sq.clamp_min(0).sqrt()  # 2 |q_i|
    d21, d02, d10 = m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]
    s10, s02, s21 = m[..., 1, 0] + m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 2, 1] + m[..., 1, 2]
    # Row i: 4 q_i · (w, x, y, z), built from the off-diagonal sums and differences.
    rows = torch.stack(
        [
            torch.stack([four_sq[..., 0], d21, d02, d10], dim=-1),
            torch.stack([d21, four_sq[..., 1], s10, s02], dim=-1),
            torch.stack([d02, s10, four_sq[..., 2], s21], dim=-1),
            torch.stack([d10, s02, s21, four_sq[..., 3]], dim=-1),
        ],
        dim=-2,
    )
    best = two_abs.argmax(dim=-1, keepdim=True)
    row = torch.take_along_dim(rows, best.unsqueeze(-1), dim=-2).squeeze(-2)
    quat = row / (2 * torch.take_along_dim(two_abs, best, dim=-1)).clamp_min(torch.finfo(m.dtype).tiny)
    quat = quat / quat.norm(dim=-1, keepdim=True)
    return torch.where(quat[..., :1] < 0, -quat, quat)


def quaternion_to_axis_angle(quaternion: torch.Tensor) -> torch.Tensor:
    """Unit quaternions (..., 4) as (w, x, y, z) → axis-angle vectors (..., 3) with angle in [0, π]."""
    quat = torch.where(quaternion[..., :1] < 0, -quaternion, quaternion)
    w, xyz = quat[..., :1], quat[..., 1:]
    sin_half = xyz.norm(dim=-1, keepdim=True)
    angle = 2 * torch.atan2(sin_half, w)
    small = sin_half < _SMALL_ANGLE
    # angle / sin(angle / 2) = 2 atan(s / w) / s → 2 / w · (1 − s² / (3 w²)) as s = sin(angle / 2) → 0.
    scale = torch.where(
        small, 2.0 / w * (1 - sin_half**2 / (3 * w**2)), angle / torch.where(small, torch.ones_like(sin_half), sin_half)
    )
    return xyz * scale


def matrix_to_axis_angle(matrix: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) → axis-angle vectors (..., 3) radians, angle in [0, π]."""
    return quaternion_to_axis_angle(matrix_to_quaternion(matrix))


def rot6d_to_matrix(rot6d: torch.Tensor) -> torch.Tensor:
    """Continuous 6D rotation representation (Zhou et al., CVPR 2019) (..., 6) → rotation matrices (..., 3, 3).

    Layout as in SPIN/HMR checkpoints: the 6 numbers are a (3, 2) matrix in row-major order whose two columns a₁, a₂
    are orthonormalised by Gram–Schmidt into the first two columns of R; the third column is b₁ × b₂ (det R = +1).
    """
    cols = rot6d.unflatten(-1, (3, 2))
    b1 = torch.nn.functional.normalize(cols[..., 0], dim=-1)
    a2 = cols[..., 1]
    b2 = torch.nn.functional.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rot6d(matrix: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) → 6D representation (..., 6) in the layout `rot6d_to_matrix` reads."""
    return matrix[..., :2].flatten(-2)
