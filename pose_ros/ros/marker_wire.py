"""visualization_msgs/MarkerArray to and from its serialized form (CDR, as the ROS middleware writes it), with
marker points as NumPy arrays.

A body mesh is a TRIANGLE_LIST marker of 3 points per face: 5 people x 2000 faces are 30 000
`geometry_msgs/Point` objects per frame. rclpy builds, serializes and deserializes those one Python object at a
time (about 100 + 85 + 75 ms per frame on a 2-core CPU); here the points go to and from the wire as one array
copy. pose_node publishes `encode_marker_array`'s bytes (`Publisher.publish` takes serialized messages) and
pose_viewer reads arrays with `decode_marker_array`. Both are checked against rclpy's own (de)serialization in
test/test_marker_wire.py.

Wire format (XCDR1, little endian, as rmw_fastrtps/rmw_cyclonedds write these plain types): a 4-byte
encapsulation header, then the fields in message order; each primitive aligned to its size (relative to the end
of the header), strings as uint32 length (with the terminating NUL) + bytes + NUL, sequences as uint32 count +
elements.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
from visualization_msgs.msg import Marker

ENCAPSULATION_CDR_LE = b"\x00\x01\x00\x00"


@dataclass(frozen=True)
class WireMarker:
    """The fields of a visualization_msgs/Marker that pose_ros uses, points as an array.

    points: (N, 3) float64 metres in the marker's frame (before `position`/`orientation` are applied).
    color: (r, g, b, a) in [0, 1]. position: (x, y, z); orientation: quaternion (x, y, z, w).
    """

    ns: str
    id: int
    type: int
    action: int = Marker.ADD
    frame_id: str = ""
    stamp_ns: int = 0
    position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    orientation: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)
    scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    color: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    points: np.ndarray | None = None

    def point_array(self) -> np.ndarray:
        """(N, 3) float64 points ((0, 3) when there are none)."""
        return np.zeros((0, 3)) if self.points is None else np.asarray(self.points, np.float64).reshape(-1, 3)


class _Writer:
    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0  # bytes written after the encapsulation header (alignment is relative to it)

    def raw(self, data: bytes) -> None:
        self.parts.append(data)
        self.size += len(data)

    def align(self, n: int) -> None:
        pad = -self.size % n
        if pad:
            self.raw(b"\x00" * pad)

    def pack(self, fmt: str, *values, alignment: int) -> None:
        self.align(alignment)
        self.raw(struct.pack("<" + fmt, *values))

    def string(self, text: str) -> None:
        data = text.encode() + b"\x00"
        self.pack("I", len(data), alignment=4)
        self.raw(data)

    def bytes(self) -> bytes:
        return ENCAPSULATION_CDR_LE + b"".join(self.parts)


def _write_marker(w: _Writer, m: WireMarker) -> None:
    sec, nanosec = divmod(int(m.stamp_ns), 1_000_000_000)
    w.pack("iI", sec, nanosec, alignment=4)  # header.stamp
    w.string(m.frame_id)
    w.string(m.ns)
    w.pack("iii", m.id, m.type, m.action, alignment=4)
    w.pack("7d", *m.position, *m.orientation, alignment=8)  # pose
    w.pack("3d", *m.scale, alignment=8)
    w.pack("4f", *m.color, alignment=4)
    w.pack("iI", 0, 0, alignment=4)  # lifetime 0: until replaced or deleted
    w.pack("?", False, alignment=1)  # frame_locked
    points = m.point_array()
    w.pack("I", len(points), alignment=4)
    if len(points):
        w.align(8)
        w.raw(np.ascontiguousarray(points, "<f8").tobytes())
    w.pack("I", 0, alignment=4)  # colors: none (one colour per marker)
    w.string("")  # texture_resource
    w.pack("iI", 0, 0, alignment=4)  # texture (sensor_msgs/CompressedImage): header.stamp
    w.string("")  # texture.header.frame_id
    w.string("")  # texture.format
    w.pack("I", 0, alignment=4)  # texture.data
    w.pack("I", 0, alignment=4)  # uv_coordinates
    w.string("")  # text
    w.string("")  # mesh_resource
    w.string("")  # mesh_file.filename
    w.pack("I", 0, alignment=4)  # mesh_file.data
    w.pack("?", False, alignment=1)  # mesh_use_embedded_materials


def encode_marker_array(markers: list[WireMarker]) -> bytes:
    """The serialized visualization_msgs/MarkerArray of `markers` (publishable as is)."""
    w = _Writer()
    w.pack("I", len(markers), alignment=4)
    for marker in markers:
        _write_marker(w, marker)
    return w.bytes()


class _Reader:
    def __init__(self, data: bytes) -> None:
        if data[:4] != ENCAPSULATION_CDR_LE:
            raise ValueError(f"not a little-endian CDR message (encapsulation {data[:4].hex()})")
        self.view = memoryview(data)[4:]
        self.pos = 0

    def unpack(self, fmt: str, alignment: int) -> tuple:
        self.pos += -self.pos % alignment
        values = struct.unpack_from("<" + fmt, self.view, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def string(self) -> str:
        (length,) = self.unpack("I", 4)
        text = bytes(self.view[self.pos : self.pos + length - 1]).decode()
        self.pos += length
        return text

    def skip_sequence(self, element_size: int, alignment: int) -> None:
        (count,) = self.unpack("I", 4)
        if count:
            self.pos += -self.pos % alignment + count * element_size

    def array(self, count: int, dtype: str, width: int, alignment: int) -> np.ndarray:
        self.pos += -self.pos % alignment
        values = np.frombuffer(self.view, dtype, count * width, self.pos).reshape(count, width)
        self.pos += values.nbytes
        return values


def _read_marker(r: _Reader) -> WireMarker:
    sec, nanosec = r.unpack("iI", 4)
    frame_id = r.string()
    ns = r.string()
    marker_id, marker_type, action = r.unpack("iii", 4)
    pose = r.unpack("7d", 8)
    scale = r.unpack("3d", 8)
    color = r.unpack("4f", 4)
    r.unpack("iI", 4)  # lifetime
    r.unpack("?", 1)  # frame_locked
    (count,) = r.unpack("I", 4)
    points = r.array(count, "<f8", 3, 8).copy() if count else np.zeros((0, 3))
    r.skip_sequence(16, 4)  # colors
    r.string()  # texture_resource
    r.unpack("iI", 4)
    r.string()
    r.string()
    r.skip_sequence(1, 1)  # texture
    r.skip_sequence(8, 4)  # uv_coordinates
    r.string()  # text
    r.string()  # mesh_resource
    r.string()
    r.skip_sequence(1, 1)  # mesh_file
    r.unpack("?", 1)  # mesh_use_embedded_materials
    return WireMarker(
        ns=ns, id=marker_id, type=marker_type, action=action, frame_id=frame_id,
        stamp_ns=sec * 1_000_000_000 + nanosec, position=pose[:3], orientation=pose[3:], scale=scale, color=color,
        points=points,
    )  # fmt: skip


def decode_marker_array(data: bytes) -> list[WireMarker]:
    """The markers of a serialized visualization_msgs/MarkerArray (per-vertex colours, texts, textures and mesh
    files are skipped); ValueError on data that is not one."""
    r = _Reader(data)
    try:
        (count,) = r.unpack("I", 4)
        return [_read_marker(r) for _ in range(count)]
    except (struct.error, UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"not a serialized MarkerArray: {error}") from error
