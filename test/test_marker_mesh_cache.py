"""Mesh markers are built once per fit: MeshPointsCache keyed by (person id, fitted frame's stamp)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from std_msgs.msg import Header

from pose_ros.core.camera import default_camera_matrix
from pose_ros.core.person import BodyModelParams, Person
from pose_ros.ros.messages import MeshPointsCache, people_to_markers

K = default_camera_matrix(640, 480)


def meshed_person(person_id: int, stamp_ns: int, offset_m: float) -> Person:
    vertices = np.array([[0.0, 0.0, 2.0], [0.1, 0.0, 2.0], [0.0, 0.1, 2.0], [0.1, 0.1, 2.0]]) + offset_m
    faces = np.array([[0, 1, 2], [1, 3, 2]])
    body = BodyModelParams("anny", np.zeros(10), np.zeros(72), np.zeros(3), np.zeros(3), (), vertices, faces)
    xy = np.full((17, 2), 100.0, np.float32) + person_id
    return Person(xy, np.full(17, 0.9, np.float32), 0.9, np.array([90, 90, 130, 130], np.float32), "coco17",
                  id=person_id, tracked=True, body_model=body, body_model_stamp_ns=stamp_ns)  # fmt: skip


def mesh_points(markers) -> dict[int, list[tuple[float, float, float]]]:
    return {m.id: [(p.x, p.y, p.z) for p in m.points] for m in markers.markers if m.ns == "mesh"}


def test_cached_markers_equal_fresh_ones_and_follow_new_fits() -> None:
    cache = MeshPointsCache()
    people = [meshed_person(1, 1000, 0.0), meshed_person(2, 1000, 0.5)]
    fresh = people_to_markers(people, Header(frame_id="cam"), K, 0.3)
    first = people_to_markers(people, Header(frame_id="cam"), K, 0.3, mesh_cache=cache)
    assert mesh_points(first) == mesh_points(fresh)
    assert len(mesh_points(first)[1]) == 6 and mesh_points(first)[2][0] == (0.5, 0.5, 2.5)

    # The next frame carries the same fits: the points are the very objects built before (built once per fit).
    again = people_to_markers(people, Header(frame_id="cam"), K, 0.3, mesh_cache=cache)
    before = {m.id: m.points for m in first.markers if m.ns == "mesh"}
    after = {m.id: m.points for m in again.markers if m.ns == "mesh"}
    assert all(a[0] is b[0] for a, b in zip(after.values(), before.values(), strict=True))

    # A new fit of person 1 (new stamp, moved mesh) is rebuilt; person 2 keeps its points.
    refit = [replace(meshed_person(1, 2000, 1.0)), people[1]]
    moved = mesh_points(people_to_markers(refit, Header(frame_id="cam"), K, 0.3, mesh_cache=cache))
    assert moved[1][0] == (1.0, 1.0, 3.0) and moved[2] == mesh_points(fresh)[2]


def test_cache_forgets_people_no_longer_published() -> None:
    cache = MeshPointsCache()
    people_to_markers([meshed_person(1, 1000, 0.0), meshed_person(2, 1000, 0.0)], Header(), K, 0.3, mesh_cache=cache)
    people_to_markers([meshed_person(2, 1000, 0.0)], Header(), K, 0.3, mesh_cache=cache)
    assert {key[:2] for key in cache._points} == {(2, 1000)}
