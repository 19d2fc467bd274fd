"""Fit the free Anny body model (PyPI `anny`, Apache-2.0 code, CC0 MakeHuman data) to each person's keypoints.

Per frame, all people are fitted together in one batched optimisation (Adam) of, per person:
- the root rotation (axis-angle) from Anny's model frame (Z up, front = −Y, metres) to the camera optical frame
  (x right, y down, z forward), and the root translation (position of Anny's origin, at the pelvis) in that frame;
- axis-angle rotations of a reduced set of bones (spine, neck, head, clavicles, shoulders, elbows, hips, knees) in
  Anny's "local-ref" parameterisation (each delta in world-aligned rest axes);
- the 6 phenotype values (gender, age, muscle, weight, height, proportions) in [0, 1].
The loss is the confidence-weighted squared reprojection error of Anny's COCO-17 keypoints (in units of the person's
size in pixels), plus 3D keypoint error when the person has measured 3D keypoints, a pose prior (squared angles,
hinge limits on knees and elbows) and a shape prior (phenotypes near 0.5). A person's previous solution (by track id,
else by box overlap with the previous frame) warm-starts the next frame, so tracked people need few iterations; a new
person starts from the rest pose placed by PnP on its face and torso keypoints.

Speed: the keypoints are a linear regression of the skinned vertices, and linear blend skinning is linear in the bone
transforms, so the regression is folded into per-(keypoint, bone) weights once, and the bones that are not fitted into
their nearest fitted ancestor once per shape (exact, no approximation; see `AnnyBody`). An iteration that moves only
the pose runs forward kinematics over the fitted bones, never Anny's 104 bones or its 13,718-vertex mesh; the
phenotypes move on every `shape_stride`-th iteration. The mesh is skinned once per frame after the fit.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from pose_ros.core import assets
from pose_ros.core.body.decimation import MeshDecimator
from pose_ros.core.body.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from pose_ros.core.boxes import box_iou_xywh
from pose_ros.core.camera import default_camera_matrix
from pose_ros.core.device import resolve_device
from pose_ros.core.person import BodyModelParams, Person, bbox_from_keypoints
from pose_ros.core.skeletons import COCO17, convert_keypoints

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


@dataclass
class AnnyShape:
    """The phenotype-dependent part of Anny, reusable while only the pose changes (B people, J free bones).

    coefficients (B, C) blendshape weights; rest_bone_poses (B, 104, 4, 4);
    chain_before (B, J, 4, 4) and chain_after (J, 4, 4): free bone a's pose is W_a = W_a' · before_a · [D_a | 0] ·
    after_a, with a' its nearest free ancestor (the root, W = I, when none) and D_a its rotation;
    keypoint_anchors (B, 17, J + 1, 4): keypoint k = Σ_a W_a · anchor_ka (homogeneous), group 0 being the root.
    """

    coefficients: torch.Tensor
    rest_bone_poses: torch.Tensor
    chain_before: torch.Tensor
    chain_after: torch.Tensor
    keypoint_anchors: torch.Tensor


class AnnyBody(torch.nn.Module):
    """Anny with its COCO-17 keypoint regressor folded into the skinning weights and the fixed bones.

    For keypoint k = Σ_v r_kv · Σ_j w_vj T_j [v_v; 1] (regression r over skinned vertices, skinning weights w, bone
    transforms T_j (4, 4)), the per-(keypoint, bone) sums A_kj = Σ_v r_kv w_vj v_v (3,) (linear in the shape
    coefficients, like v) and g_kj = Σ_v r_kv w_vj are precomputed: keypoint k = Σ_j T_j [A_kj; g_kj].
    Bones that are not free move rigidly with their nearest free ancestor a (or the root), T_j = W_a · E_j with E_j
    fixed by the shape, so keypoint k = Σ_a W_a · Σ_{j of a} E_j [A_kj; g_kj]: once per shape (`shape`), then a pose
    costs forward kinematics over the J free bones only (`keypoints`). Exact: same numbers as Anny's forward.

    Args:
        model: an `anny.Anny` (see `create_anny_model`).
        bones: names of the bones whose rotations are free; the others stay at rest.
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
        self._init_chain()
        regressor = anny.KeypointsRegressor.coco(model, labels=list(COCO17.keypoints))
        self._fold_regressor(regressor.regression_weights.to(torch.float64))
        self.faces = model.get_triangular_faces().cpu().numpy().astype(np.int64)
        self.register_buffer("hinge_axes", self._hinge_axes())

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype

    @property
    def device(self) -> torch.device:
        return self.model.device

    def _fold_regressor(self, regression: torch.Tensor) -> None:
        """regression (17, V) → buffers keypoint_bone_weights g (17, J), keypoint_bone_points A0 (17, J, 3) and
        keypoint_bone_blendshapes (C, 17, J, 3); computed in float64 on the vertices each keypoint uses."""
        m = self.model
        num_bones = m.bone_count
        skin_w = m.vertex_bone_weights.to(torch.float64)
        skin_j = m.vertex_bone_indices.long()
        template = m.template_vertices.to(torch.float64)
        blend = m.blendshapes.to(torch.float64)
        g = torch.zeros(regression.shape[0], num_bones, dtype=torch.float64, device=regression.device)
        points = torch.zeros(regression.shape[0], num_bones, 3, dtype=torch.float64, device=regression.device)
        shapes = torch.zeros(blend.shape[0], regression.shape[0], num_bones, 3, dtype=torch.float64)
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

    def mean_phenotypes(self, batch: int) -> torch.Tensor:
        """(batch, 6) phenotypes all at their mean 0.5."""
        return torch.full((batch, NUM_PHENOTYPES), 0.5, dtype=self.dtype, device=self.device)

    def _shape_coefficients(self, phenotypes: torch.Tensor) -> torch.Tensor:
        """phenotypes (B, 6) in [0, 1] → Anny blendshape coefficients (B, C)."""
        empty = phenotypes.new_zeros(phenotypes.shape[0], 0)
        return self.model._get_phenotype_blendshape_coefficients(phenotypes, empty, empty)

    def _init_chain(self) -> None:
        """Free-bone tree: `free_parent` (J,) position of each free bone's nearest free ancestor in the free list
        (-1: the root), free bones in parent-first order; `bone_group` (104,) one-hot (104, J + 1) of each bone's
        nearest free ancestor-or-self (column 0: the root)."""
        parents = [int(p) for p in self.model.bone_parents]
        free = {int(b): i for i, b in enumerate(self.bone_indices.tolist())}

        def free_ancestor(bone: int) -> int:  # nearest free ancestor-or-self, -1 for the root
            while bone >= 0 and bone not in free:
                bone = parents[bone]
            return free.get(bone, -1)

        self.free_parent = [free_ancestor(parents[int(b)]) for b in self.bone_indices.tolist()]
        self.free_order = sorted(range(len(free)), key=lambda i: self._depth(int(self.bone_indices[i]), parents))
        groups = torch.tensor([free_ancestor(bone) + 1 for bone in range(len(parents))], device=self.device)
        self.register_buffer("bone_group", torch.nn.functional.one_hot(groups, len(free) + 1).to(self.dtype))

    @staticmethod
    def _depth(bone: int, parents: list[int]) -> int:
        depth = 0
        while parents[bone] >= 0:
            bone, depth = parents[bone], depth + 1
        return depth

    def shape(self, phenotypes: torch.Tensor) -> AnnyShape:
        """Everything that depends on the phenotypes (B, 6) in [0, 1] only (see `AnnyShape`)."""
        coeffs = self._shape_coefficients(phenotypes)
        rest = self.rest_bone_poses(coeffs)
        points = self.keypoint_bone_points + torch.einsum("bc,ckjd->bkjd", coeffs, self.keypoint_bone_blendshapes)
        eye = torch.eye(4, dtype=self.dtype, device=self.device)
        identity = eye.expand(coeffs.shape[0], self.model.bone_count, 4, 4)
        transforms, poses = self.model.get_bone_transforms(identity, rest, "local-ref")  # all deltas identity
        free_poses = poses[:, self.bone_indices]  # W⁰_a
        anchor_poses = torch.cat([eye.expand(coeffs.shape[0], 1, 4, 4), free_poses], dim=1)  # group 0: root, W = I
        parent_poses = anchor_poses[:, [p + 1 for p in self.free_parent]]  # W⁰_a'
        after = eye.repeat(len(self.bones), 1, 1)
        after[:, :3, :3] = self.model.reference_bone_orientations[self.bone_indices]  # [U_a | 0]
        before = _rigid_inverse(parent_poses) @ free_poses @ _rigid_inverse(after)
        # E_j = (W⁰ of j's group)⁻¹ · T⁰_j, applied to [A_kj; g_kj] and summed per group.
        group_poses = anchor_poses[:, self.bone_group.argmax(dim=1)]
        fixed = _rigid_inverse(group_poses) @ transforms  # (B, 104, 4, 4)
        moved = torch.einsum("bjde,bkje->bkjd", fixed[:, :, :3, :3], points) + torch.einsum(
            "bjd,kj->bkjd", fixed[:, :, :3, 3], self.keypoint_bone_weights
        )
        homogeneous = torch.cat([moved, self.keypoint_bone_weights[None, :, :, None].expand_as(moved[..., :1])], -1)
        anchors = torch.einsum("bkje,ja->bkae", homogeneous, self.bone_group)
        return AnnyShape(coeffs, rest, before, after, anchors)

    def bone_transforms(self, bone_rotvecs: torch.Tensor, shape: AnnyShape) -> torch.Tensor:
        """Skinning transforms (B, 104, 4, 4) of Anny's bones for free-bone rotations (B, J, 3) radians and a
        shape, with the root at rest (identity)."""
        batch = bone_rotvecs.shape[0]
        eye = torch.eye(4, dtype=self.dtype, device=self.device)
        deltas = eye.expand(batch, self.model.bone_count, 4, 4).clone()
        deltas[:, self.bone_indices, :3, :3] = axis_angle_to_matrix(bone_rotvecs)
        return self.model.get_bone_transforms(deltas, shape.rest_bone_poses, "local-ref")[0]

    def rest_bone_poses(self, coeffs: torch.Tensor) -> torch.Tensor:
        """Rest poses (B, 104, 4, 4) of Anny's bones for blendshape coefficients (B, C).

        Same maths as Anny's "cached" bone orientation (heads and orientation matrices linear in the coefficients,
        projected on the nearest rotation), with the projection done by a batched 3×3 SVD: on a CPU its gradient is
        an order of magnitude cheaper than the eigen-solver Anny uses, which dominated an iteration.
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

    def keypoints(self, bone_rotvecs: torch.Tensor, shape: AnnyShape) -> torch.Tensor:
        """COCO-17 keypoints (B, 17, 3) metres in Anny's model frame for bone rotations (B, J, 3) and a shape."""
        rotations = torch.zeros_like(shape.chain_before)
        rotations[..., :3, :3] = axis_angle_to_matrix(bone_rotvecs)
        rotations[..., 3, 3] = 1.0
        local = shape.chain_before @ rotations @ shape.chain_after  # (B, J, 4, 4)
        poses: list[torch.Tensor | None] = [None] * len(self.bones)
        for a in self.free_order:
            parent = self.free_parent[a]
            poses[a] = local[:, a] if parent < 0 else poses[parent] @ local[:, a]
        eye = torch.eye(4, dtype=self.dtype, device=self.device).expand(bone_rotvecs.shape[0], 4, 4)
        frames = torch.stack([eye, *poses], dim=1)[:, :, :3, :]  # (B, J + 1, 3, 4)
        return torch.einsum("bade,bkae->bkd", frames, shape.keypoint_anchors)

    def vertices(self, bone_rotvecs: torch.Tensor, shape: AnnyShape) -> torch.Tensor:
        """Skinned mesh vertices (B, 13718, 3) metres in Anny's model frame."""
        transforms = self.bone_transforms(bone_rotvecs, shape)
        return self.model.get_skinned_vertices(self.model.get_rest_vertices(shape.coefficients), transforms)

    def rest_vertices(self) -> np.ndarray:
        """(V, 3) float64 vertices of the mean-phenotype rest mesh, metres (e.g. to plan a decimation)."""
        with torch.no_grad():
            zero = torch.zeros(1, len(self.bones), 3, dtype=self.dtype, device=self.device)
            return self.vertices(zero, self.shape(self.mean_phenotypes(1)))[0].to(torch.float64).cpu().numpy()


@dataclass
class AnnyFitSettings:
    """How `AnnyFitter` fits Anny to the people of a frame.

    Attributes:
        cold_iterations: Adam steps for a frame with a person seen for the first time.
        warm_iterations: Adam steps when every person starts from its previous solution.
        shape_every: frames where everybody starts warm refine the phenotypes only every n-th frame (1: always),
            (a pose-only iteration costs a fraction of one that moves the phenotypes); cold frames always fit them.
        shape_stride: on frames that fit the phenotypes, every n-th iteration moves them, the others only the pose.
        learning_rate: Adam step size (radians for rotations, metres for x/y, log-units for depth), decaying
            linearly to a tenth over the iterations.
        warm_learning_rate: the same when every person starts warm (small steps around the previous solution).
        time_budget_ms: wall time for one `fit` call (≤ 0: no limit): iterations stop when the next one plus the
            meshes (timed on the previous frame) would exceed it; at least one iteration runs.
        min_confidence: keypoints below this confidence are ignored.
        min_keypoints: people with fewer confident COCO-17 keypoints get no fit.
        pose_prior_weight: weight of the squared bone angles (radians²).
        hinge_weight: weight of elbow/knee bending the wrong way or off their hinge axis (radians²).
        shape_prior_weight: weight of the phenotypes' squared distance to the mean 0.5.
        keypoints_3d_weight: weight of the 3D keypoint error when people carry 3D keypoints (robust: about
            (error / keypoints_3d_scale_m)² when small, at most 1 per keypoint, so wrong depths cannot dominate).
        keypoints_3d_scale_m: error at which a 3D keypoint's cost is half its maximum, metres.
        iou_threshold: minimum box IoU to warm-start an untracked person from the previous frame.
        max_track_age: forget a tracked person's solution after this many frames without it.
        bones: Anny bones whose rotations are fitted.
        device: "auto", "cpu", "cuda" or "cuda:N".
    """

    cold_iterations: int = 80
    warm_iterations: int = 20
    shape_every: int = 5
    shape_stride: int = 4
    learning_rate: float = 0.05
    warm_learning_rate: float = 0.03
    time_budget_ms: float = 500.0
    min_confidence: float = 0.3
    min_keypoints: int = 6
    pose_prior_weight: float = 1e-3
    hinge_weight: float = 1e-2
    shape_prior_weight: float = 1e-3
    keypoints_3d_weight: float = 1.0
    keypoints_3d_scale_m: float = 0.1
    iou_threshold: float = 0.3
    max_track_age: int = 30
    bones: tuple[str, ...] = DEFAULT_BONES
    device: str = "auto"

    def validate(self) -> None:
        """Raise ValueError naming the first field with an unusable value."""
        checks = {
            "cold_iterations": self.cold_iterations >= 1,
            "warm_iterations": self.warm_iterations >= 1,
            "shape_every": self.shape_every >= 1,
            "shape_stride": self.shape_stride >= 1,
            "learning_rate": self.learning_rate > 0,
            "warm_learning_rate": self.warm_learning_rate > 0,
            "min_confidence": 0.0 <= self.min_confidence <= 1.0,
            "min_keypoints": 4 <= self.min_keypoints <= 17,
            "pose_prior_weight": self.pose_prior_weight >= 0,
            "hinge_weight": self.hinge_weight >= 0,
            "shape_prior_weight": self.shape_prior_weight >= 0,
            "keypoints_3d_weight": self.keypoints_3d_weight >= 0,
            "keypoints_3d_scale_m": self.keypoints_3d_scale_m > 0,
            "iou_threshold": 0.0 < self.iou_threshold <= 1.0,
            "max_track_age": self.max_track_age >= 0,
            "bones": len(self.bones) > 0 and len(set(self.bones)) == len(self.bones),
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"AnnyFitSettings.{name} has an unusable value: {getattr(self, name)!r}")


@dataclass
class AnnyState:
    """One person's solution, reused to warm-start the next frame (float64 numpy).

    rotation (3, 3) Anny model frame → camera optical frame; translation (3,) m; bones (J, 3) axis-angle radians;
    phenotypes (6,) in [0, 1]; box (4,) x, y, w, h px of the keypoints it was fitted to.
    """

    rotation: np.ndarray
    translation: np.ndarray
    bones: np.ndarray
    phenotypes: np.ndarray
    box: np.ndarray
    frame: int = 0

    def is_finite(self) -> bool:
        """False when any parameter is NaN or infinite (a diverged fit)."""
        arrays = (self.rotation, self.translation, self.bones, self.phenotypes)
        return all(bool(np.isfinite(a).all()) for a in arrays)


@dataclass
class AnnyFitReport:
    """What the last `AnnyFitter.fit` did: people fitted, how many started warm, Adam steps, wall time (ms) of the
    optimisation and of the mesh, and per fitted person the mean reprojection error (px) of its confident keypoints."""

    people: int = 0
    warm: int = 0
    iterations: int = 0
    fit_ms: float = 0.0
    mesh_ms: float = 0.0
    reprojection_px: list[float] = field(default_factory=list)


@dataclass
class _Targets:
    """Batched observations of the fitted people (torch, B rows)."""

    xy: torch.Tensor  # (B, 17, 2) px
    weight: torch.Tensor  # (B, 17) confidence, 0 when ignored
    scale: torch.Tensor  # (B,) person size px
    xyz: torch.Tensor  # (B, 17, 3) m, camera frame
    weight_3d: torch.Tensor  # (B, 17) confidence of 3D keypoints, 0 when absent


def _rotation_about_y(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def coco17_observations(person: Person, min_confidence: float) -> tuple[np.ndarray, np.ndarray] | None:
    """The person's keypoints (17, 2) px and confidences (17,) in COCO-17 order (0 below `min_confidence` or
    non-finite), or None when its layout has no conversion to COCO-17."""
    try:
        xy, conf = convert_keypoints(person.keypoints_xy, person.confidences, person.layout, COCO17.name)
    except KeyError:
        return None
    xy = np.asarray(xy, np.float64)
    conf = np.where((np.asarray(conf) >= min_confidence) & np.isfinite(xy).all(axis=1), conf, 0.0)
    return np.nan_to_num(xy), conf.astype(np.float64)


class AnnyFitter:
    """Fits Anny to every person of each frame, warm-starting from each person's previous solution.

    Args:
        settings: see `AnnyFitSettings`.
        body: a prepared `AnnyBody` (built from `create_anny_model` on the settings' device and with the settings'
            bones when None; a given body's bones are the ones fitted).
    Raises ValueError for unusable settings.
    """

    # Limb segments (COCO-17 indices) used to guess a person's depth from its size in pixels.
    _SIZE_SEGMENTS = ((5, 11), (6, 12), (5, 6), (11, 12), (11, 13), (12, 14), (13, 15), (14, 16), (5, 7), (6, 8))
    # Keypoints that move little with the pose (face, shoulders, hips): the rigid first guess fits them.
    _RIGID_KEYPOINTS = (0, 1, 2, 3, 4, 5, 6, 11, 12)

    def __init__(self, settings: AnnyFitSettings | None = None, body: AnnyBody | None = None) -> None:
        self.settings = settings or AnnyFitSettings()
        self.settings.validate()
        if body is None:
            body = AnnyBody(create_anny_model(resolve_device(self.settings.device)), self.settings.bones)
        self.body = body
        self.faces = body.faces
        self.report = AnnyFitReport()
        self._tracks: dict[int, AnnyState] = {}
        self._previous: list[AnnyState] = []
        self._frame = 0
        self._decimators: dict[int, MeshDecimator] = {}
        self._mesh_ms_per_person = 0.0  # measured on the last frame, reserved out of the time budget
        with torch.no_grad():
            zero = torch.zeros(1, len(body.bones), 3, dtype=body.dtype, device=body.device)
            self._rest_keypoints = body.keypoints(zero, body.shape(body.mean_phenotypes(1)))[0].double().cpu().numpy()

    def reset(self) -> None:
        """Forget every previous solution (e.g. when the camera or the video changes)."""
        self._tracks.clear()
        self._previous = []

    def decimator(self, target_faces: int) -> MeshDecimator:
        """Vertex-clustering plan to at most `target_faces` faces, built once on Anny's rest mesh (cached)."""
        if target_faces not in self._decimators:
            self._decimators[target_faces] = MeshDecimator(self.body.rest_vertices(), self.faces, target_faces)
        return self._decimators[target_faces]

    def fit(self, people: list[Person], camera_matrix: np.ndarray | None, image_size: tuple[int, int]) -> None:
        """Fit Anny to each person with enough confident keypoints, in place: `person.body_model` (name "anny") and,
        for COCO-17 people without measured 3D keypoints, `person.keypoints_3d` (17, 3) m; others are left as is.

        Measured `keypoints_3d` (camera optical frame, e.g. from depth) become 3D targets as well.

        Args:
            people: one frame's people (any layout convertible to COCO-17).
            camera_matrix: (3, 3) intrinsics (CameraInfo K), or None for `default_camera_matrix(width, height)`.
            image_size: (width, height) px of the image the keypoints are in.
        """
        start = time.perf_counter()
        self._frame += 1
        chosen, observations = [], []
        for person in people:
            obs = coco17_observations(person, self.settings.min_confidence)
            if obs is not None and int((obs[1] > 0).sum()) >= self.settings.min_keypoints:
                chosen.append(person)
                observations.append(obs)
        self.report = AnnyFitReport(people=len(chosen))
        if not chosen:
            self._previous = []
            return
        k = np.asarray(default_camera_matrix(*image_size) if camera_matrix is None else camera_matrix, np.float64)
        starts = self._initial_states(chosen, observations, k)
        self.report.warm = sum(warm for _, warm in starts)
        targets = self._targets(chosen, observations)
        states = self._optimise([s for s, _ in starts], [w for _, w in starts], targets, k, start)
        self.report.fit_ms = (time.perf_counter() - start) * 1e3
        finite = [i for i, state in enumerate(states) if state.is_finite()]  # a diverged fit is dropped, not kept
        chosen, states, observations = ([items[i] for i in finite] for items in (chosen, states, observations))
        self.report.people = len(chosen)
        self._publish(chosen, states, observations, k)
        self.report.mesh_ms = (time.perf_counter() - start) * 1e3 - self.report.fit_ms
        self._mesh_ms_per_person = self.report.mesh_ms / max(len(chosen), 1)
        self._remember(chosen, states)

    # ----- starting points -----

    def _initial_states(
        self, people: list[Person], observations: list[tuple[np.ndarray, np.ndarray]], k: np.ndarray
    ) -> list[tuple[AnnyState, bool]]:
        """Per person: its previous solution (by track id, else by box IoU) and True, or a cold guess and False."""
        starts: list[tuple[AnnyState, bool]] = []
        free = list(range(len(self._previous)))
        for person, (xy, conf) in zip(people, observations, strict=True):
            box = bbox_from_keypoints(xy, conf).astype(np.float64)
            state = self._tracks.get(person.id) if person.tracked else None
            if state is None and not person.tracked and free:
                ious = box_iou_xywh(box, np.stack([self._previous[i].box for i in free]))[0]
                best = int(np.argmax(ious))
                if ious[best] >= self.settings.iou_threshold:
                    state = self._previous[free.pop(best)]
            if state is not None:
                starts.append((AnnyState(**{**state.__dict__, "box": box}), True))
            else:
                starts.append((self._cold_state(xy, conf, box, k), False))
        return starts

    def _cold_state(self, xy: np.ndarray, conf: np.ndarray, box: np.ndarray, k: np.ndarray) -> AnnyState:
        """Rest pose, mean shape, facing the camera or away from it (from the left/right order of shoulders and
        hips), at the depth where Anny's limb lengths match the pixel ones, placed over the keypoints, then refined
        by PnP."""
        rest = self._rest_keypoints
        pairs = [(a, b) for a, b in ((5, 6), (11, 12)) if conf[a] > 0 and conf[b] > 0]
        facing = sum(xy[a, 0] - xy[b, 0] for a, b in pairs) >= 0  # the body's left shows on the image right
        rotation = OPTICAL_FROM_ANNY if facing else _rotation_about_y(math.pi) @ OPTICAL_FROM_ANNY
        ratios = [
            np.linalg.norm(xy[a] - xy[b]) / np.linalg.norm(rest[a] - rest[b])
            for a, b in self._SIZE_SEGMENTS
            if conf[a] > 0 and conf[b] > 0
        ]
        focal = 0.5 * (k[0, 0] + k[1, 1])
        # Foreshortening only shortens segments: trust the longer ones. Fallback: a 1.7 m person as tall as the box.
        pixels_per_metre = float(np.percentile(ratios, 80)) if ratios else max(box[3], 1.0) / 1.7
        depth = focal / max(pixels_per_metre, 1e-6)
        seen = conf > 0
        posed = rest[seen] @ rotation.T
        centre_px = xy[seen].mean(axis=0)
        centre = np.array([(centre_px[0] - k[0, 2]) / k[0, 0], (centre_px[1] - k[1, 2]) / k[1, 1]]) * depth
        translation = np.array([*(centre - posed[:, :2].mean(axis=0)), depth - posed[:, 2].mean()])
        rotation, translation = self._refine_rigid(rotation, translation, xy, conf, k)
        bones = np.zeros((len(self.body.bones), 3))
        return AnnyState(rotation, translation, bones, np.full(NUM_PHENOTYPES, 0.5), box)

    def _refine_rigid(
        self, rotation: np.ndarray, translation: np.ndarray, xy: np.ndarray, conf: np.ndarray, k: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rigid pose of the rest body from its head and torso keypoints (PnP, Levenberg–Marquardt from the guess);
        the guess stays when too few of them are seen or the result is implausible (behind, too near, upside down).
        """
        rigid = [i for i in self._RIGID_KEYPOINTS if conf[i] > 0]
        if len(rigid) < 4:
            return rotation, translation
        ok, rvec, tvec = cv2.solvePnP(
            self._rest_keypoints[rigid],
            xy[rigid],
            k,
            None,
            cv2.Rodrigues(rotation)[0],
            translation.reshape(3, 1).copy(),
            useExtrinsicGuess=True,
            flags=cv2.SOLVEPNP_ITERATIVE,
        )
        refined, moved = cv2.Rodrigues(rvec)[0], tvec.reshape(3)
        upright = (refined @ np.array([0.0, 0.0, 1.0]))[1] < -0.5  # Anny's up points up in the image
        if ok and upright and 0.3 * translation[2] < moved[2] < 3.0 * translation[2]:
            return refined, moved
        return rotation, translation

    def _targets(self, people: list[Person], observations: list[tuple[np.ndarray, np.ndarray]]) -> _Targets:
        xy = np.stack([o[0] for o in observations])
        conf = np.stack([o[1] for o in observations])
        sizes = [np.hypot(*bbox_from_keypoints(x, c)[2:]) for x, c in observations]
        xyz = np.zeros((len(people), 17, 3))
        conf_3d = np.zeros((len(people), 17))
        for i, person in enumerate(people):
            fitted_before = person.body_model is not None and person.body_model.name == "anny"
            if person.keypoints_3d is not None and not fitted_before:  # not our own output; same layout as 2D
                points = convert_keypoints(
                    np.asarray(person.keypoints_3d, np.float64), person.confidences, person.layout, COCO17.name
                )[0]
                ok = np.isfinite(points).all(axis=1) & (conf[i] > 0)
                xyz[i, ok], conf_3d[i, ok] = points[ok], conf[i, ok]
        tensor = self._tensor
        return _Targets(tensor(xy), tensor(conf), tensor(np.maximum(sizes, 10.0)), tensor(xyz), tensor(conf_3d))

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(array), dtype=self.body.dtype, device=self.body.device)

    # ----- optimisation -----

    def _optimise(
        self, states: list[AnnyState], warm: list[bool], targets: _Targets, k: np.ndarray, start: float
    ) -> list[AnnyState]:
        """Batched Adam on all people at once, with a linearly decaying step; returns the solutions."""
        s = self.settings
        tensor = self._tensor
        rotation0 = tensor(np.stack([st.rotation for st in states]))
        translations = np.stack([st.translation for st in states])
        phenotypes = np.clip(np.stack([st.phenotypes for st in states]), 0.02, 0.98)
        params = {
            "omega": torch.zeros_like(rotation0[:, :, 0]),
            "xy": tensor(translations[:, :2]),
            "log_depth": tensor(np.log(np.maximum(translations[:, 2], 0.1))),
            "bones": tensor(np.stack([st.bones for st in states])),
            "logits": tensor(np.log(phenotypes / (1 - phenotypes))),
        }
        fit_shape = not all(warm) or self._frame % s.shape_every == 0
        for value in params.values():
            value.requires_grad_(True)
        iterations = s.warm_iterations if all(warm) else s.cold_iterations
        learning_rate = s.warm_learning_rate if all(warm) else s.learning_rate
        optimizer = torch.optim.Adam(params.values(), lr=learning_rate)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 1.0 - 0.9 * i / max(iterations, 1))
        camera = tensor(k)
        done = 0
        mesh_ms = self._mesh_ms_per_person * len(states)  # expected time of the meshes after the iterations
        step_ms = {True: 0.0, False: 0.0}  # longest step so far, with and without the phenotypes
        fixed_shape: AnnyShape | None = None
        while done < iterations:
            shape_step = fit_shape and done % s.shape_stride == 0
            elapsed_ms = (time.perf_counter() - start) * 1e3
            if s.time_budget_ms > 0 and done > 0 and elapsed_ms + step_ms[shape_step] + mesh_ms > s.time_budget_ms:
                break
            step_start = time.perf_counter()
            if not shape_step and fixed_shape is None:  # phenotypes unchanged since: reuse their tensors
                with torch.no_grad():
                    fixed_shape = self.body.shape(torch.sigmoid(params["logits"]))
            optimizer.zero_grad(set_to_none=True)  # no gradient: Adam leaves the phenotypes alone
            self._loss(params, rotation0, targets, camera, None if shape_step else fixed_shape).backward()
            optimizer.step()
            schedule.step()
            fixed_shape = None if shape_step else fixed_shape
            done += 1
            step_ms[shape_step] = max(step_ms[shape_step], (time.perf_counter() - step_start) * 1e3)
        self.report.iterations = done
        return self._states(params, rotation0, states)

    def _pose(
        self, params: dict[str, torch.Tensor], rotation0: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Root rotation (B, 3, 3), translation (B, 3) m and phenotypes (B, 6) from the optimised parameters."""
        rotation = axis_angle_to_matrix(params["omega"]) @ rotation0
        depth = params["log_depth"].exp()
        translation = torch.cat([params["xy"], depth[:, None]], dim=1)
        return rotation, translation, torch.sigmoid(params["logits"])

    def _loss(
        self,
        params: dict[str, torch.Tensor],
        rotation0: torch.Tensor,
        targets: _Targets,
        camera: torch.Tensor,
        fixed_shape: AnnyShape | None,
    ) -> torch.Tensor:
        """Sum over people of the reprojection, 3D, pose and shape terms (scalar); with `fixed_shape` (the shape
        of the current phenotypes) the phenotypes get no gradient."""
        s = self.settings
        rotation, translation, phenotypes = self._pose(params, rotation0)
        if fixed_shape is not None:
            phenotypes = phenotypes.detach()
        keypoints = self.body.keypoints(params["bones"], fixed_shape or self.body.shape(phenotypes))
        points = torch.einsum("bde,bke->bkd", rotation, keypoints) + translation[:, None]
        pixels = project_points(points, camera)
        error_2d = ((pixels - targets.xy) ** 2).sum(-1) / targets.scale[:, None] ** 2
        loss = (targets.weight * error_2d).sum(-1)
        # Geman-McClure: squared for small errors (e²/scale²), saturating at 1 for outliers (depth off the body).
        squared_3d = ((points - targets.xyz) ** 2).sum(-1) / s.keypoints_3d_scale_m**2
        error_3d = squared_3d / (1.0 + squared_3d)
        loss = loss + s.keypoints_3d_weight * (targets.weight_3d * error_3d).sum(-1)
        bones = params["bones"]
        axes = self.body.hinge_axes
        angle = (bones * axes).sum(-1)
        off_axis = ((bones - angle[..., None] * axes) ** 2).sum(-1)
        hinge = (axes.abs().sum(-1) > 0) * (torch.relu(-angle) ** 2 + off_axis)
        loss = loss + s.pose_prior_weight * (bones**2).sum((-1, -2)) + s.hinge_weight * hinge.sum(-1)
        loss = loss + s.shape_prior_weight * ((phenotypes - 0.5) ** 2).sum(-1)
        return loss.sum()

    def _states(
        self, params: dict[str, torch.Tensor], rotation0: torch.Tensor, states: list[AnnyState]
    ) -> list[AnnyState]:
        with torch.no_grad():
            rotation, translation, phenotypes = (x.double().cpu().numpy() for x in self._pose(params, rotation0))
            bones = params["bones"].double().cpu().numpy()
        return [
            AnnyState(rotation[i], translation[i], bones[i], phenotypes[i], st.box, self._frame)
            for i, st in enumerate(states)
        ]

    # ----- results -----

    def _publish(
        self,
        people: list[Person],
        states: list[AnnyState],
        observations: list[tuple[np.ndarray, np.ndarray]],
        k: np.ndarray,
    ) -> None:
        """Mesh, keypoints and parameters of each solution into its person, and the reprojection errors."""
        tensor = self._tensor
        bones = tensor(np.stack([st.bones for st in states]))
        phenotypes = tensor(np.stack([st.phenotypes for st in states]))
        with torch.no_grad():
            shape = self.body.shape(phenotypes)
            vertices = self.body.vertices(bones, shape).double().cpu().numpy()
            keypoints = self.body.keypoints(bones, shape).double().cpu().numpy()
        root = matrix_to_axis_angle(torch.as_tensor(np.stack([st.rotation for st in states]))).numpy()
        names = (ROOT_JOINT, *self.body.bones)
        for i, (person, state) in enumerate(zip(people, states, strict=True)):
            person.body_model = BodyModelParams(
                name="anny",
                betas=state.phenotypes.astype(np.float32),
                pose=np.concatenate([root[i], state.bones.reshape(-1)]).astype(np.float32),
                translation=state.translation.astype(np.float32),
                pose_joint_names=names,
                vertices=(vertices[i] @ state.rotation.T + state.translation).astype(np.float32),
                faces=self.faces,
            )
            points = keypoints[i] @ state.rotation.T + state.translation
            if person.keypoints_3d is None and person.layout == COCO17.name:
                person.keypoints_3d = points.astype(np.float32)
            xy, conf = observations[i]
            seen = conf > 0
            error = np.linalg.norm(project_points_np(points, k) - xy, axis=1)[seen]
            self.report.reprojection_px.append(float(error.mean()))

    def _remember(self, people: list[Person], states: list[AnnyState]) -> None:
        for person, state in zip(people, states, strict=True):
            if person.tracked:
                self._tracks[person.id] = state
        max_age = self.settings.max_track_age
        self._tracks = {i: st for i, st in self._tracks.items() if self._frame - st.frame <= max_age}
        self._previous = [st for person, st in zip(people, states, strict=True) if not person.tracked]


def _rigid_inverse(transforms: torch.Tensor) -> torch.Tensor:
    """Inverse of rigid transforms (..., 4, 4) (rotation transposed)."""
    rotation_t = transforms[..., :3, :3].transpose(-1, -2)
    inverse = torch.zeros_like(transforms)
    inverse[..., :3, :3] = rotation_t
    inverse[..., :3, 3] = -(rotation_t @ transforms[..., :3, 3:]).squeeze(-1)
    inverse[..., 3, 3] = 1.0
    return inverse


def project_points(points: torch.Tensor, camera_matrix: torch.Tensor) -> torch.Tensor:
    """Points (..., 3) m in the camera optical frame → pixels (..., 2); depths clamped to ≥ 5 cm (differentiable)."""
    z = points[..., 2].clamp_min(0.05)
    u = camera_matrix[0, 0] * points[..., 0] / z + camera_matrix[0, 2]
    v = camera_matrix[1, 1] * points[..., 1] / z + camera_matrix[1, 2]
    return torch.stack([u, v], dim=-1)


def project_points_np(points: np.ndarray, camera_matrix: np.ndarray) -> np.ndarray:
    """`pose_ros.core.camera.project` for (N, 3) points (kept here so both projections clamp depth alike)."""
    return project_points(torch.as_tensor(points), torch.as_tensor(camera_matrix)).numpy()
