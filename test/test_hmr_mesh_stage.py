"""Mesh stage end to end with a synthetic SMPL-format model and a random-weight HMR checkpoint; mesh decimation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bench.fixtures.meshes import triangle_list_bytes, triangle_list_points
from bench.fixtures.smpl_synthetic import SMPL_NUM_FACES, SMPL_NUM_VERTICES, make_synthetic_smpl
from pose_ros.core.body.decimation import MeshDecimator, decimate_mesh
from pose_ros.core.body.hmr import Hmr, crop_square
from pose_ros.core.body.smpl import Smpl
from pose_ros.core.body.smpl_files import SMPL_SOURCE_URL, load_smpl_model, save_smpl_npz
from pose_ros.core.camera import project
from pose_ros.core.meshing.smpl_hmr import SmplHmrMeshStage
from pose_ros.core.person import Person


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("mesh_stage")
    save_smpl_npz(make_synthetic_smpl(seed=11), folder / "SMPL_NEUTRAL.npz")
    torch.manual_seed(0)
    torch.save({"model": Hmr().state_dict()}, folder / "model_checkpoint.pt")  # random weights, SPIN's layout
    return folder / "SMPL_NEUTRAL.npz", folder / "model_checkpoint.pt"


@pytest.fixture(scope="module")
def stage(model_files: tuple[Path, Path]) -> SmplHmrMeshStage:
    return SmplHmrMeshStage(*model_files, device="cpu")


def _person(box: list[float]) -> Person:
    return Person(np.zeros((17, 2), np.float32), np.zeros(17, np.float32), 0.9, np.array(box, np.float32), "coco17")


def test_stage_meshes_every_person_in_the_camera_frame(stage: SmplHmrMeshStage, model_files: tuple[Path, Path]) -> None:
    image = np.random.default_rng(0).integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
    camera_matrix = np.array([[600.0, 0.0, 319.5], [0.0, 600.0, 239.5], [0.0, 0.0, 1.0]])
    people = [_person([100, 80, 120, 300]), _person([400, 150, 90, 200]), _person([5, 5, 2, 3])]
    people.append(_person([np.nan, 0, 50, 50]))
    stage(image, people, camera_matrix)
    assert people[2].body_model is None  # too small to crop, and no keypoints to fall back on
    assert people[3].body_model is None  # no usable box
    assert stage.timing.people == 2 and stage.timing.total_ms > 0
    reference = Smpl(load_smpl_model(model_files[0]), dtype=torch.float64)
    for person in people[:2]:
        body = person.body_model
        assert body is not None and body.name == "smpl"
        assert body.betas.shape == (10,) and body.pose.shape == (72,) and body.translation.shape == (3,)
        assert body.camera.shape == (3,) and len(body.pose_joint_names) == 24
        assert body.vertices.shape == (SMPL_NUM_VERTICES, 3) and body.vertices.dtype == np.float32
        assert body.faces.shape == (SMPL_NUM_FACES, 3)
        assert np.isfinite(body.vertices).all() and body.translation[2] > 0
        # The stored parameters reproduce the stored mesh: vertices = SMPL(β, θ) + translation.
        again = reference(torch.from_numpy(body.betas).double()[None], torch.from_numpy(body.pose).double()[None])
        np.testing.assert_allclose(body.vertices - body.translation, again.vertices[0].numpy(), atol=1e-4)
        # The mesh origin projects where the crop camera puts it: box centre + (side · s / 2) · (tx, ty).
        center, side = crop_square(person.bbox_xywh)
        expected = center + side * body.camera[0] / 2 * body.camera[1:]
        np.testing.assert_allclose(project(body.translation.astype(np.float64), camera_matrix), expected, atol=0.05)


def test_stage_without_people_or_intrinsics(stage: SmplHmrMeshStage) -> None:
    image = np.zeros((240, 320, 3), np.uint8)
    stage(image, [])
    assert stage.timing.people == 0
    person = _person([0, 0, 0, 0])
    person.keypoints_xy = np.array([[100, 50], [140, 200]] + [[np.nan, np.nan]] * 15, np.float32)
    person.confidences = np.array([0.9, 0.8] + [0.0] * 15, np.float32)
    stage(image, [person])  # box from keypoints, default intrinsics
    assert person.body_model is not None and person.body_model.vertices.shape == (SMPL_NUM_VERTICES, 3)


def test_missing_files_name_the_file_and_the_source(tmp_path: Path, model_files: tuple[Path, Path]) -> None:
    with pytest.raises(FileNotFoundError, match=SMPL_SOURCE_URL):
        SmplHmrMeshStage(tmp_path / "SMPL_NEUTRAL.pkl", model_files[1], device="cpu")
    with pytest.raises(FileNotFoundError, match=r"model_checkpoint\.pt"):
        SmplHmrMeshStage(model_files[0], tmp_path / "model_checkpoint.pt", device="cpu")


def test_decimation_plan_is_stable_and_meets_the_budget(stage: SmplHmrMeshStage) -> None:
    decimator = stage.decimator(2000)
    assert decimator is stage.decimator(2000)  # planned once
    assert 1500 <= len(decimator.faces) <= 2000
    rng = np.random.default_rng(1)
    posed = rng.normal(size=(SMPL_NUM_VERTICES, 3)).astype(np.float32)
    vertices, faces = decimator(posed)
    assert vertices.shape == (decimator.num_vertices, 3) and vertices.dtype == np.float32
    assert faces.min() == 0 and faces.max() == decimator.num_vertices - 1
    assert np.all((faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2]))
    # Each decimated vertex is the mean of its cluster: a translated mesh gives translated cluster means.
    shifted, _ = decimator(posed + np.float32(2.0))
    np.testing.assert_allclose(shifted, vertices + 2.0, atol=1e-5)


def test_decimate_mesh_of_a_sphere_keeps_it_closed_and_round() -> None:
    data = make_synthetic_smpl(seed=2)
    sphere = data.v_template / np.linalg.norm(data.v_template, axis=1, keepdims=True)
    vertices, faces = decimate_mesh(sphere, data.faces, 1000)
    assert 800 <= len(faces) <= 1000
    radius = np.linalg.norm(vertices, axis=1)
    assert radius.min() > 0.85 and radius.max() <= 1.0 + 1e-9  # cluster means of unit vectors: just inside
    assert MeshDecimator(sphere, data.faces, 100_000).faces.shape == data.faces.shape  # budget above F: unchanged


def test_triangle_list_helpers() -> None:
    vertices = np.arange(12, dtype=np.float32).reshape(4, 3)
    faces = np.array([[0, 1, 2], [2, 3, 0]])
    points = triangle_list_points(vertices, faces)
    np.testing.assert_array_equal(points[3:6], vertices[[2, 3, 0]])
    assert triangle_list_bytes(SMPL_NUM_FACES) == 991_872
