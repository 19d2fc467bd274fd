"""Fit the free Anny body model (`pose_ros.core.body.anny_body`) to each person's 2D (and optional 3D) keypoints.

Per frame, all people are fitted together, batched, by Levenberg–Marquardt on, per person:
- the root rotation R from Anny's model frame (Z up, front = −Y, metres) to the camera optical frame (x right, y down,
  z forward), updated on the rotation manifold (R ← exp([δω]ₓ) R), and the translation t (3,) m of Anny's origin;
- axis-angle rotations of J bones (spine, neck, head, clavicles, shoulders, elbows, hips, knees; Anny's "local-ref");
- the 6 phenotype values in [0, 1] (as logits), on a person's first frame and every `shape_every`-th frame after.
Cost: confidence-weighted squared reprojection error of Anny's COCO-17 keypoints (in units of the person's size in
pixels), a robust (Geman–McClure) 3D keypoint error when the person carries measured 3D keypoints, a pose prior
(squared angles, hinge limits on knees and elbows) and a shape prior (phenotypes near 0.5).

Why it is cheap: the Jacobian is analytic (each free bone rotates the keypoint mass of its subtree about its joint),
so an iteration is one forward kinematics over the J free bones plus small batched products and a (54 × 54) solve per
person; LM needs a few iterations where Adam needed tens. The phenotypes enter linearised: Anny's shape (the
`AnnyShape` tensors) is exact at the person's previous phenotypes and moves along derivatives taken once, at the
mean shape; the exact shape is recomputed once at the end of a frame that moved the phenotypes (and once midway for
a new person). People are matched to their previous solution by the tracker's ids only (`Person.tracked`); an
untracked person starts afresh every frame. The mesh is skinned once per frame at the end, from rest vertices kept
per track while its shape is unchanged.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from pose_ros.core.body.anny_body import (
    ANNY_VERSION,
    DEFAULT_BONES,
    HINGES,
    NUM_PHENOTYPES,
    OPTICAL_FROM_ANNY,
    ROOT_JOINT,
    AnnyBody,
    AnnyShape,
    anny_cache_dir,
    anny_cache_ready,
    bone_transforms,
    create_anny_model,
    free_bone_poses,
    keypoints_from_poses,
    skin,
)
from pose_ros.core.body.decimation import MeshDecimator
from pose_ros.core.body.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from pose_ros.core.camera import default_camera_matrix, project
from pose_ros.core.device import resolve_device
from pose_ros.core.person import BodyModelParams, Person, bbox_from_keypoints
from pose_ros.core.skeletons import COCO17, convert_keypoints

__all__ = [  # the body model's names stay importable from here (older imports)
    "ANNY_VERSION", "DEFAULT_BONES", "HINGES", "NUM_PHENOTYPES", "OPTICAL_FROM_ANNY", "ROOT_JOINT", "AnnyBody",
    "AnnyFitReport", "AnnyFitSettings", "AnnyFitter", "AnnyShape", "AnnyState", "anny_cache_dir", "anny_cache_ready",
    "coco17_observations", "create_anny_model", "project_points",
]  # fmt: skip

_DTYPE = torch.float64  # the optimisation's dtype (normal equations want it; the tensors are tiny)
_PHENOTYPE_STEP = 0.05  # central-difference step of the shape derivatives at the mean shape
_MIN_DEPTH_M = 0.05


@dataclass(frozen=True)
class AnnyFitSettings:
    """How `AnnyFitter` fits Anny to the people of a frame.

    Attributes:
        cold_iterations: LM iterations for a person seen for the first time (fewer when it converges earlier).
        warm_iterations: LM iterations for a person starting from its previous solution.
        shape_every: a tracked person's phenotypes are refined on every n-th frame (1: always); a new person's on
            its first frame.
        damping: initial LM damping (relative to the diagonal of the normal equations).
        tolerance: a person stops when an iteration lowers its cost by less than this fraction.
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
        max_track_age: forget a tracked person's solution after this many frames without it.
        bones: Anny bones whose rotations are fitted.
        device: "auto", "cpu", "cuda" or "cuda:N".
    """

    cold_iterations: int = 16
    warm_iterations: int = 2
    shape_every: int = 10
    damping: float = 1e-2
    tolerance: float = 1e-3
    time_budget_ms: float = 500.0
    min_confidence: float = 0.3
    min_keypoints: int = 6
    pose_prior_weight: float = 1e-3
    hinge_weight: float = 1e-2
    shape_prior_weight: float = 1e-3
    keypoints_3d_weight: float = 1.0
    keypoints_3d_scale_m: float = 0.1
    max_track_age: int = 30
    bones: tuple[str, ...] = DEFAULT_BONES
    device: str = "auto"

    def validate(self) -> None:
        """Raise ValueError naming the first field with an unusable value."""
        checks = {
            "cold_iterations": self.cold_iterations >= 1,
            "warm_iterations": self.warm_iterations >= 1,
            "shape_every": self.shape_every >= 1,
            "damping": self.damping > 0,
            "tolerance": 0.0 <= self.tolerance < 1.0,
            "min_confidence": 0.0 <= self.min_confidence <= 1.0,
            "min_keypoints": 4 <= self.min_keypoints <= 17,
            "pose_prior_weight": self.pose_prior_weight >= 0,
            "hinge_weight": self.hinge_weight >= 0,
            "shape_prior_weight": self.shape_prior_weight >= 0,
            "keypoints_3d_weight": self.keypoints_3d_weight >= 0,
            "keypoints_3d_scale_m": self.keypoints_3d_scale_m > 0,
            "max_track_age": self.max_track_age >= 0,
            "bones": len(self.bones) > 0 and len(set(self.bones)) == len(self.bones),
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"AnnyFitSettings.{name} has an unusable value: {getattr(self, name)!r}")


@dataclass
class AnnyState:
    """One person's solution (float64 numpy).

    rotation (3, 3) Anny model frame → camera optical frame; translation (3,) m; bones (J, 3) axis-angle radians;
    phenotypes (6,) in [0, 1]; frame: the fitter's frame count when it was fitted.
    """

    rotation: np.ndarray
    translation: np.ndarray
    bones: np.ndarray
    phenotypes: np.ndarray
    frame: int = 0

    def is_finite(self) -> bool:
        """False when any parameter is NaN or infinite (a diverged fit)."""
        arrays = (self.rotation, self.translation, self.bones, self.phenotypes)
        return all(bool(np.isfinite(a).all()) for a in arrays)


@dataclass
class AnnyFitReport:
    """What the last `AnnyFitter.fit` did: people fitted, how many started warm, LM iterations (the most any person
    ran), wall time (ms) of the optimisation and of the meshes, and per fitted person the mean reprojection error
    (px) of its confident keypoints."""

    people: int = 0
    warm: int = 0
    iterations: int = 0
    fit_ms: float = 0.0
    mesh_ms: float = 0.0
    reprojection_px: list[float] = field(default_factory=list)


@dataclass
class _Track:
    """A tracked person's last solution, its exact shape (batch of 1, float64), its rest mesh (1, V, 3) (None until
    meshed) and the frame its phenotypes were last refined on."""

    state: AnnyState
    shape: AnnyShape
    rest_vertices: torch.Tensor | None
    shape_frame: int


@dataclass
class _Targets:
    """Batched observations of the fitted people (float64 torch, N rows)."""

    xy: torch.Tensor  # (N, 17, 2) px
    weight: torch.Tensor  # (N, 17) confidence / size², 0 when ignored
    xyz: torch.Tensor  # (N, 17, 3) m, camera frame
    weight_3d: torch.Tensor  # (N, 17) confidence of 3D keypoints, 0 when absent

    def select(self, index: torch.Tensor) -> _Targets:
        return _Targets(self.xy[index], self.weight[index], self.xyz[index], self.weight_3d[index])


@dataclass
class _Batch:
    """The people being optimised (N rows, float64): parameters, the shape they are linearised at, and which of them
    move their phenotypes."""

    rotation: torch.Tensor  # (N, 3, 3)
    translation: torch.Tensor  # (N, 3) m
    bones: torch.Tensor  # (N, J, 3) rad
    logits: torch.Tensor  # (N, 6) phenotype logits
    base: AnnyShape  # exact at base_phenotypes
    base_phenotypes: torch.Tensor  # (N, 6)
    fit_shape: torch.Tensor  # (N,) bool

    def select(self, index: torch.Tensor) -> _Batch:
        return _Batch(
            self.rotation[index], self.translation[index], self.bones[index], self.logits[index],
            self.base.select(index), self.base_phenotypes[index], self.fit_shape[index],
        )  # fmt: skip


def _rotation_about_y(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _left_jacobian(rotvecs: torch.Tensor) -> torch.Tensor:
    """SO(3) left Jacobians (..., 3, 3) of axis-angle vectors (..., 3): exp(r + δ) ≈ exp(J_l(r) δ) exp(r)."""
    theta_sq = (rotvecs * rotvecs).sum(-1)[..., None, None]
    theta = theta_sq.sqrt()
    small = theta_sq < 1e-8
    safe_sq = torch.where(small, torch.ones_like(theta_sq), theta_sq)
    safe = safe_sq.sqrt()
    a = torch.where(small, 0.5 - theta_sq / 24.0, (1.0 - torch.cos(safe)) / safe_sq)
    b = torch.where(small, 1.0 / 6.0 - theta_sq / 120.0, (safe - torch.sin(safe)) / (safe_sq * safe))
    del theta
    x, y, z = rotvecs.unbind(-1)
    zero = torch.zeros_like(x)
    skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).unflatten(-1, (3, 3))
    eye = torch.eye(3, dtype=rotvecs.dtype, device=rotvecs.device)
    return eye + a * skew + b * (skew @ skew)


def _block_diagonal(blocks: torch.Tensor) -> torch.Tensor:
    """Blocks (..., J, 3, 3) → the block-diagonal matrices (..., 3J, 3J)."""
    j = blocks.shape[-3]
    eye = torch.eye(j, dtype=blocks.dtype, device=blocks.device)
    return torch.einsum("...jde,jk->...jdke", blocks, eye).reshape(*blocks.shape[:-3], 3 * j, 3 * j)


def project_points(points: torch.Tensor, camera_matrix: torch.Tensor) -> torch.Tensor:
    """Points (..., 3) m in the camera optical frame → pixels (..., 2); depths clamped to ≥ 5 cm, so that a body
    pushed behind the camera by a step costs much instead of flipping through the image."""
    z = points[..., 2].clamp_min(_MIN_DEPTH_M)
    u = camera_matrix[0, 0] * points[..., 0] / z + camera_matrix[0, 2]
    v = camera_matrix[1, 1] * points[..., 1] / z + camera_matrix[1, 2]
    return torch.stack([u, v], dim=-1)


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
    """Fits Anny to every person of each frame, warm-starting tracked people from their previous solution.

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
        self._tracks: dict[int, _Track] = {}
        self._frame = 0
        self._decimators: dict[int, MeshDecimator] = {}
        self._mesh_ms_per_person = 0.0  # measured on the last frame, reserved out of the time budget
        self._prepare_constants()

    def _prepare_constants(self) -> None:
        """The mean shape, its derivatives along the 6 phenotypes, the rest keypoints and the prior terms."""
        body, settings = self.body, self.settings
        with torch.no_grad():
            mean = body.mean_phenotypes(1)
            steps = torch.eye(NUM_PHENOTYPES, dtype=body.dtype, device=body.device) * _PHENOTYPE_STEP
            shapes = body.shape(torch.cat([mean, mean + steps, mean - steps])).to(_DTYPE)
            zero = torch.zeros(1, len(body.bones), 3, dtype=body.dtype, device=body.device)
            rest = body.keypoints(zero, body.shape(mean))[0]
        self._mean_shape = shapes.select([0])
        plus, minus = slice(1, 1 + NUM_PHENOTYPES), slice(1 + NUM_PHENOTYPES, None)
        scale = 0.5 / _PHENOTYPE_STEP
        self._d_chain_before = (shapes.chain_before[plus] - shapes.chain_before[minus]) * scale  # (6, J, 4, 4)
        self._d_anchors = (shapes.keypoint_anchors[plus] - shapes.keypoint_anchors[minus]) * scale  # (6, 17, G, 4)
        self._rest_keypoints = rest.double().cpu().numpy()
        axes = body.hinge_axes.to(_DTYPE)
        self._hinge_axes = axes  # (J, 3), zero rows for bones without a hinge
        self._is_hinge = (axes.abs().sum(-1) > 0).to(_DTYPE)  # (J,)
        eye = torch.eye(3, dtype=_DTYPE, device=axes.device)
        # Hessian of the pose prior + the hinges' off-axis term (constant), per bone (J, 3, 3).
        off_axis = eye - axes[:, :, None] * axes[:, None, :]
        self._prior_hessian = settings.pose_prior_weight * eye + settings.hinge_weight * self._is_hinge[
            :, None, None
        ] * (off_axis @ off_axis)
        self._prior_block = _block_diagonal(self._prior_hessian)  # (3J, 3J)
        self._subtree = body.tree.subtree.to(_DTYPE)
        self._chain_after = self._mean_shape.chain_after

    def reset(self) -> None:
        """Forget every previous solution (e.g. when the camera or the video changes)."""
        self._tracks.clear()

    def decimator(self, target_faces: int) -> MeshDecimator:
        """Vertex-clustering plan to at most `target_faces` faces, built once on Anny's rest mesh (cached)."""
        if target_faces not in self._decimators:
            self._decimators[target_faces] = MeshDecimator(self.body.rest_vertices(), self.faces, target_faces)
        return self._decimators[target_faces]

    def fit(self, people: list[Person], camera_matrix: np.ndarray | None, image_size: tuple[int, int]) -> None:
        """Fit Anny to each person with enough confident keypoints, in place: `person.body_model` (name "anny") and,
        for COCO-17 people without measured 3D keypoints, `person.keypoints_3d` (17, 3) m; others are left as is.

        Measured `keypoints_3d` (camera optical frame, e.g. from depth) become 3D targets as well. A tracked person
        (`person.tracked`, `person.id` its track id) starts from its solution of an earlier frame.

        Args:
            people: one frame's people (any layout convertible to COCO-17).
            camera_matrix: (3, 3) intrinsics (CameraInfo K), or None for `default_camera_matrix(width, height)`.
            image_size: (width, height) px of the image the keypoints are in.
        """
        with torch.no_grad():
            self._fit(people, camera_matrix, image_size)

    def _fit(self, people: list[Person], camera_matrix: np.ndarray | None, image_size: tuple[int, int]) -> None:
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
            self._forget_old()
            return
        k = np.asarray(default_camera_matrix(*image_size) if camera_matrix is None else camera_matrix, np.float64)
        tracks = [self._tracks.get(p.id) if p.tracked else None for p in chosen]
        self.report.warm = sum(t is not None for t in tracks)
        batch = self._start_batch(tracks, observations, k)
        targets = self._targets(chosen, observations)
        batch = self._optimise(batch, [t is not None for t in tracks], targets, self._tensor(k), start)
        self.report.fit_ms = (time.perf_counter() - start) * 1e3
        exact = self._exact_shapes(batch, tracks)
        states = self._states(batch)
        refreshed = batch.fit_shape.tolist()
        finite = [i for i, state in enumerate(states) if state.is_finite()]  # a diverged fit is dropped, not kept
        chosen, states, observations, tracks, exact, refreshed = (
            [items[i] for i in finite] for items in (chosen, states, observations, tracks, exact, refreshed)
        )
        self.report.people = len(chosen)
        self._publish(chosen, states, exact, observations, tracks, k, refreshed)
        self.report.mesh_ms = (time.perf_counter() - start) * 1e3 - self.report.fit_ms
        self._mesh_ms_per_person = self.report.mesh_ms / max(len(chosen), 1)
        self._forget_old()

    # ----- starting points -----

    def _start_batch(
        self, tracks: list[_Track | None], observations: list[tuple[np.ndarray, np.ndarray]], k: np.ndarray
    ) -> _Batch:
        """Per person its previous solution, or a cold guess at the mean shape."""
        states, shapes, fit_shape = [], [], []
        for track, (xy, conf) in zip(tracks, observations, strict=True):
            if track is None:
                states.append(self._cold_state(xy, conf, k))
                shapes.append(self._mean_shape)
                fit_shape.append(True)
            else:
                states.append(track.state)
                shapes.append(track.shape)
                fit_shape.append(self._frame - track.shape_frame >= self.settings.shape_every)
        tensor = self._tensor
        phenotypes = np.clip(np.stack([s.phenotypes for s in states]), 1e-3, 1 - 1e-3)
        return _Batch(
            rotation=tensor(np.stack([s.rotation for s in states])),
            translation=tensor(np.stack([s.translation for s in states])),
            bones=tensor(np.stack([s.bones for s in states])),
            logits=tensor(np.log(phenotypes / (1 - phenotypes))),
            base=AnnyShape.cat(shapes),
            base_phenotypes=tensor(phenotypes),
            fit_shape=torch.tensor(fit_shape, device=self.body.device),
        )

    def _cold_state(self, xy: np.ndarray, conf: np.ndarray, k: np.ndarray) -> AnnyState:
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
        box = bbox_from_keypoints(xy, conf)
        # Foreshortening only shortens segments: trust the longer ones. Fallback: a 1.7 m person as tall as the box.
        pixels_per_metre = float(np.percentile(ratios, 80)) if ratios else max(float(box[3]), 1.0) / 1.7
        depth = focal / max(pixels_per_metre, 1e-6)
        seen = conf > 0
        posed = rest[seen] @ rotation.T
        centre_px = xy[seen].mean(axis=0)
        centre = np.array([(centre_px[0] - k[0, 2]) / k[0, 0], (centre_px[1] - k[1, 2]) / k[1, 1]]) * depth
        translation = np.array([*(centre - posed[:, :2].mean(axis=0)), depth - posed[:, 2].mean()])
        rotation, translation = self._refine_rigid(rotation, translation, xy, conf, k)
        bones = np.zeros((len(self.body.bones), 3))
        return AnnyState(rotation, translation, bones, np.full(NUM_PHENOTYPES, 0.5))

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
        sizes = np.maximum([np.hypot(*bbox_from_keypoints(x, c)[2:]) for x, c in observations], 10.0)
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
        return _Targets(tensor(xy), tensor(conf / sizes[:, None] ** 2), tensor(xyz), tensor(conf_3d))

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(array), dtype=_DTYPE, device=self.body.device)

    # ----- the model and its Jacobian -----

    def _shape_at(self, batch: _Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The linearised shape at the batch's phenotypes: chain_before (N, J, 4, 4), keypoint anchors
        (N, 17, G, 4), and the phenotype offsets from the base (N, 6)."""
        offset = torch.sigmoid(batch.logits) - batch.base_phenotypes
        if not bool(batch.fit_shape.any()):  # every shape held: the base is exact
            return batch.base.chain_before, batch.base.keypoint_anchors, offset
        before = batch.base.chain_before + torch.einsum("bi,ijde->bjde", offset, self._d_chain_before)
        anchors = batch.base.keypoint_anchors + torch.einsum("bi,ikgd->bkgd", offset, self._d_anchors)
        return before, anchors, offset

    def _camera_points(self, batch: _Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Keypoints (N, 17, 3) in the camera frame, with the free-bone poses, pivots and anchors they came from."""
        before, anchors, _ = self._shape_at(batch)
        poses, pivots = free_bone_poses(batch.bones, before, self._chain_after, self.body.tree)
        model = keypoints_from_poses(poses, anchors)
        points = torch.einsum("bde,bke->bkd", batch.rotation, model) + batch.translation[:, None]
        return points, poses, pivots, anchors

    def _costs(self, batch: _Batch, points: torch.Tensor, targets: _Targets, camera: torch.Tensor) -> torch.Tensor:
        """Cost (N,) per person: reprojection + robust 3D + pose, hinge and shape priors."""
        s = self.settings
        residual = project_points(points, camera) - targets.xy
        cost = (targets.weight * (residual**2).sum(-1)).sum(-1)
        squared_3d = ((points - targets.xyz) ** 2).sum(-1) / s.keypoints_3d_scale_m**2
        cost = cost + s.keypoints_3d_weight * (targets.weight_3d * squared_3d / (1.0 + squared_3d)).sum(-1)
        bones = batch.bones
        angle = (bones * self._hinge_axes).sum(-1)
        off_axis = ((bones - angle[..., None] * self._hinge_axes) ** 2).sum(-1)
        hinge = self._is_hinge * (torch.relu(-angle) ** 2 + off_axis)
        cost = cost + s.pose_prior_weight * (bones**2).sum((-1, -2)) + s.hinge_weight * hinge.sum(-1)
        phenotypes = torch.sigmoid(batch.logits)
        return cost + s.shape_prior_weight * ((phenotypes - 0.5) ** 2).sum(-1)

    def _point_jacobian(
        self, batch: _Batch, points: torch.Tensor, poses: torch.Tensor, pivots: torch.Tensor, anchors: torch.Tensor
    ) -> torch.Tensor:
        """d points / d (δω, t, bones, phenotype logits): (N, 17, 3, 6 + 3J + 6).

        A bone's rotation turns the keypoint mass of its subtree (c_ka with homogeneous weight h_ka) about its joint
        p_a: δx = (R_pivot J_l(b_a) δb_a) × (c_ka − h_ka p_a). The phenotype columns are finite differences of the
        linearised shape (zero for people whose shape is held)."""
        n, j = batch.bones.shape[:2]
        contributions = torch.einsum("bgde,bkge->bkgd", poses[:, :, :3, :], anchors)  # (N, 17, G, 3)
        mass = torch.einsum("bkgd,ga->bkad", contributions, self._subtree)
        weight = torch.einsum("bkg,ga->bka", anchors[..., 3], self._subtree)
        lever = mass - weight[..., None] * pivots[:, None, :, :3, 3]  # (N, 17, J, 3)
        axes = pivots[:, :, :3, :3] @ _left_jacobian(batch.bones)  # (N, J, 3, 3): columns = world axes per δb
        d_model = torch.linalg.cross(axes.transpose(-1, -2)[:, None], lever[:, :, :, None, :].expand(-1, -1, -1, 3, -1))
        d_bones = d_model @ batch.rotation.transpose(-1, -2)[:, None, None]  # (N, 17, J, 3 params, 3 coordinates)
        d_bones = d_bones.permute(0, 1, 4, 2, 3).reshape(n, 17, 3, 3 * j)
        offsets = points - batch.translation[:, None]  # R · model keypoints
        eye = torch.eye(3, dtype=_DTYPE, device=points.device)
        d_root = torch.linalg.cross(eye.expand(n, 17, 3, 3), offsets[:, :, None, :].expand(-1, -1, 3, -1))
        d_root = d_root.transpose(-1, -2)  # column e: e_e × (R x)
        d_translation = eye.expand(n, 17, 3, 3)
        d_phenotypes = points.new_zeros(n, 17, 3, NUM_PHENOTYPES)
        shaped = batch.fit_shape.nonzero().squeeze(1)
        if len(shaped):
            d_phenotypes[shaped] = self._phenotype_jacobian(batch.select(shaped), points[shaped])
        return torch.cat([d_root, d_translation, d_bones, d_phenotypes], dim=-1)

    def _phenotype_jacobian(self, batch: _Batch, points: torch.Tensor) -> torch.Tensor:
        """d points / d logits (N, 17, 3, 6) by forward differences along each phenotype (one batched pass)."""
        step = 1e-4
        n = batch.bones.shape[0]
        before, anchors, _ = self._shape_at(batch)
        before = (before[:, None] + step * self._d_chain_before[None]).flatten(0, 1)  # (N·6, J, 4, 4)
        anchors = (anchors[:, None] + step * self._d_anchors[None]).flatten(0, 1)
        bones = batch.bones.repeat_interleave(NUM_PHENOTYPES, dim=0)
        poses, _ = free_bone_poses(bones, before, self._chain_after, self.body.tree)
        model = keypoints_from_poses(poses, anchors).unflatten(0, (n, NUM_PHENOTYPES))  # (N, 6, 17, 3)
        moved = torch.einsum("bde,bike->bikd", batch.rotation, model) + batch.translation[:, None, None]
        phenotypes = torch.sigmoid(batch.logits)
        per_phenotype = (moved - points[:, None]) / step  # (N, 6, 17, 3)
        return (per_phenotype * (phenotypes * (1 - phenotypes))[:, :, None, None]).permute(0, 2, 3, 1)

    def _normal_equations(
        self, batch: _Batch, targets: _Targets, camera: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Gauss–Newton H (N, P, P) and gradient g (N, P) of the cost at the batch's parameters."""
        s = self.settings
        points, poses, pivots, anchors = self._camera_points(batch)
        jacobian = self._point_jacobian(batch, points, poses, pivots, anchors)  # (N, 17, 3, P)
        z = points[..., 2].clamp_min(_MIN_DEPTH_M)
        fx, fy = camera[0, 0], camera[1, 1]
        zero = torch.zeros_like(z)
        d_pixels = torch.stack(
            [fx / z, zero, -fx * points[..., 0] / z**2, zero, fy / z, -fy * points[..., 1] / z**2], dim=-1
        ).unflatten(-1, (2, 3))  # (N, 17, 2, 3)
        j2 = d_pixels @ jacobian  # (N, 17, 2, P)
        r2 = project_points(points, camera) - targets.xy
        root_w = targets.weight.sqrt()[..., None, None]
        weighted = (j2 * root_w).flatten(1, 2)  # (N, 34, P)
        hessian = weighted.transpose(1, 2) @ weighted
        gradient = (weighted.transpose(1, 2) @ (r2[..., None] * root_w).flatten(1, 2)).squeeze(-1)
        if bool((targets.weight_3d > 0).any()):  # robust 3D term by reweighting: ρ'(s) = 1 / (1 + s)²
            e3 = points - targets.xyz
            squared = (e3**2).sum(-1) / s.keypoints_3d_scale_m**2
            w3 = s.keypoints_3d_weight * targets.weight_3d / (1.0 + squared) ** 2 / s.keypoints_3d_scale_m**2
            root_w3 = w3.sqrt()[..., None, None]
            weighted_3d = (jacobian * root_w3).flatten(1, 2)  # (N, 51, P)
            hessian = hessian + weighted_3d.transpose(1, 2) @ weighted_3d
            gradient = gradient + (weighted_3d.transpose(1, 2) @ (e3[..., None] * root_w3).flatten(1, 2)).squeeze(-1)
        # Priors: pose and hinge off-axis (quadratic), hinge backwards (one-sided), shape.
        n, j = batch.bones.shape[:2]
        bones = batch.bones
        bone_slice = slice(6, 6 + 3 * j)
        angle = (bones * self._hinge_axes).sum(-1)  # (N, J)
        backwards = (angle < 0).to(_DTYPE) * self._is_hinge
        outer = self._hinge_axes[:, :, None] * self._hinge_axes[:, None, :]  # (J, 3, 3)
        hinge_h = s.hinge_weight * backwards[..., None, None] * outer  # (N, J, 3, 3)
        hessian[:, bone_slice, bone_slice] += self._prior_block + _block_diagonal(hinge_h)
        prior_g = torch.einsum("jde,bje->bjd", self._prior_hessian, bones)
        prior_g = prior_g + s.hinge_weight * (backwards * angle)[..., None] * self._hinge_axes
        gradient[:, bone_slice] += prior_g.reshape(n, 3 * j)
        phenotypes = torch.sigmoid(batch.logits)
        slope = phenotypes * (1 - phenotypes)
        shape_slice = slice(6 + 3 * j, None)
        shaped = batch.fit_shape.to(_DTYPE)[:, None]
        hessian[:, shape_slice, shape_slice] += torch.diag_embed(s.shape_prior_weight * slope**2 * shaped)
        gradient[:, shape_slice] += s.shape_prior_weight * slope * (phenotypes - 0.5) * shaped
        # People whose shape is held: identity rows, zero gradient (their phenotype step is 0).
        held = torch.diag_embed((1.0 - shaped).expand(-1, NUM_PHENOTYPES))
        hessian[:, shape_slice, shape_slice] += held
        return hessian, gradient

    def _step(self, batch: _Batch, delta: torch.Tensor) -> _Batch:
        """The batch moved by delta (N, P): root rotation on the manifold, the rest additively."""
        j = batch.bones.shape[1]
        rotation = axis_angle_to_matrix(delta[:, :3]) @ batch.rotation
        return _Batch(
            rotation,
            batch.translation + delta[:, 3:6],
            batch.bones + delta[:, 6 : 6 + 3 * j].reshape(-1, j, 3),
            batch.logits + delta[:, 6 + 3 * j :],
            batch.base,
            batch.base_phenotypes,
            batch.fit_shape,
        )

    # ----- optimisation -----

    def _optimise(
        self, batch: _Batch, warm: list[bool], targets: _Targets, camera: torch.Tensor, start: float
    ) -> _Batch:
        """Batched Levenberg–Marquardt, each person with its own damping, iteration limit and convergence test."""
        s = self.settings
        device = batch.rotation.device
        limits = torch.tensor([s.warm_iterations if w else s.cold_iterations for w in warm], device=device)
        rebase_at = torch.tensor([-1 if w else s.cold_iterations // 2 for w in warm], device=device)
        damping = torch.full((len(warm),), s.damping, dtype=_DTYPE, device=device)
        cost = self._costs(batch, self._camera_points(batch)[0], targets, camera)
        done = torch.zeros(len(warm), dtype=torch.long, device=device)
        mesh_ms = self._mesh_ms_per_person * len(warm)  # expected time of the meshes after the iterations
        step_ms = 0.0
        iteration = 0
        while True:
            active = (done < limits).nonzero().squeeze(1)
            if len(active) == 0:
                break
            elapsed_ms = (time.perf_counter() - start) * 1e3
            if s.time_budget_ms > 0 and iteration > 0 and elapsed_ms + step_ms + mesh_ms > s.time_budget_ms:
                break
            step_start = time.perf_counter()
            rebase = active[rebase_at[active] == done[active]]
            if len(rebase):  # new people halfway: the exact shape at their phenotypes becomes the base
                batch, cost = self._rebase(batch, rebase, targets, camera, cost)
            everyone = len(active) == len(warm)
            sub, sub_targets = (batch, targets) if everyone else (batch.select(active), targets.select(active))
            hessian, gradient = self._normal_equations(sub, sub_targets, camera)
            diagonal = torch.diagonal(hessian, dim1=-2, dim2=-1)
            damped = hessian + torch.diag_embed(damping[active, None] * diagonal + 1e-9)
            delta = -torch.linalg.solve(damped, gradient)
            candidate = self._step(sub, delta)
            new_cost = self._costs(candidate, self._camera_points(candidate)[0], sub_targets, camera)
            accept = torch.isfinite(new_cost) & (new_cost < cost[active])
            converged = accept & (cost[active] - new_cost < s.tolerance * cost[active])
            batch = self._merge(batch, candidate, active[accept], accept.nonzero().squeeze(1))
            cost[active[accept]] = new_cost[accept]
            damping[active] = torch.where(accept, damping[active] / 3, damping[active] * 4).clamp(1e-7, 1e7)
            done[active] += 1
            done[active[converged]] = limits[active[converged]]
            iteration += 1
            step_ms = max(step_ms, (time.perf_counter() - step_start) * 1e3)
        self.report.iterations = iteration
        return batch

    def _rebase(
        self, batch: _Batch, index: torch.Tensor, targets: _Targets, camera: torch.Tensor, cost: torch.Tensor
    ) -> tuple[_Batch, torch.Tensor]:
        """Replace the linearised shape of the people at `index` by the exact shape at their phenotypes."""
        phenotypes = torch.sigmoid(batch.logits[index])
        exact = self.body.shape(phenotypes.to(self.body.dtype)).to(_DTYPE)
        base = batch.base
        chain_before, anchors = base.chain_before.clone(), base.keypoint_anchors.clone()
        coefficients, offsets = base.coefficients.clone(), base.bone_offsets.clone()
        chain_before[index], anchors[index] = exact.chain_before, exact.keypoint_anchors
        coefficients[index], offsets[index] = exact.coefficients, exact.bone_offsets
        base_phenotypes = batch.base_phenotypes.clone()
        base_phenotypes[index] = phenotypes
        rebased = _Batch(
            batch.rotation, batch.translation, batch.bones, batch.logits,
            AnnyShape(coefficients, chain_before, base.chain_after, anchors, offsets), base_phenotypes,
            batch.fit_shape,
        )  # fmt: skip
        cost = cost.clone()
        sub = rebased.select(index)
        cost[index] = self._costs(sub, self._camera_points(sub)[0], targets.select(index), camera)
        return rebased, cost

    @staticmethod
    def _merge(batch: _Batch, candidate: _Batch, rows: torch.Tensor, picked: torch.Tensor) -> _Batch:
        """The batch with rows `rows` replaced by the candidate's rows `picked` (parameters only)."""
        if len(rows) == 0:
            return batch
        out = []
        for whole, part in (
            (batch.rotation, candidate.rotation),
            (batch.translation, candidate.translation),
            (batch.bones, candidate.bones),
            (batch.logits, candidate.logits),
        ):
            whole = whole.clone()
            whole[rows] = part[picked]
            out.append(whole)
        return _Batch(*out, batch.base, batch.base_phenotypes, batch.fit_shape)

    # ----- results -----

    def _exact_shapes(self, batch: _Batch, tracks: list[_Track | None]) -> list[AnnyShape]:
        """Per person its exact shape (batch of 1, float64): recomputed where the phenotypes moved."""
        shaped = batch.fit_shape.nonzero().squeeze(1)
        exact = [batch.base.select([i]) for i in range(len(tracks))]
        if len(shaped):
            phenotypes = torch.sigmoid(batch.logits[shaped]).to(self.body.dtype)
            fresh = self.body.shape(phenotypes).to(_DTYPE)
            for row, i in enumerate(shaped.tolist()):
                exact[i] = fresh.select([row])
        return exact

    def _states(self, batch: _Batch) -> list[AnnyState]:
        rotation, translation, bones = (x.cpu().numpy() for x in (batch.rotation, batch.translation, batch.bones))
        phenotypes = torch.sigmoid(batch.logits).cpu().numpy()
        return [
            AnnyState(rotation[i], translation[i], bones[i], phenotypes[i], self._frame) for i in range(len(rotation))
        ]

    def _publish(
        self,
        people: list[Person],
        states: list[AnnyState],
        shapes: list[AnnyShape],
        observations: list[tuple[np.ndarray, np.ndarray]],
        tracks: list[_Track | None],
        k: np.ndarray,
        refreshed: list[bool],
    ) -> None:
        """Mesh, keypoints and parameters of each solution into its person, the reprojection errors, and the
        tracked people's solutions for the next frames."""
        if not people:
            return
        tensor = self._tensor
        shape = AnnyShape.cat(shapes)
        bones = tensor(np.stack([st.bones for st in states]))
        poses, _ = free_bone_poses(bones, shape.chain_before, shape.chain_after, self.body.tree)
        keypoints = keypoints_from_poses(poses, shape.keypoint_anchors).cpu().numpy()
        camera_from_model = torch.eye(4, dtype=_DTYPE, device=bones.device).repeat(len(states), 1, 1)
        camera_from_model[:, :3, :3] = tensor(np.stack([st.rotation for st in states]))
        camera_from_model[:, :3, 3] = tensor(np.stack([st.translation for st in states]))
        transforms = camera_from_model[:, None] @ bone_transforms(poses, shape, self.body.tree)
        rest = self._rest_vertices(shapes, tracks, refreshed)
        vertices = skin(torch.cat(rest), transforms.to(self.body.dtype), self.body.skin_weights).cpu().numpy()
        root = matrix_to_axis_angle(torch.as_tensor(np.stack([st.rotation for st in states]))).numpy()
        names = (ROOT_JOINT, *self.body.bones)
        for i, (person, state) in enumerate(zip(people, states, strict=True)):
            person.body_model = BodyModelParams(
                name="anny",
                betas=state.phenotypes.astype(np.float32),
                pose=np.concatenate([root[i], state.bones.reshape(-1)]).astype(np.float32),
                translation=state.translation.astype(np.float32),
                pose_joint_names=names,
                vertices=vertices[i].astype(np.float32, copy=False),
                faces=self.faces,
            )
            points = keypoints[i] @ state.rotation.T + state.translation
            if person.keypoints_3d is None and person.layout == COCO17.name:
                person.keypoints_3d = points.astype(np.float32)
            xy, conf = observations[i]
            error = np.linalg.norm(project(points, k) - xy, axis=1)[conf > 0]
            self.report.reprojection_px.append(float(error.mean()))
            if person.tracked:
                track = tracks[i]
                shape_frame = self._frame if track is None or refreshed[i] else track.shape_frame
                self._tracks[person.id] = _Track(state, shapes[i], rest[i], shape_frame)

    def _rest_vertices(
        self, shapes: list[AnnyShape], tracks: list[_Track | None], refreshed: list[bool]
    ) -> list[torch.Tensor]:
        """Per person its rest mesh (1, V, 3): the track's while its shape is unchanged, else computed (batched)."""
        rest: list[torch.Tensor | None] = [
            None if track is None or refreshed[i] or track.rest_vertices is None else track.rest_vertices
            for i, track in enumerate(tracks)
        ]
        missing = [i for i, r in enumerate(rest) if r is None]
        if missing:
            fresh = self.body.rest_vertices_of(AnnyShape.cat([shapes[i] for i in missing]))
            for row, i in enumerate(missing):
                rest[i] = fresh[row : row + 1]
        return rest  # type: ignore[return-value]

    def _forget_old(self) -> None:
        max_age = self.settings.max_track_age
        self._tracks = {i: t for i, t in self._tracks.items() if self._frame - t.state.frame <= max_age}
