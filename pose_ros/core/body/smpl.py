"""SMPL body model as a batched torch layer (Loper et al., SIGGRAPH Asia 2015).

M(β, θ) = LBS(T̄ + B_S(β) + B_P(θ), J(β), θ, W): template → shape blendshapes → joint regression → pose blendshapes
(from R(θ) − I of the 23 non-root joints) → forward kinematics on the joint tree → linear blend skinning.

What makes it fast (same results as the textbook order, up to float round-off):
- joints are regressed from precomputed `J_regressor @ T̄` and `J_regressor @ S` (24 × 10 numbers per axis) instead
  of from the 6890 shaped vertices;
- shape and pose blendshapes are one matrix product [β, R] @ [S; P] added to the template (`torch.addmm`), with
  the constant −P·vec(I) of the textbook (R − I) features folded into that template;
- forward kinematics composes all joints of one tree depth in one batched matmul (8 levels for SMPL, not 23 steps),
  on joints stored in breadth-first order so that each level is a contiguous block;
- skinning blends 3 × 4 affine transforms (not 4 × 4) and applies them as three fused multiply-adds over
  coordinate-major vertex rows.
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


def tree_levels(parents: np.ndarray) -> list[np.ndarray]:
    """Group the non-root joints of a tree by depth: level d holds the joints whose parent is at depth d - 1."""
    depth = np.zeros(len(parents), np.int64)
    for joint in range(1, len(parents)):
        depth[joint] = depth[parents[joint]] + 1
    return [np.flatnonzero(depth == level) for level in range(1, int(depth.max()) + 1)]


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
        # Vertex arrays are stored coordinate-major (all x, then all y, then all z: index c·V + v) so that skinning
        # runs on long contiguous rows.
        shapedirs = data.shapedirs[:, :, :num_betas]
        shape_rows = shapedirs.transpose(2, 1, 0).reshape(num_betas, -1)  # (S, 3V)
        pose_rows = data.posedirs.transpose(2, 1, 0).reshape(data.posedirs.shape[2], -1)  # (9(J-1), 3V)
        # The pose blendshapes are linear in R - I; folding -P·vec(I) into the template lets the forward use R as is.
        template = data.v_template.T.reshape(-1) - np.tile(np.eye(3).reshape(-1), self.num_joints - 1) @ pose_rows
        joint_dirs = np.einsum("jv,vcs->sjc", data.j_regressor, shapedirs).reshape(num_betas, -1)  # (S, 3J)
        self.register_buffer("template_offset", torch.as_tensor(template, dtype=dtype))  # (3V,)
        # (S + 9(J-1), 3V): the shape directions, then the pose directions.
        blend_dirs = np.concatenate([shape_rows, pose_rows], axis=0)
        self.register_buffer("blend_dirs", torch.as_tensor(blend_dirs, dtype=dtype).contiguous())
        self.register_buffer("joint_template", torch.as_tensor(data.j_regressor @ data.v_template, dtype=dtype))
        self.register_buffer("joint_dirs", torch.as_tensor(joint_dirs, dtype=dtype))
        self.register_buffer("weights_t", torch.as_tensor(data.weights.T, dtype=dtype).contiguous())  # (J, V)
        self.register_buffer("faces", torch.as_tensor(data.faces, dtype=torch.int64), persistent=False)
        self.parents = tuple(int(p) for p in data.parents)
        self._init_tree(data.parents, dtype)

    def _init_tree(self, parents: np.ndarray, dtype: torch.dtype) -> None:
        """Index tensors for forward kinematics in breadth-first order, where each tree level is a contiguous block
        and the parents of one level are a gather from the previous block."""
        levels = tree_levels(parents)
        order = np.concatenate([[0], *levels])
        position = np.empty_like(order)
        position[order] = np.arange(len(order))
        self._level_slices: list[tuple[int, int]] = []
        level_parents = []
        previous_start, start = 0, 1
        for level in levels:
            self._level_slices.append((start, start + len(level)))
            level_parents.append(torch.as_tensor(position[parents[level]] - previous_start))
            previous_start, start = start, start + len(level)
        self._level_parents = level_parents
        self._bfs_order = torch.as_tensor(order)
        self._bfs_inverse = torch.as_tensor(position)
        self._parent_index = torch.as_tensor(np.maximum(parents, 0))
        self.register_buffer("_has_parent", torch.as_tensor(parents >= 0, dtype=dtype).view(1, -1, 1), False)
        self.register_buffer("_bottom_row", torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=dtype).view(1, 1, 1, 4), False)

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
        device = self.template_offset.device
        self._level_parents = [index.to(device) for index in self._level_parents]
        self._bfs_order = self._bfs_order.to(device)
        self._bfs_inverse = self._bfs_inverse.to(device)
        self._parent_index = self._parent_index.to(device)
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
        batch = rotations.shape[0]
        coefficients = torch.cat([betas, rotations[:, 1:].reshape(batch, -1)], dim=1)
        vertices_rest = torch.addmm(self.template_offset, coefficients, self.blend_dirs).view(batch, 3, -1)
        joints_rest = self.joint_template + (betas @ self.joint_dirs).view(batch, -1, 3)
        transforms, joints = self._forward_kinematics(rotations, joints_rest)
        vertices = self._skin(transforms, vertices_rest).transpose(1, 2)
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
        self, rotations: torch.Tensor, joints_rest: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Compose local transforms along the tree, one depth level at a time.

        Args:
            rotations: (B, J, 3, 3) local rotations; joints_rest: (B, J, 3) rest joint locations, metres.
        Returns:
            skinning transforms (B, J, 3, 4) mapping rest-pose points to posed points, and posed joints (B, J, 3).
        """
        batch, num_joints = rotations.shape[:2]
        offsets = joints_rest - joints_rest.index_select(1, self._parent_index) * self._has_parent  # root: location
        local = torch.cat([rotations, offsets.unsqueeze(-1)], dim=-1)  # (B, J, 3, 4)
        local = torch.cat([local, self._bottom_row.expand(batch, num_joints, 1, 4)], dim=-2)  # (B, J, 4, 4)
        local = local.index_select(1, self._bfs_order)
        blocks = [local[:, :1]]
        for (start, stop), parents in zip(self._level_slices, self._level_parents, strict=True):
            blocks.append(blocks[-1].index_select(1, parents) @ local[:, start:stop])
        world = torch.cat(blocks, dim=1).index_select(1, self._bfs_inverse)  # (B, J, 4, 4) joint → world
        world = world[:, :, :3]
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
