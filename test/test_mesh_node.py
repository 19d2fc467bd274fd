"""Mesh stage in pose_node over real DDS: SMPL + HMR files built by the tests → a TRIANGLE_LIST per person; meshes
are fitted beside the 2D path and follow their tracks (stamped with the frame they were fitted on)."""

from __future__ import annotations

import time

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


def run_frame(frame_rgb: np.ndarray, overrides: list[Parameter], sec: int, until_meshed: bool = True):
    """Send `frame_rgb` (again, with new stamps, until its people carry meshes when `until_meshed`): (node, outputs).

    Meshes are fitted beside the 2D path, so the first frames of a track are published before its mesh exists."""
    with RosGraph() as ros:
        node, probe = ros.start_pose_node(Parameter("mesh_rate_hz", value=0.0), *overrides, mesh=True)
        deadline = time.monotonic() + 120
        for attempt in range(1000):
            out = probe.outputs(probe.send(bgr_frame(frame_rgb, sec * 1000 + attempt)), ("people", "markers"), 60)
            meshed = [p for p in out["people"].people if p.body_model.name]
            if not until_meshed or len(meshed) >= 3 or time.monotonic() > deadline:
                return node, out
            time.sleep(0.2)


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
    assert len(people) >= 4 and set(meshes) == {p.id for p in people if p.body_model.name}
    assert len(meshes) >= 4
    for person in people:
        if person.id not in meshes:
            continue
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
        until_meshed=False,
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


def anny_ready() -> None:
    from pose_ros.core.body.anny_fit import anny_cache_ready

    if not anny_cache_ready():
        pytest.skip("needs Anny's model data from scripts/setup.sh (python -m pose_ros.tools.prepare_anny)")


def stamp_ns(stamp) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def test_meshes_come_beside_the_2d_path_and_stay_with_their_tracks(demo_data, human_models) -> None:
    """Default configuration on a walking sequence: every frame is published; once a track has a mesh, every later
    frame carries that track's newest body model and 3D keypoints (no flicker), stamped with an earlier or the
    same frame that was really sent, and a newer mesh replaces it as the worker fits newer frames."""
    from pose_ros.core.sources import read_video_frames

    anny_ready()
    frames = read_video_frames(demo_data / "vtest.avi", list(range(300, 330)))
    with RosGraph() as ros:
        _, probe = ros.start_pose_node(Parameter("mesh_max_faces", value=500), mesh=True)
        sent, outputs = [], []
        for index, frame in enumerate(frames):
            key = probe.send(bgr_frame(frame, sec=7000 + index))
            sent.append(stamp_ns(bgr_frame(frame[:2, :2], sec=7000 + index).header.stamp))
            outputs.append(probe.outputs(key, topics=("people", "markers"), timeout=60))
            time.sleep(0.15)
    assert len(outputs) == len(frames)  # one result per frame, none waits for a mesh
    had_mesh: dict[int, int] = {}  # track id → stamp of its newest mesh so far
    mesh_stamps = set()
    for out in outputs:
        header_ns = stamp_ns(out["people"].header.stamp)
        mesh_markers = {m.id for m in out["markers"].markers if m.ns == "mesh"}
        for person in out["people"].people:
            body = person.body_model
            if person.id in had_mesh:
                assert body.name == "anny", f"track {person.id} lost its mesh"
            if not body.name:
                assert not person.keypoints_3d
                continue
            fitted_ns = stamp_ns(body.stamp)
            assert fitted_ns in sent and fitted_ns <= header_ns
            assert fitted_ns >= had_mesh.get(person.id, 0), "a mesh never goes back to an older frame"
            had_mesh[person.id] = fitted_ns
            mesh_stamps.add(fitted_ns)
            assert person.keypoints_3d_source == "body_model" and len(person.keypoints_3d) == 17
            assert person.id in mesh_markers
    assert len(had_mesh) >= 3, "most walkers get a mesh within 30 frames"
    assert len(mesh_stamps) >= 2, "meshes are refitted on newer frames"
    assert any(stamp_ns(o["people"].header.stamp) not in mesh_stamps for o in outputs[1:]), "2D went on meanwhile"


def test_without_tracking_a_mesh_is_attached_only_to_its_own_frame(vtest_frames, human_models) -> None:
    anny_ready()
    with RosGraph() as ros:
        _, probe = ros.start_pose_node(
            Parameter("tracking", value=False), Parameter("mesh_rate_hz", value=0.0), mesh=True
        )
        for sec in range(8000, 8003):
            out = probe.outputs(probe.send(bgr_frame(vtest_frames[1], sec)), topics=("people",), timeout=60)
            meshed = [p for p in out["people"].people if p.body_model.name]
            assert len(meshed) >= 3
            for person in meshed:
                assert not person.tracked
                assert person.body_model.stamp == out["people"].header.stamp
