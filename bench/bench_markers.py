"""What a frame's RViz markers cost to publish and to read: rclpy message objects vs pose_ros.ros.marker_wire.

    source scripts/env.sh && python bench/bench_markers.py            # 5 people, 2000-face meshes (the defaults)
    python bench/bench_markers.py --people 10 --faces 0              # full Anny meshes

Per frame, one thread, `time.thread_time`, median of `--repeats`:
  publish, rclpy     the MarkerArray built from Point objects and serialized by rclpy
  serialize, rclpy   rclpy's serialization alone (Point objects built once per mesh fit and reused, as pose_node
                     did before marker_wire)
  publish, wire      `people_to_markers` + `encode_marker_array` (what pose_node publishes)
  read, rclpy        `deserialize_message` into Point objects (a Python subscriber)
  read, wire         `decode_marker_array` (pose_viewer; the cost of a C++ subscriber such as RViz is of this kind)
Both paths carry the same markers (checked: rclpy reads the wire bytes as the same MarkerArray).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from geometry_msgs.msg import Point
from rclpy.serialization import deserialize_message, serialize_message
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.timing import median_thread_ms
from pose_ros.core.camera import default_camera_matrix
from pose_ros.core.person import BodyModelParams, Person
from pose_ros.ros.marker_wire import decode_marker_array, encode_marker_array
from pose_ros.ros.messages import people_to_markers

ANNY_VERTICES, ANNY_FACES = 13718, 27420  # the size of an undecimated Anny mesh (faces are triangles)


def meshed_people(count: int, faces: int, rng: np.random.Generator) -> list[Person]:
    """`count` people with 17 keypoints and a random mesh of `faces` triangles (0: Anny's full size)."""
    faces = faces or ANNY_FACES
    people = []
    for i in range(count):
        xy = rng.uniform(50, 600, (17, 2)).astype(np.float32)
        vertices = rng.normal(size=(max(faces // 2, 3), 3)).astype(np.float32) + np.float32([0.0, 0.0, 3.0])
        body = BodyModelParams("anny", np.zeros(6), np.zeros(3), np.zeros(3), vertices=vertices,
                               faces=rng.integers(0, len(vertices), (faces, 3)))  # fmt: skip
        people.append(Person(xy, np.full(17, 0.9, np.float32), 0.9, np.float32([40, 40, 620, 460]), "coco17",
                             id=i, body_model=body))  # fmt: skip
    return people


def as_rclpy(wire_markers) -> MarkerArray:
    """The same markers as rclpy message objects, built as pose_node built them before marker_wire."""
    markers = []
    for w in wire_markers:
        m = Marker(ns=w.ns, id=w.id, type=w.type, action=w.action)
        m.header.frame_id = w.frame_id
        m.pose.orientation.w = 1.0
        m.scale.x, m.scale.y, m.scale.z = w.scale
        m.color = ColorRGBA(r=w.color[0], g=w.color[1], b=w.color[2], a=w.color[3])
        m.points = [Point(x=x, y=y, z=z) for x, y, z in w.point_array().tolist()]
        markers.append(m)
    return MarkerArray(markers=markers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=5)
    parser.add_argument("--faces", type=int, default=2000, help="faces per mesh (pose_node's mesh_max_faces; 0: full)")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    people = meshed_people(args.people, args.faces, np.random.default_rng(0))
    header, K = Header(frame_id="camera"), default_camera_matrix(640, 480)

    def wire() -> bytes:
        return encode_marker_array(people_to_markers(people, header, K, 0.3))

    def rclpy_objects() -> bytes:
        return serialize_message(as_rclpy(people_to_markers(people, header, K, 0.3)))

    prebuilt = as_rclpy(people_to_markers(people, header, K, 0.3))
    data = wire()
    assert deserialize_message(data, MarkerArray) == as_rclpy(decode_marker_array(data))
    rows = [
        ("publish, rclpy objects", median_thread_ms(rclpy_objects, args.repeats)),
        ("serialize only, rclpy objects", median_thread_ms(lambda: serialize_message(prebuilt), args.repeats)),
        ("publish, marker_wire", median_thread_ms(wire, args.repeats)),
        ("read, rclpy objects", median_thread_ms(lambda: deserialize_message(data, MarkerArray), args.repeats)),
        ("read, marker_wire", median_thread_ms(lambda: decode_marker_array(data), args.repeats)),
    ]
    print(f"{args.people} people, {args.faces or ANNY_FACES} faces per mesh: {len(data) / 1e6:.2f} MB per MarkerArray")
    print("| per frame | CPU ms |")
    print("|---|---|")
    for name, ms in rows:
        print(f"| {name} | {ms:.1f} |")
    print(f"publish: {rows[0][1] / rows[2][1]:.0f}x less CPU ({rows[1][1] / rows[2][1]:.0f}x vs serializing cached "
          f"objects); read: {rows[3][1] / rows[4][1]:.0f}x less CPU")


if __name__ == "__main__":
    main()
