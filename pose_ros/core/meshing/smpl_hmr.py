"""Mesh stage: people in an image → SMPL parameters and meshes in the camera optical frame (HMR + SMPL).

Per frame: one crop per person (box centre, side 1.2 × the box's longer side, 224 × 224) → one batched HMR forward
→ one batched SMPL forward → per person `Person.body_model` (`BodyModelParams`, name "smpl") with β (10,),
axis-angle pose (72,), translation (3,) m and vertices (6890, 3) m in the camera optical frame (x right, y down,
z forward), faces (13776, 3), and the crop camera [s, tx, ty].
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pose_ros.core.body.decimation import MeshDecimator
from pose_ros.core.body.hmr import (
    Hmr,
    HmrOutput,
    crop_camera_to_translation,
    crop_person,
    crop_square,
    preprocess_crops,
)
from pose_ros.core.body.rotations import matrix_to_axis_angle
from pose_ros.core.body.smpl import Smpl
from pose_ros.core.camera import default_camera_matrix
from pose_ros.core.device import resolve_device
from pose_ros.core.person import BodyModelParams, Person, bbox_from_keypoints
from pose_ros.core.skeletons import SMPL24

MIN_BOX_SIDE_PX = 8.0  # smaller person boxes get no mesh


@dataclass
class MeshStageTiming:
    """Wall time of the last call, milliseconds: crops, HMR forward, SMPL forward + conversions, and people meshed."""

    crop_ms: float = 0.0
    hmr_ms: float = 0.0
    smpl_ms: float = 0.0
    people: int = 0

    @property
    def total_ms(self) -> float:
        return self.crop_ms + self.hmr_ms + self.smpl_ms


def person_box(person: Person) -> np.ndarray | None:
    """The person's box (4,) px, from its keypoints when the box is empty; None when too small to mesh."""
    box = np.asarray(person.bbox_xywh, np.float64)
    if not np.isfinite(box).all() or min(box[2], box[3]) < MIN_BOX_SIDE_PX:
        box = bbox_from_keypoints(person.keypoints_xy, person.confidences).astype(np.float64)
    return box if np.isfinite(box).all() and max(box[2], box[3]) >= MIN_BOX_SIDE_PX else None


class SmplHmrMeshStage:
    """Fills `Person.body_model` with SMPL parameters and a mesh for every person big enough to crop.

    Args:
        smpl_model_path: official SMPL .pkl (no chumpy needed) or .npz (see `load_smpl_model`).
        hmr_checkpoint_path: SPIN's `model_checkpoint.pt` layout (see `load_spin_checkpoint`).
        mean_params_path: SPIN's `smpl_mean_params.npz`, or None (the checkpoint carries the mean parameters).
        device: "auto", "cpu", "cuda" or "cuda:N", or a torch.device.
    Raises FileNotFoundError naming the missing file and where users get it.
    """

    def __init__(
        self,
        smpl_model_path: str | Path,
        hmr_checkpoint_path: str | Path,
        mean_params_path: str | Path | None = None,
        device: str | torch.device = "auto",
    ) -> None:
        self.device = resolve_device(device) if isinstance(device, str) else device
        self.smpl = Smpl.from_file(smpl_model_path).to(self.device).eval()
        # channels-last weights: the crops arrive channels-last already, and oneDNN/cuDNN convolutions run faster so
        # (~12 % for ResNet-50 on CPU here).
        hmr = Hmr.from_files(hmr_checkpoint_path, mean_params_path).to(self.device)
        self.hmr = hmr.to(memory_format=torch.channels_last).eval()
        self.faces = self.smpl.faces.cpu().numpy()
        self.timing = MeshStageTiming()
        self._decimators: dict[int, MeshDecimator] = {}

    @torch.inference_mode()
    def __call__(self, image_rgb: np.ndarray, people: list[Person], camera_matrix: np.ndarray | None = None) -> None:
        """Mesh every person of one frame in place (people too small to crop keep `body_model = None`).

        Args:
            image_rgb: (H, W, 3) uint8 RGB image.
            people: the frame's people; their `bbox_xywh` (or keypoints) place the crops.
            camera_matrix: (3, 3) intrinsics of the image, or None for `default_camera_matrix(W, H)`.
        """
        start = time.perf_counter()
        meshed = [(person, box) for person, box in ((p, person_box(p)) for p in people) if box is not None]
        self.timing = MeshStageTiming(people=len(meshed))
        if not meshed:
            return
        squares = [crop_square(box) for _, box in meshed]
        crops = np.stack([crop_person(image_rgb, center, side) for center, side in squares])
        images = preprocess_crops(crops, self.device)
        crop_done = time.perf_counter()
        prediction = self.hmr(images)
        camera = prediction.camera.double().cpu().numpy()  # (N, 3) [s, tx, ty]; also waits for the device
        hmr_done = time.perf_counter()
        if camera_matrix is None:
            camera_matrix = default_camera_matrix(image_rgb.shape[1], image_rgb.shape[0])
        centers = np.stack([center for center, _ in squares])
        sides = np.array([side for _, side in squares], np.float64)
        translations = crop_camera_to_translation(camera, centers, sides, camera_matrix)
        for (person, _), body in zip(meshed, self._bodies(prediction, camera, translations), strict=True):
            person.body_model = body
        self.timing.crop_ms = (crop_done - start) * 1e3
        self.timing.hmr_ms = (hmr_done - crop_done) * 1e3
        self.timing.smpl_ms = (time.perf_counter() - hmr_done) * 1e3

    def _bodies(self, prediction: HmrOutput, camera: np.ndarray, translations: np.ndarray) -> list[BodyModelParams]:
        """One batched SMPL forward → per person parameters and the mesh moved to `translations` (N, 3) m."""
        rotations = prediction.rotations.to(self.smpl.dtype)
        output = self.smpl(prediction.betas.to(rotations.dtype), rotations)
        vertices = output.vertices.float().cpu().numpy() + translations[:, None].astype(np.float32)
        poses = matrix_to_axis_angle(rotations).flatten(1).float().cpu().numpy()  # (N, 72)
        betas = prediction.betas.float().cpu().numpy()
        return [
            BodyModelParams(
                name="smpl",
                betas=betas[index],
                pose=poses[index],
                translation=translations[index].astype(np.float32),
                camera=camera[index].astype(np.float32),
                pose_joint_names=SMPL24.keypoints,
                vertices=vertices[index],
                faces=self.faces,
            )
            for index in range(len(vertices))
        ]

    def decimator(self, target_faces: int) -> MeshDecimator:
        """Vertex-clustering plan to at most `target_faces` faces, built once on the SMPL rest template (cached);
        apply it to `body_model.vertices` to get a lighter mesh with the same faces every frame."""
        if target_faces not in self._decimators:
            betas = torch.zeros(1, self.smpl.num_betas, dtype=self.smpl.dtype, device=self.device)
            pose = torch.zeros(1, 3 * self.smpl.num_joints, dtype=betas.dtype, device=self.device)
            with torch.inference_mode():
                template = self.smpl(betas, pose).vertices[0].cpu().numpy()
            self._decimators[target_faces] = MeshDecimator(template, self.faces, target_faces)
        return self._decimators[target_faces]

