"""Mesh stage in pose_node over real DDS: SMPL + HMR files built by the tests → a TRIANGLE_LIST per person."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rclpy.parameter import Parameter
from ros_harness import RosGraph, bgr_frame
from test_hmr_model import random_spin_state_dict
from visualization_msgs.msg import Marker

from bench.fixtures.smpl_synthetic import make_synthetic_smpl
from pose_ros.core.body.smpl_files import save_smpl_npz

SMPL_FACES = 13776


@pytest.fixture(scope="module")
def smpl_hmr_files(tmp_path_factory) -> tuple[str, str]:
    folder = tmp_path_factory.mktemp("smpl_hmr")
    save_smpl_npz(make_synthetic_smpl(seed=3), folder / "SMPL_NEUTRAL.npz")
    torch.save({"model": random_spin_state_dict()}, folder / "model_checkpoint.pt")
    return str(folder / "SMPL_NEUTRAL.npz"), str(folder / "model_checkpoint.pt")


def run_frame(frame_rgb: np.ndarray, overrides: list[Parameter], sec: int):
    with RosGraph() as ros:
        node, probe = ros.start_pose_node(Parameter("mesh_rate_hz", value=0.0), *overrides, mesh=True)
        return node, probe.outputs(probe.send(bgr_frame(frame_rgb, sec)), topics=("people", "markers"), timeout=60)


def smpl_hmr(files: tuple[str, str], max_faces: int) -> list[Parameter]:
    """Parameters selecting the SMPL + HMR mesh stage with the given files and decimation."""
    return [
        Parameter("mesh_model", value="smpl_hmr"),
        Parameter("smpl_model_path", value=files[0]),
        Parameter("hmr_checkpoint_path", value=files[1]),
        Parameter("mesh_max_faces", value=max_faces),
    ]


def test_triangle_list_per_person_with_smpl_parameters(vtest_frames, human_models, smpl_hmr_files) -> None:
    _, out = run_frame(vtest_frames[1], smpl_hmr(smpl_hmr_files, max_faces=0), sec=61)
    people = out["people"].people
    meshes = {m.id: m for m in out["markers"].markers if m.ns == "mesh"}
    assert len(people) >= 4 and set(meshes) == {p.id for p in people}
    for person in people:
        mesh = meshes[person.id]
        assert mesh.type == Marker.TRIANGLE_LIST and mesh.header == out["people"].header
        assert len(mesh.points) == 3 * SMPL_FACES
        points = np.array([[p.x, p.y, p.z] for p in mesh.points])
        assert np.isfinite(points).all()
        body = person.body_model
        assert body.name == "smpl" and len(body.betas) == 10 and len(body.pose) == 72 and len(body.camera) == 3
        assert len(body.translation) == 3 and body.translation[2] > 0


def test_decimated_meshes_are_smaller(vtest_frames, human_models, smpl_hmr_files) -> None:
    _, out = run_frame(vtest_frames[1], smpl_hmr(smpl_hmr_files, max_faces=1500), sec=62)
    meshes = [m for m in out["markers"].markers if m.ns == "mesh"]
    assert meshes and all(0 < len(m.points) <= 3 * 1500 and len(m.points) % 3 == 0 for m in meshes)


def test_missing_smpl_files_say_so_once_and_2d_continues(vtest_frames, human_models, tmp_path) -> None:
    node, out = run_frame(
        vtest_frames[1],
        [
            Parameter("mesh_model", value="smpl_hmr"),
            Parameter("smpl_model_path", value=str(tmp_path / "SMPL_NEUTRAL.pkl")),
            Parameter("hmr_checkpoint_path", value=str(tmp_path / "model_checkpoint.pt")),
        ],
        sec=63,
    )
    assert len(out["people"].people) >= 4
    assert not [m for m in out["markers"].markers if m.ns == "mesh"]
    assert node.errors_logged["mesh_model_unavailable"] == 1
    assert "SMPL_NEUTRAL.pkl" in node.last_error["mesh_model_unavailable"]


def test_default_mesh_is_anny_fitted_without_licensed_files(vtest_frames, human_models) -> None:
    """No SMPL/HMR files configured: mesh_model auto fits the free Anny model and publishes its meshes."""
    from pose_ros.core.body.anny_fit import anny_cache_ready

    if not anny_cache_ready():
        pytest.skip("needs Anny's model data from scripts/setup.sh (python -m pose_ros.tools.prepare_anny)")
    _, out = run_frame(vtest_frames[1], [Parameter("mesh_max_faces", value=3000)], sec=64)
    people = out["people"].people
    meshes = {m.id: m for m in out["markers"].markers if m.ns == "mesh"}
    assert len(people) >= 4 and set(meshes) == {p.id for p in people if p.body_model.name}
    assert len(meshes) >= 3
    for person in people:
        if person.id in meshes:
            assert person.body_model.name == "anny" and len(person.body_model.betas) == 6
            assert len(person.body_model.pose) == 3 * len(person.body_model.pose_joint_names)
            assert 0 < len(meshes[person.id].points) <= 3 * 3000
            assert person.body_model.translation[2] > 1.0  # metres in front of the camera
