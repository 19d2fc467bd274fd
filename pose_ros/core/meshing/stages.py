"""The mesh stage choice: SMPL + HMR (licensed files the user brings) or Anny fitted to keypoints (free).

`MeshConfig` names what to run (field names = pose_node parameter names); `create_mesh_stage` builds it.
Every stage is a callable `(image_rgb, people, camera_matrix, max_faces) -> list[MeshFit | None]` returning one
entry per person (None: no mesh for that person). It never changes the people it is given: the fitters behind it
work on private copies, so a frame's people stay exactly what the 2D path published.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from pose_ros.core.person import BodyModelParams, Person

MESH_MODELS = ("auto", "none", "smpl_hmr", "anny_fit")
SMPL_SOURCE = "https://smpl.is.tue.mpg.de/ (SMPL) and SPIN's released HMR checkpoint"


@dataclass(frozen=True)
class MeshFit:
    """One person's fitted body: parameters and mesh (decimated as asked), and its 3D keypoints (K, 3) metres in
    the camera optical frame in the person's layout (None when the model gives none for that layout)."""

    body_model: BodyModelParams
    keypoints_3d: np.ndarray | None


class MeshStage(Protocol):
    name: str

    def __call__(
        self, image_rgb: np.ndarray, people: list[Person], camera_matrix: np.ndarray, max_faces: int
    ) -> list[MeshFit | None]: ...

    def reset(self) -> None:
        """Forget what earlier calls left behind (warm starts)."""


# A person standing 480 px tall facing the camera (COCO-17, pixels of a 640 x 480 image): warms a stage up.
_STANDING_COCO17 = np.array(
    [
        (320, 80), (330, 70), (310, 70), (340, 75), (300, 75), (360, 130), (280, 130), (370, 200), (270, 200),
        (375, 260), (265, 260), (345, 260), (295, 260), (345, 350), (295, 350), (345, 440), (295, 440),
    ],
    np.float32,
)  # fmt: skip


def warm_up(stage: MeshStage) -> None:
    """One call on a synthetic frame with one standing person, then `reset`: the first real frame does not pay for
    lazy initialisation (kernel compilation, allocator growth)."""
    from pose_ros.core.camera import default_camera_matrix
    from pose_ros.core.person import bbox_from_keypoints
    from pose_ros.core.skeletons import COCO17

    confidences = np.full(len(_STANDING_COCO17), 0.9, np.float32)
    person = Person(
        _STANDING_COCO17.copy(), confidences, 0.9, bbox_from_keypoints(_STANDING_COCO17, confidences), COCO17.name
    )
    stage(np.full((480, 640, 3), 128, np.uint8), [person], default_camera_matrix(640, 480), 0)
    stage.reset()


@dataclass(frozen=True)
class MeshConfig:
    """Which body mesh to compute per person.

    Attributes:
        mesh_model: "auto" (smpl_hmr when both its files are set, else anny_fit), "none", "smpl_hmr", "anny_fit".
        smpl_model_path: SMPL model (.pkl or .npz), for smpl_hmr.
        hmr_checkpoint_path: HMR/SPIN checkpoint (.pt), for smpl_hmr.
        smpl_mean_params_path: SPIN's smpl_mean_params.npz (optional; the checkpoint may carry them).
        device: torch device spec.
    """

    mesh_model: str = "auto"
    smpl_model_path: str = ""
    hmr_checkpoint_path: str = ""
    smpl_mean_params_path: str = ""
    device: str = "auto"

    def validate(self) -> None:
        if self.mesh_model not in MESH_MODELS:
            raise ValueError(f"mesh_model must be one of {MESH_MODELS}, got {self.mesh_model!r}")
        if self.mesh_model == "smpl_hmr" and not (self.smpl_model_path and self.hmr_checkpoint_path):
            raise ValueError(
                f"mesh_model 'smpl_hmr' needs smpl_model_path and hmr_checkpoint_path (licensed files: {SMPL_SOURCE})"
            )

    def resolved_model(self) -> str:
        """The concrete model "auto" stands for."""
        if self.mesh_model != "auto":
            return self.mesh_model
        return "smpl_hmr" if self.smpl_model_path and self.hmr_checkpoint_path else "anny_fit"


def _private_copies(people: list[Person]) -> list[Person]:
    """Copies the fitters may write into (arrays shared read-only, the result field `body_model` reset)."""
    return [replace(person, body_model=None) for person in people]


def _decimated(body: BodyModelParams, decimator, max_faces: int) -> BodyModelParams:
    """`body` with its mesh decimated to at most `max_faces` faces (0: unchanged)."""
    if max_faces <= 0 or body.vertices is None or body.faces is None or len(body.faces) <= max_faces:
        return body
    vertices, faces = decimator(max_faces)(body.vertices)
    return replace(body, vertices=vertices, faces=faces)


class AnnyMeshStage:
    """Anny fitted to keypoints (`AnnyFitter`, warm-started per track id) behind the common stage signature."""

    name = "anny_fit"

    def __init__(self, device: str, models=None) -> None:  # models: a ModelCache sharing the body (fitters per stage)
        from pose_ros.core.body.anny_fit import AnnyFitSettings, AnnyFitter, anny_cache_ready

        if not anny_cache_ready():  # else creating the model would build its data for minutes, here
            raise RuntimeError(
                "Anny's model data is not built: run `python -m pose_ros.tools.prepare_anny` (scripts/setup.sh does)"
            )
        body = None
        if models is not None:
            from pose_ros.core.model_cache import anny_body

            body = anny_body(models, device)
        self.fitter = AnnyFitter(AnnyFitSettings(device=device), body)

    def reset(self) -> None:
        self.fitter.reset()

    def __call__(
        self, image_rgb: np.ndarray, people: list[Person], camera_matrix: np.ndarray, max_faces: int
    ) -> list[MeshFit | None]:
        work = _private_copies(people)
        self.fitter.fit(work, camera_matrix, (image_rgb.shape[1], image_rgb.shape[0]))  # measured 3D are targets
        fits: list[MeshFit | None] = []
        for person, fitted in zip(people, work, strict=True):
            model_points = fitted.keypoints_3d if fitted.keypoints_3d is not person.keypoints_3d else None
            body = fitted.body_model
            if body is not None:
                body = _decimated(body, self.fitter.decimator, max_faces)
            fits.append(None if body is None else MeshFit(body, model_points))
        return fits


class SmplHmrStage:
    """SMPL + HMR (`SmplHmrMeshStage`, one batched forward per call) behind the common stage signature."""

    name = "smpl_hmr"

    def __init__(self, config: MeshConfig, models=None) -> None:
        from pose_ros.core.meshing.smpl_hmr import SmplHmrMeshStage

        def build() -> SmplHmrMeshStage:
            return SmplHmrMeshStage(
                config.smpl_model_path, config.hmr_checkpoint_path, config.smpl_mean_params_path or None, config.device
            )

        # models: a ModelCache sharing SMPL and HMR (stateless per frame) between stages of one configuration
        self.stage = build() if models is None else models.get(("smpl_hmr", replace(config, mesh_model="")), build)

    def reset(self) -> None:
        """Nothing to forget: every frame is meshed on its own."""

    def __call__(
        self, image_rgb: np.ndarray, people: list[Person], camera_matrix: np.ndarray, max_faces: int
    ) -> list[MeshFit | None]:
        work = _private_copies(people)
        self.stage(image_rgb, work, camera_matrix)
        return [
            None if p.body_model is None else MeshFit(_decimated(p.body_model, self.stage.decimator, max_faces), None)
            for p in work
        ]


def create_mesh_stage(config: MeshConfig, models=None) -> MeshStage | None:
    """The stage `config` asks for, or None for "none"; with a `pose_ros.core.model_cache.ModelCache` as `models`,
    Anny's body model is loaded once per cache (the fitter and its warm starts stay per stage).

    Raises ValueError for a bad configuration, FileNotFoundError naming a missing model file, and
    RuntimeError/ImportError when the Anny model is not prepared (run scripts/setup.sh).
    """
    config.validate()
    model = config.resolved_model()
    if model == "none":
        return None
    if model == "smpl_hmr":
        return SmplHmrStage(config, models)
    return AnnyMeshStage(config.device, models)
