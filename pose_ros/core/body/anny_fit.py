"""Fit the free Anny body model (`pose_ros.core.body.anny_body`) to each person's 2D (and optional 3D) keypoints.

`AnnyFitter.fit(people, camera_matrix, image_size)` per frame: picks the people with enough confident COCO-17
keypoints, starts each from its track's previous solution (`Person.tracked`, matched by track id only; an untracked
person starts afresh every frame) or from a rigid first guess (rest pose, mean shape, PnP on face and torso), solves
all of them at once (`pose_ros.core.body.anny_solver`: batched Levenberg–Marquardt with an analytic Jacobian, a few
iterations per tracked person), and fills each person's `body_model` (parameters, mesh in the camera optical frame)
and `keypoints_3d`. The mesh is skinned once per frame at the end, from rest vertices kept per track while its
phenotypes are unchanged; the phenotypes move on a person's first frame and every `shape_every`-th frame after.
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
from pose_ros.core.body.anny_solver import DTYPE, AnnyLeastSquares, FitBatch, FitTargets, project_points
from pose_ros.core.body.decimation import MeshDecimator
from pose_ros.core.body.rotations import matrix_to_axis_angle
from pose_ros.core.camera import default_camera_matrix, project
from pose_ros.core.device import resolve_device
from pose_ros.core.person import BodyModelParams, Person, bbox_from_keypoints
from pose_ros.core.skeletons import COCO17, convert_keypoints

__all__ = [  # the body model's names stay importable from here (older imports)
    "ANNY_VERSION", "DEFAULT_BONES", "HINGES", "NUM_PHENOTYPES", "OPTICAL_FROM_ANNY", "ROOT_JOINT", "AnnyBody",
    "AnnyFitReport", "AnnyFitSettings", "AnnyFitter", "AnnyShape", "AnnyState", "anny_cache_dir", "anny_cache_ready",
    "coco17_observations", "create_anny_model", "project_points",
]  # fmt: skip


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
        pose_prior_weight: weight of the squared bone angles (radians²) of a person seen for the first time.
        warm_pose_prior_weight: the same for a person starting from its previous solution (weaker: its previous
            pose already holds what the earlier frames showed).
        temporal_pose_weight: weight of the squared change of a tracked person's bone angles since its previous
            solution (radians²), divided by the frames since that solution. With `warm_pose_prior_weight`, one
            quadratic prior centred between the rest pose and the previous pose.
        hinge_weight: weight of elbow/knee bending the wrong way or off their hinge axis (radians²).
        shape_prior_weight: weight of the phenotypes' squared logits, log(p / (1 − p))²: about 16 (p − 0.5)² near the
            mean, growing without bound towards 0 and 1 (a phenotype pushed to its bound, where the sigmoid is flat,
            could not come back).
        keypoints_3d_weight: weight of the 3D keypoint error when people carry 3D keypoints (robust: about
            (error / keypoints_3d_scale_m)² when small, at most 1 per keypoint, so wrong depths cannot dominate).
        keypoints_3d_scale_m: error at which a 3D keypoint's cost is half its maximum, metres.
        max_track_age: forget a tracked person's solution after this many frames without it.
        max_error_fraction: a fit whose mean keypoint reprojection error exceeds this fraction of the person's
            extent in the image (the larger side of its confident keypoints' box) is not published (no body
            model: a wrong mesh is worse than none) and its track starts afresh on the next frame instead of from
            that solution (0: publish every fit).
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
    pose_prior_weight: float = 5e-4
    warm_pose_prior_weight: float = 1e-4
    temporal_pose_weight: float = 1e-3
    hinge_weight: float = 1e-2
    shape_prior_weight: float = 2e-6
    keypoints_3d_weight: float = 1.0
    keypoints_3d_scale_m: float = 0.1
    max_track_age: int = 30
    max_error_fraction: float = 0.2
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
            "warm_pose_prior_weight": self.warm_pose_prior_weight >= 0,
            "temporal_pose_weight": self.temporal_pose_weight >= 0,
            "hinge_weight": self.hinge_weight >= 0,
            "shape_prior_weight": self.shape_prior_weight >= 0,
            "keypoints_3d_weight": self.keypoints_3d_weight >= 0,
            "keypoints_3d_scale_m": self.keypoints_3d_scale_m > 0,
            "max_track_age": self.max_track_age >= 0,
            "max_error_fraction": self.max_error_fraction >= 0,
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
    (px) of its confident keypoints; `rejected`: fits not published (error above `max_error_fraction`)."""

    people: int = 0
    rejected: int = 0
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
        """The rest keypoints (the cold start's model) and the least-squares problem."""
        body = self.body
        with torch.no_grad():
            zero = torch.zeros(1, len(body.bones), 3, dtype=body.dtype, device=body.device)
            rest = body.keypoints(zero, body.shape(body.mean_phenotypes(1)))[0]
        self._rest_keypoints = rest.double().cpu().numpy()
        self._problem = AnnyLeastSquares(body, self.settings)

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
        targets = self._targets(chosen, observations, tracks)
        refreshed = batch.fit_shape.tolist()  # phenotypes moved: new rest mesh
        warm = [t is not None for t in tracks]
        reserve_ms = self._mesh_ms_per_person * len(warm)  # the meshes after the iterations, timed last frame
        batch, self.report.iterations = self._problem.optimise(batch, warm, targets, self._tensor(k), start, reserve_ms)
        self.report.fit_ms = (time.perf_counter() - start) * 1e3
        exact = self._exact_shapes(batch, tracks)
        states = self._states(batch)
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
    ) -> FitBatch:
        """Per person its previous solution, or a cold guess at the mean shape."""
        states, shapes, fit_shape = [], [], []
        for track, (xy, conf) in zip(tracks, observations, strict=True):
            if track is None:
                states.append(self._cold_state(xy, conf, k))
                shapes.append(self._problem.mean_shape)
                fit_shape.append(True)
            else:
                states.append(track.state)
                shapes.append(track.shape)
                fit_shape.append(self._frame - track.shape_frame >= self.settings.shape_every)
        tensor = self._tensor
        phenotypes = np.clip(np.stack([s.phenotypes for s in states]), 1e-3, 1 - 1e-3)
        return FitBatch(
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

    def _targets(
        self, people: list[Person], observations: list[tuple[np.ndarray, np.ndarray]], tracks: list[_Track | None]
    ) -> FitTargets:
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
        pose_centre, pose_weight = self._pose_priors(tracks)
        tensor = self._tensor
        return FitTargets(
            tensor(xy),
            tensor(conf / sizes[:, None] ** 2),
            tensor(xyz),
            tensor(conf_3d),
            tensor(pose_centre),
            tensor(pose_weight),
        )

    def _pose_priors(self, tracks: list[_Track | None]) -> tuple[np.ndarray, np.ndarray]:
        """Per person the pose prior's centre (N, J, 3) rad and weight (N,): a new person's is the rest pose; a
        tracked person's combines a weak pull to the rest pose (w_r) with one to its previous pose b_prev (w_t):
        w_r |b|² + w_t |b − b_prev|² = (w_r + w_t) |b − w_t b_prev / (w_r + w_t)|² + const. w_t is divided by the
        frames since that pose was fitted (a person unseen for a while has moved more)."""
        s = self.settings
        centre = np.zeros((len(tracks), len(self.body.bones), 3))
        weight = np.full(len(tracks), s.pose_prior_weight)
        for i, track in enumerate(tracks):
            if track is not None:
                rest = s.warm_pose_prior_weight
                temporal = s.temporal_pose_weight / max(self._frame - track.state.frame, 1)
                weight[i] = rest + temporal
                centre[i] = temporal / max(rest + temporal, 1e-12) * track.state.bones
        return centre, weight

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(array), dtype=DTYPE, device=self.body.device)

    # ----- the model and its Jacobian -----

    # ----- results -----

    def _exact_shapes(self, batch: FitBatch, tracks: list[_Track | None]) -> list[AnnyShape]:
        """Per person its exact shape (batch of 1, float64): the base, recomputed where it is still linearised (the
        time budget ran out before the polish)."""
        shaped = batch.fit_shape.nonzero().squeeze(1)
        exact = [batch.base.select([i]) for i in range(len(tracks))]
        if len(shaped):
            phenotypes = torch.sigmoid(batch.logits[shaped]).to(self.body.dtype)
            fresh = self.body.shape(phenotypes).to(DTYPE)
            for row, i in enumerate(shaped.tolist()):
                exact[i] = fresh.select([row])
        return exact

    def _states(self, batch: FitBatch) -> list[AnnyState]:
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
        camera_from_model = torch.eye(4, dtype=DTYPE, device=bones.device).repeat(len(states), 1, 1)
        camera_from_model[:, :3, :3] = tensor(np.stack([st.rotation for st in states]))
        camera_from_model[:, :3, 3] = tensor(np.stack([st.translation for st in states]))
        transforms = camera_from_model[:, None] @ bone_transforms(poses, shape, self.body.tree)
        rest = self._rest_vertices(shapes, tracks, refreshed)
        vertices = skin(torch.cat(rest), transforms.to(self.body.dtype), self.body.skin_weights).cpu().numpy()
        root = matrix_to_axis_angle(torch.as_tensor(np.stack([st.rotation for st in states]))).numpy()
        names = (ROOT_JOINT, *self.body.bones)
        for i, (person, state) in enumerate(zip(people, states, strict=True)):
            points = keypoints[i] @ state.rotation.T + state.translation
            xy, conf = observations[i]
            error = float(np.linalg.norm(project(points, k) - xy, axis=1)[conf > 0].mean())
            self.report.reprojection_px.append(error)
            size = float(np.ptp(xy[conf > 0], axis=0).max())  # the person's extent in the image, px
            limit = self.settings.max_error_fraction * max(size, 1.0)
            if self.settings.max_error_fraction > 0 and error > limit:  # the fit does not explain this person
                self.report.rejected += 1
                if person.tracked:
                    self._tracks.pop(person.id, None)
                continue
            person.body_model = BodyModelParams(
                name="anny",
                betas=state.phenotypes.astype(np.float32),
                pose=np.concatenate([root[i], state.bones.reshape(-1)]).astype(np.float32),
                translation=state.translation.astype(np.float32),
                pose_joint_names=names,
                vertices=vertices[i].astype(np.float32, copy=False),
                faces=self.faces,
            )
            if person.keypoints_3d is None and person.layout == COCO17.name:
                person.keypoints_3d = points.astype(np.float32)
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
