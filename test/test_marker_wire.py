"""marker_wire against rclpy's own serialization: what pose_node publishes is the MarkerArray RViz reads, and
pose_viewer reads exactly what rclpy (and so RViz) would have written."""

from __future__ import annotations

import numpy as np
import pytest
from geometry_msgs.msg import Point
from rclpy.serialization import deserialize_message, serialize_message
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from pose_ros.core.person import BodyModelParams, Person
from pose_ros.ros.marker_wire import WireMarker, decode_marker_array, encode_marker_array
from pose_ros.ros.messages import people_to_markers


def random_markers(rng: np.random.Generator) -> list[WireMarker]:
    """Markers whose strings and point counts vary, so every alignment case of the wire format occurs."""
    return [
        WireMarker(
            ns="n" * int(rng.integers(0, 9)), id=int(rng.integers(-3, 1000)), type=int(rng.integers(0, 12)),
            action=int(rng.integers(0, 4)), frame_id="f" * int(rng.integers(0, 7)),
            stamp_ns=int(rng.integers(0, 2**31)) * 1_000_000_000 + int(rng.integers(0, 10**9)),
            position=tuple(rng.normal(size=3)), orientation=tuple(rng.normal(size=4)), scale=tuple(rng.random(3)),
            color=tuple(np.float32(rng.random(4)).tolist()), points=rng.normal(size=(int(rng.integers(0, 9)), 3)),
        )
        for _ in range(int(rng.integers(0, 5)))
    ]


def as_message(marker: WireMarker) -> Marker:
    """The same marker built field by field with rclpy's message classes."""
    msg = Marker(ns=marker.ns, id=marker.id, type=marker.type, action=marker.action)
    msg.header.frame_id = marker.frame_id
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(marker.stamp_ns, 1_000_000_000)
    p, q = msg.pose.position, msg.pose.orientation
    p.x, p.y, p.z = marker.position
    q.x, q.y, q.z, q.w = marker.orientation
    msg.scale.x, msg.scale.y, msg.scale.z = marker.scale
    msg.color = ColorRGBA(r=marker.color[0], g=marker.color[1], b=marker.color[2], a=marker.color[3])
    msg.points = [Point(x=x, y=y, z=z) for x, y, z in marker.point_array().tolist()]
    return msg


@pytest.mark.parametrize("seed", range(40))
def test_encoded_markers_are_what_rclpy_writes_and_decoding_reads_rclpy(seed: int) -> None:
    markers = random_markers(np.random.default_rng(seed))
    reference = serialize_message(MarkerArray(markers=[as_message(m) for m in markers]))
    encoded = encode_marker_array(markers)
    assert len(encoded) == len(reference)  # same layout (padding bytes are left undefined by the middleware)
    assert deserialize_message(encoded, MarkerArray) == MarkerArray(markers=[as_message(m) for m in markers])
    decoded = decode_marker_array(reference)
    assert len(decoded) == len(markers)
    for got, sent in zip(decoded, markers, strict=True):
        assert (got.ns, got.id, got.type, got.action, got.frame_id, got.stamp_ns) == (
            sent.ns, sent.id, sent.type, sent.action, sent.frame_id, sent.stamp_ns)  # fmt: skip
        assert got.position == sent.position and got.orientation == sent.orientation and got.scale == sent.scale
        np.testing.assert_array_equal(np.float32(got.color), np.float32(sent.color))
        np.testing.assert_array_equal(got.points, sent.point_array())


def test_decoding_skips_fields_pose_ros_does_not_use() -> None:
    msg = as_message(WireMarker("text", 3, Marker.TEXT_VIEW_FACING, points=np.ones((2, 3))))
    msg.text, msg.mesh_resource, msg.texture_resource = "hello", "package://x/y.dae", "t"
    msg.colors = [ColorRGBA(r=1.0)] * 2
    msg.texture.data = [1, 2, 3]
    after = as_message(WireMarker("after", 4, Marker.SPHERE_LIST, points=np.full((1, 3), 7.0)))
    decoded = decode_marker_array(serialize_message(MarkerArray(markers=[msg, after])))
    assert [(m.ns, m.id) for m in decoded] == [("text", 3), ("after", 4)]
    np.testing.assert_array_equal(decoded[1].points, np.full((1, 3), 7.0))


def test_decoding_rejects_what_is_not_a_marker_array() -> None:
    with pytest.raises(ValueError):
        decode_marker_array(b"\x00\x01\x00\x00\x05\x00\x00\x00")  # 5 markers announced, none there
    with pytest.raises(ValueError):
        decode_marker_array(b"\x00\x00\x00\x00")  # big-endian encapsulation


def test_people_markers_carry_the_mesh_triangles_and_the_image_header() -> None:
    vertices = np.random.default_rng(1).normal(size=(10, 3)).astype(np.float32)
    faces = np.array([[0, 1, 2], [2, 3, 9], [4, 5, 6]])
    xy = np.tile(np.float32([[320.0, 240.0]]), (17, 1))
    person = Person(xy, np.full(17, 0.9, np.float32), 0.9, np.float32([300, 200, 340, 280]), "coco17", id=5,
                    body_model=BodyModelParams("anny", np.zeros(6), np.zeros(3), np.zeros(3), vertices=vertices,
                                               faces=faces))
    header = Header(frame_id="camera_optical")
    header.stamp.sec, header.stamp.nanosec = 12, 345
    array = deserialize_message(encode_marker_array(people_to_markers([person], header, np.eye(3), 0.3)), MarkerArray)
    assert array.markers[0].action == Marker.DELETEALL
    assert all(m.header == header for m in array.markers)
    mesh = next(m for m in array.markers if m.ns == "mesh")
    assert mesh.id == 5 and mesh.type == Marker.TRIANGLE_LIST
    np.testing.assert_allclose([(p.x, p.y, p.z) for p in mesh.points], vertices[faces.ravel()], rtol=1e-6)


def test_a_2d_only_skeleton_drawn_small_at_marker_depth_gets_joints_and_lines_to_its_scale() -> None:
    """Sizes are for a person drawn 1.7 m tall: a person 100 px tall placed on its rays at 2 m (f = 500 px) is drawn
    0.4 m tall, so its joints are 0.4 / 1.7 of the default size; a person with 3D keypoints keeps the default."""
    k = np.array([[500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]])
    xy = np.stack([np.full(17, 320.0), np.linspace(190.0, 290.0, 17)], axis=1).astype(np.float32)
    flat = Person(xy, np.full(17, 0.9, np.float32), 0.9, np.float32([300, 190, 40, 100]), "coco17", id=1)
    solid = Person(xy.copy(), np.full(17, 0.9, np.float32), 0.9, np.float32([300, 190, 40, 100]), "coco17", id=2,
                   keypoints_3d=np.stack([np.zeros(17), np.linspace(-0.85, 0.85, 17), np.full(17, 9.0)], 1))
    for people in ([flat, solid], [solid, flat]):  # one person's size never carries over to the next
        markers = {(m.ns, m.id): m for m in people_to_markers(people, Header(), k, 0.3, marker_depth=2.0)}
        assert markers[("joints", 1)].scale[0] == pytest.approx(0.04 * 0.4 / 1.7)
        assert markers[("skeleton", 1)].scale[0] == pytest.approx(0.02 * 0.4 / 1.7)
        assert markers[("joints", 2)].scale[0] == pytest.approx(0.04)
