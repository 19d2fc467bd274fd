"""Core results (`Person`) → ROS messages: PersonArray and RViz markers (serialized by marker_wire).

Every output carries the input image's header unchanged. Markers live in the image's frame (the camera
optical frame): a keypoint with a 3D position is drawn there; a 2D-only keypoint is placed on its viewing
ray at `marker_depth` metres, so skeletons line up with the image when viewed from the camera.
"""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Header
from visualization_msgs.msg import Marker

from pose_ros.core.camera import deproject
from pose_ros.core.draw import ID_COLORS
from pose_ros.core.person import Person
from pose_ros.core.skeletons import get_layout
from pose_ros.msg import BodyModel, Keypoint2D, PersonArray
from pose_ros.msg import Person as PersonMsg
from pose_ros.ros.marker_wire import WireMarker

# Distinct colours (RGB 0..1) indexed by person id: the overlay's box colours, so a person has one colour
# in the overlay, in RViz and in pose_viewer.
PALETTE = np.array(ID_COLORS, np.float64) / 255.0
MARKER_NAMESPACES = ("skeleton", "joints", "mesh")
PERSON_HEIGHT_M = 1.7  # the person height marker sizes (line width, joint size) are given for


def person_color(person_id: int) -> tuple[float, float, float]:
    """Colour (r, g, b) in 0..1 for a person id; the same id always gets the same colour."""
    r, g, b = PALETTE[person_id % len(PALETTE)]
    return float(r), float(g), float(b)


NS_PER_S = 1_000_000_000


def stamp_nanoseconds(stamp: Time) -> int:
    """A header stamp as integer nanoseconds (exact)."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def stamp_seconds(stamp: Time) -> float:
    """A header stamp as float seconds."""
    return stamp_nanoseconds(stamp) / NS_PER_S


def stamp_from_nanoseconds(nanoseconds: int) -> Time:
    """Integer nanoseconds → builtin_interfaces/Time (inverse of `stamp_nanoseconds`)."""
    return Time(sec=int(nanoseconds // NS_PER_S), nanosec=int(nanoseconds % NS_PER_S))


def camera_matrix_from_info(info: CameraInfo) -> np.ndarray | None:
    """CameraInfo K as a (3, 3) float64 matrix, or None when uncalibrated (fx or fy not positive)."""
    k = np.asarray(info.k, np.float64).reshape(3, 3)
    return k if k[0, 0] > 0 and k[1, 1] > 0 else None


def _float_list(values: np.ndarray | None) -> list[float]:
    return [] if values is None else np.asarray(values, np.float32).ravel().tolist()


def _points(xyz: np.ndarray) -> list[Point]:
    return [Point(x=x, y=y, z=z) for x, y, z in xyz.tolist()]


def person_to_msg(person: Person, keypoint_threshold: float) -> PersonMsg:
    """One `Person` → pose_ros/Person; visible = confidence >= keypoint_threshold."""
    msg = PersonMsg()
    msg.id = int(person.id)
    msg.tracked = bool(person.tracked)
    msg.score = float(person.score)
    msg.bbox = np.asarray(person.bbox_xywh, np.float32)
    msg.layout = person.layout
    xs, ys = person.keypoints_xy[:, 0].tolist(), person.keypoints_xy[:, 1].tolist()
    confidences = person.confidences.tolist()
    msg.keypoints = [
        Keypoint2D(x=x, y=y, confidence=c, visible=c >= keypoint_threshold)
        for x, y, c in zip(xs, ys, confidences, strict=True)
    ]
    if person.keypoints_3d is not None:
        msg.keypoints_3d = _points(np.asarray(person.keypoints_3d, np.float64))
        msg.keypoints_3d_source = person.keypoints_3d_source
    if person.body_model is not None:
        body = person.body_model
        msg.body_model = BodyModel(
            name=body.name,
            stamp=stamp_from_nanoseconds(person.body_model_stamp_ns),
            betas=_float_list(body.betas),
            pose=_float_list(body.pose),
            pose_joint_names=list(body.pose_joint_names),
            translation=_float_list(body.translation),
            camera=_float_list(body.camera),
        )
    return msg


def people_to_msg(
    people: list[Person],
    header: Header,
    image_size: tuple[int, int],
    mode: str,
    model: str,
    keypoint_threshold: float,
) -> PersonArray:
    """All people of a frame → PersonArray with the input `header`; image_size is (width, height) pixels."""
    msg = PersonArray()
    msg.header = header
    msg.image_width, msg.image_height = int(image_size[0]), int(image_size[1])
    msg.mode = mode
    msg.model = model
    msg.people = [person_to_msg(person, keypoint_threshold) for person in people]
    return msg


def keypoints_in_camera_frame(person: Person, camera_matrix: np.ndarray, marker_depth: float) -> np.ndarray:
    """(K, 3) metres: the person's 3D keypoints where known, else pixels deprojected at marker_depth; NaN if unknown."""
    xyz = deproject(person.keypoints_xy.astype(np.float64), marker_depth, camera_matrix)
    if person.keypoints_3d is not None:
        known = np.isfinite(person.keypoints_3d).all(axis=1)
        xyz[known] = person.keypoints_3d[known]
    return xyz


def people_to_markers(
    people: list[Person],
    header: Header,
    camera_matrix: np.ndarray,
    keypoint_threshold: float,
    marker_depth: float = 2.0,
    line_width: float = 0.02,
    joint_size: float = 0.04,
) -> list[WireMarker]:
    """A frame's markers (publish `encode_marker_array` of them as a visualization_msgs/MarkerArray): DELETEALL,
    then per person a LINE_LIST of limbs (ns "skeleton") and a SPHERE_LIST of joints (ns "joints"), and a
    TRIANGLE_LIST mesh (ns "mesh", 3 points per face) when the person has one.

    Marker ids are person ids; only keypoints with confidence >= keypoint_threshold are drawn. Every marker carries
    `header` (the image's frame and stamp).
    """
    frame = {"frame_id": header.frame_id, "stamp_ns": stamp_nanoseconds(header.stamp)}
    markers = [WireMarker(ns="", id=0, type=Marker.ARROW, action=Marker.DELETEALL, **frame)]
    for person in people:
        color = (*person_color(person.id), 1.0)
        xyz = keypoints_in_camera_frame(person, camera_matrix, marker_depth)
        visible = (person.confidences >= keypoint_threshold) & np.isfinite(xyz).all(axis=1)
        limbs = np.array(get_layout(person.layout).limbs)
        limbs = limbs[visible[limbs[:, 0]] & visible[limbs[:, 1]]]
        # sizes are for a person drawn 1.7 m tall; a 2D-only skeleton on its rays at marker_depth is drawn smaller
        # (its true distance is unknown), and its joints and lines shrink with it instead of swallowing it
        joints = xyz[visible]
        drawn_m = float(np.ptp(joints[:, 1])) if len(joints) >= 2 else PERSON_HEIGHT_M
        size = min(1.0, max(drawn_m, 1e-3) / PERSON_HEIGHT_M) if person.keypoints_3d is None else 1.0
        markers.append(WireMarker("skeleton", person.id, Marker.LINE_LIST, scale=(line_width * size, 0.0, 0.0),
                                  color=color, points=xyz[limbs.ravel()], **frame))
        markers.append(WireMarker("joints", person.id, Marker.SPHERE_LIST, scale=(joint_size * size,) * 3, color=color,
                                  points=joints, **frame))
        body = person.body_model
        if body is not None and body.vertices is not None and body.faces is not None:
            triangles = np.asarray(body.vertices, np.float64)[np.asarray(body.faces).ravel()]
            markers.append(WireMarker("mesh", person.id, Marker.TRIANGLE_LIST, color=(*color[:3], 0.8),
                                      points=triangles, **frame))
    return markers
