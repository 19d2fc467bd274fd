"""The mesh stage choice: SMPL + HMR (licensed files the user brings) or Anny fitted to keypoints (free).

`MeshConfig` names what to run (field names = pose_node parameter names); `create_mesh_stage` builds it.
Every stage is a callable `(image_rgb, people, camera_matrix) -> None` that fills `Person.body_model`
(parameters, vertices and faces in the camera optical frame) and offers `decimator(target_faces)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from pose_ros.core.person import Person

MESH_MODELS = ("auto", "none", "smpl_hmr", "anny_fit")
SMPL_SOURCE = "https://smpl.is.tue.mpg.de/ (SMPL) and SPIN's released HMR checkpoint"


class MeshStage(Protocol):
    def __call__(self, image_rgb: np.ndarray, people: list[Person], camera_matrix: np.ndarray) -> None: ...

    def decimator(self, target_faces: int): ...


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


class _AnnyStage:
    """AnnyFitter behind the common stage signature."""

    def __init__(self, device: str) -> None:
        from pose_ros.core.body.anny_fit import AnnyFitSettings, AnnyFitter, anny_cache_ready

        if not anny_cache_ready():  # else creating the model would build its data for minutes, here
            raise RuntimeError(
                "Anny's model data is not built: run `python -m pose_ros.tools.prepare_anny` (scripts/setup.sh does)"
            )
        self.fitter = AnnyFitter(AnnyFitSettings(device=device))

    def __call__(self, image_rgb: np.ndarray, people: list[Person], camera_matrix: np.ndarray) -> None:
        self.fitter.fit(people, camera_matrix, (image_rgb.shape[1], image_rgb.shape[0]))

    def decimator(self, target_faces: int):
        return self.fitter.decimator(target_faces)


def create_mesh_stage(config: MeshConfig) -> MeshStage | None:
    """The stage `config` asks for, or None for "none".

    Raises ValueError for a bad configuration, FileNotFoundError naming a missing model file, and
    RuntimeError/ImportError when the Anny model is not prepared (run scripts/setup.sh).
    """
    config.validate()
    model = config.resolved_model()
    if model == "none":
        return None
    if model == "smpl_hmr":
        from pose_ros.core.body.mesh_stage import SmplHmrMeshStage

        return SmplHmrMeshStage(
            config.smpl_model_path, config.hmr_checkpoint_path, config.smpl_mean_params_path or None, config.device
        )
    return _AnnyStage(config.device)


def decimate_people_meshes(people: list[Person], stage: MeshStage, max_faces: int) -> None:
    """Replace each person's mesh by its decimated version with at most `max_faces` faces (0: keep full)."""
    if max_faces <= 0:
        return
    plan = stage.decimator(max_faces)
    for person in people:
        body = person.body_model
        if body is not None and body.vertices is not None and body.faces is not None and len(body.faces) > max_faces:
            body.vertices, body.faces = plan(body.vertices)
