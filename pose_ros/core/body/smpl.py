"""SMPL body model as a batched torch layer (Loper et al., SIGGRAPH Asia 2015).

M(β, θ) = LBS(T̄ + B_S(β) + B_P(θ), J(β), θ, W): template → shape blendshapes → joint regression → pose blendshapes
(from R(θ) − I of the 23 non-root joints) → forward kinematics on the joint tree → linear blend skinning.

What makes it fast (same results as the textbook order, up to float round-off):
- one matrix product [β, R] @ D added to a constant gives the shaped-and-pose-corrected vertices, the rest joints
  and the joints' offsets from their parents: joints are regressed from precomputed `J_regressor @ T̄` and
  `J_regressor @ S` (they are linear in β) instead of from the 6890 shaped vertices, and the constant −P·vec(I)
  of the textbook (R − I) pose features is folded into the constant;
- forward kinematics composes the chains by pointer jumping: each round composes every joint's transform with
  that of its current ancestor and doubles the span, so SMPL's depth-8 tree takes 4 batched matmuls, not 23;
- skinning blends 3 × 4 affine transforms and applies them as three fused multiply-adds over coordinate-major
  vertex rows.
The pose-blendshape matrix (207 × 20670 numbers, 17 MB in float32) must be read once per call whatever the
schedule, which bounds the batch-1 time from below (see docs/smpl_hmr.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pose_ros.core.body.rotations import axis_angle_to_matrix
from pose_ros.core.body.smpl_files import SmplModelData, load_smpl_model


@dataclass
class SmplOutput:
    """Result of an SMPL forward pass.

    Attributes:
        vertices: (B, V, 3) posed mesh vertices, metres (plus `transl` when given).
        joints: (B, J, 3) posed joint locations, metres (plus `transl` when given).
        rotations: (B, J, 3, 3) local joint rotation matrices that were applied.
    """

    vertices: torch.Tensor
    joints: torch.Tensor
    rotations: torch.Tensor


def ancestor_jumps(parents: np.ndarray) -> list[np.ndarray]:
    """Gather indices for forward kinematics by pointer jumping on a tree with `parents` (J,) (-1: root).

    Index J stands for a virtual node above the root (identity transform, its own ancestor). Round k's array
    (J + 1,) gives each node's ancestor 2^k levels up (or the virtual node); composing every transform with its
    round-k ancestor's, for all rounds in order, turns parent-relative transforms into root-relative ones.
    """
    num_joints = len(parents)
    ancestor = np.append(np.where(parents < 0, num_joints, parents), num_joints).astype(np.int64)
    rounds = []
    while np.any(ancestor[:num_joints] != num_joints):
        rounds.append(ancestor)
        ancestor = ancestor[ancestor]
    return rounds


class Smpl(torch.nn.Module):
    """Batched, device-aware SMPL layer. Build with `Smpl(load_smpl_model(path))` or `Smpl.from_file(path)`.

    All buffers live on one device in one dtype (float32 or float64); move with `.to(device)` / `.double()` like
    any module. Gradients flow to β and θ.
    """

    def __init__(self, data: SmplModelData, num_betas: int = 10, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        if not 0 < num_betas <= data.num_betas:
            raise ValueError(f"num_betas must be in 1..{data.num_betas}, got {num_betas}")
        self.num_betas = num_betas
        self.num_joints = data.num_joints
        self.num_vertices = data.num_vertices
        self.parents = tuple(int(p) for p in data.parents)
        constant, directions = self._linear_terms(data, num_betas)
        self.register_buffer("blend_constant", torch.as_tensor(constant, dtype=dtype))  # (3V + 6J,)
        self.register_buffer("blend_dirs", torch.as_tensor(directions, dtype=dtype).contiguous())  # (S + 9(J-1), ·)
        self.register_buffer("weights_t", torch.as_tensor(data.weights.T, dtype=dtype).contiguous())  # (J, V)
        self.register_buffer("faces", torch.as_tensor(data.faces, dtype=torch.int64), persistent=False)
        identity = torch.eye(4, dtype=dtype).view(1, 1, 4, 4)
        self.register_buffer("_identity", identity, persistent=False)
        self.register_buffer("_bottom_row", identity[:, :, 3:], persistent=False)
        self._jumps = [torch.as_tensor(ancestors) for ancestors in ancestor_jumps(data.parents)]

    @staticmethod
    def _linear_terms(data: SmplModelData, num_betas: int) -> tuple[np.ndarray, np.ndarray]:
        """Constant (3V + 6J,) and directions (S + 9(J-1), 3V + 6J) of everything linear in [β, vec(R_1..R_J-1)].

        Columns: rest vertices coordinate-major (all x, all y, all z: index c·V + v, for long contiguous rows in
        skinning), then rest joints (J, 3), then each joint's offset from its parent (the root's: its location).
        """
        shapedirs = data.shapedirs[:, :, :num_betas]
        num_pose = data.posedirs.shape[2]
        vertex_shape = shapedirs.transpose(2, 1, 0).reshape(num_betas, -1)  # (S, 3V)
        vertex_pose = data.posedirs.transpose(2, 1, 0).reshape(num_pose, -1)  # (9(J-1), 3V)
        vertex_constant = data.v_template.T.reshape(-1) - np.tile(np.eye(3).reshape(-1), num_pose // 9) @ vertex_pose
        joint_constant = data.j_regressor @ data.v_template  # (J, 3)
        joint_shape = np.einsum("jv,vcs->sjc", data.j_regressor, shapedirs)  # (S, J, 3)
        has_parent = (data.parents >= 0)[:, None]
        parent = np.maximum(data.parents, 0)
        offset_constant = joint_constant - has_parent * joint_constant[parent]
        offset_shape = joint_shape - has_parent * joint_shape[:, parent]
        constant = np.concatenate([vertex_constant, joint_constant.reshape(-1), offset_constant.reshape(-1)])
        joint_columns = np.concatenate([joint_shape.reshape(num_betas, -1), offset_shape.reshape(num_betas, -1)], 1)
        directions = np.block(
            [[vertex_shape, joint_columns], [vertex_pose, np.zeros((num_pose, joint_columns.shape[1]))]]
        )
        return constant, directions

    @property
    def dtype(self) -> torch.dtype:
        return self.blend_dirs.dtype

    @classmethod
    def from_file(cls, path: str | Path, num_betas: int = 10, dtype: torch.dtype = torch.float32) -> Smpl:
        """Load an official SMPL .pkl (no chumpy needed) or an .npz with the same keys; see `load_smpl_model`."""
        return cls(load_smpl_model(path), num_betas=num_betas, dtype=dtype)

    def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def]
        """Move the index tensors along with the buffers so that `.to(device)` is the only call needed."""
        module = super()._apply(fn, recurse)
        self._jumps = [index.to(self.blend_dirs.device) for index in self._jumps]
        return module

    def forward(self, betas: torch.Tensor, pose: torch.Tensor, transl: torch.Tensor | None = None) -> SmplOutput:
        """Pose and shape the mesh.

        Args:
            betas: (B, S) shape coefficients (S = `num_betas`).
            pose: (B, 3J) or (B, J, 3) axis-angle radians, or (B, J, 3, 3) rotation matrices; joint 0 is the global
                orientation.
            transl: optional (B, 3) translation added to vertices and joints, metres.
        Returns:
            SmplOutput with vertices (B, V, 3) and joints (B, J, 3).
        """
        rotations = self.pose_to_rotations(pose)
        batch, num_joints = rotations.shape[:2]
        coefficients = torch.cat([betas, rotations[:, 1:].reshape(batch, -1)], dim=1)
        linear = torch.addmm(self.blend_constant, coefficients, self.blend_dirs)
        vertices_rest, joints_rest, offsets = linear.split([3 * self.num_vertices, 3 * num_joints, 3 * num_joints], 1)
        transforms, joints = self._forward_kinematics(
            rotations, joints_rest.view(batch, num_joints, 3), offsets.view(batch, num_joints, 3)
        )
        vertices = self._skin(transforms, vertices_rest.view(batch, 3, -1)).transpose(1, 2)
        if transl is not None:
            vertices = vertices + transl.unsqueeze(1)
            joints = joints + transl.unsqueeze(1)
        return SmplOutput(vertices=vertices, joints=joints, rotations=rotations)

    def pose_to_rotations(self, pose: torch.Tensor) -> torch.Tensor:
        """Axis-angle (B, 3J) / (B, J, 3) or matrices (B, J, 3, 3) → rotation matrices (B, J, 3, 3)."""
        rotations = pose if pose.ndim == 4 else axis_angle_to_matrix(pose.reshape(pose.shape[0], -1, 3))
        if rotations.shape[1:] != (self.num_joints, 3, 3):
            raise ValueError(f"pose must describe {self.num_joints} joints, got shape {tuple(pose.shape)}")
        return rotations

    def _forward_kinematics(
        self, rotations: torch.Tensor, joints_rest: torch.Tensor, offsets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Compose parent-relative transforms into root-relative ones by pointer jumping.

        Args:
            rotations: (B, J, 3, 3) local rotations; joints_rest: (B, J, 3) rest joint locations, metres;
            offsets: (B, J, 3) rest offsets from each joint's parent (the root: its location), metres.
        Returns:
            skinning transforms (B, J, 3, 4) mapping rest-pose points to posed points, and posed joints (B, J, 3).
        """
        batch, num_joints = rotations.shape[:2]
        local = torch.cat([rotations, offsets.unsqueeze(-1)], dim=-1)  # (B, J, 3, 4)
        local = torch.cat([local, self._bottom_row.expand(batch, num_joints, 1, 4)], dim=-2)
        world = torch.cat([local, self._identity.expand(batch, 1, 4, 4)], dim=1)  # + the virtual node above the root
        for ancestors in self._jumps:
            world = world.index_select(1, ancestors) @ world
        world = world[:, :num_joints, :3]  # (B, J, 3, 4) joint frame → model frame
        posed_joints = world[..., 3]
        rest_shift = (world[..., :3] @ joints_rest.unsqueeze(-1)).squeeze(-1)
        transforms = torch.cat([world[..., :3], (posed_joints - rest_shift).unsqueeze(-1)], dim=-1)
        return transforms, posed_joints

    def _skin(self, transforms: torch.Tensor, vertices_rest: torch.Tensor) -> torch.Tensor:
        """Linear blend skinning: transforms (B, J, 3, 4), rest vertices (B, 3, V) → posed vertices (B, 3, V)."""
        batch = transforms.shape[0]
        blended = (transforms.flatten(2).transpose(1, 2) @ self.weights_t).view(batch, 3, 4, -1)  # (B, 3, 4, V)
        x, y, z = vertices_rest.unsqueeze(1).unbind(2)  # each (B, 1, V)
        posed = torch.addcmul(blended[:, :, 3], blended[:, :, 0], x)
        posed = torch.addcmul(posed, blended[:, :, 1], y)
        return torch.addcmul(posed, blended[:, :, 2], z)
