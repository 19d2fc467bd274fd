"""Recorded bags in and out, with bags this test writes from real vtest.avi frames (rosbags writer, as rosbag2 does):
image_source replays them over DDS (paced by pose_node with /clock and use_sim_time; compressed sqlite3 at a
scaled rate), process_bag processes one offline with the same people as the paced online run, and a bag without
the requested topic stops with the list of its topics."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from ros_harness import CPU_NO_MESH, Probe, RosGraph
from rosbags.rosbag2 import Reader
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from pose_ros.core.camera import CameraCalibration
from pose_ros.core.sources import read_video_frames
from pose_ros.ros.bag_source import BagError, BagSource
from pose_ros.ros.bag_writer import BagWriter
from pose_ros.ros.diagnostics import LATENCY_FROM_RECEIPT
from pose_ros.ros.image_conversion import array_to_image
from pose_ros.ros.image_source import ImageSource, calibration_to_msg
from pose_ros.ros.pose_node import PoseNode, activate
from pose_ros.ros.recorder import pose_ros_typestore

REPO = Path(__file__).resolve().parents[1]
RELIABLE = QoSProfile(depth=100, reliability=QoSReliabilityPolicy.RELIABLE)
BASE_STAMP_NS = 1_700_000_000_000_000_000  # the recording's time: far from the wall clock on purpose
FRAME_ID = "bag_camera_optical_frame"


@pytest.fixture(scope="module")
def walkers(demo_data: Path) -> list[np.ndarray]:
    """Six RGB frames of vtest.avi, 10 frames apart."""
    return read_video_frames(demo_data / "vtest.avi", range(0, 60, 10))


def write_bag(
    path: Path, frames_rgb: list[np.ndarray], storage: str = "mcap", compressed: bool = False, period_s: float = 0.1
) -> tuple[list[tuple[int, int]], list[int], list]:
    """A camera recording: /cam/image_raw (or /cam/image_raw/compressed, JPEG) + /cam/camera_info, header stamps
    BASE + i * period_s, frame_id FRAME_ID, recorded 3 ms after each stamp. Returns (stamps as (sec, nanosec),
    recording times ns, the image messages written)."""
    stamps, times, images = [], [], []
    with BagWriter(path, storage) as writer:
        topic = "/cam/image_raw/compressed" if compressed else "/cam/image_raw"
        writer.add_topic(topic, CompressedImage if compressed else Image)
        writer.add_topic("/cam/camera_info", CameraInfo)
        writer.add_topic("/cam/unrelated", Clock)
        for i, frame in enumerate(frames_rgb):
            stamp_ns = BASE_STAMP_NS + int(i * period_s * 1e9)
            bgr = np.ascontiguousarray(frame[:, :, ::-1])
            if compressed:
                msg = CompressedImage(format="jpeg", data=cv2.imencode(".jpg", bgr)[1].tobytes())
            else:
                msg = array_to_image(bgr, "bgr8")
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
            msg.header.frame_id = FRAME_ID
            record_ns = stamp_ns + 3_000_000
            info = calibration_to_msg(CameraCalibration.default(frame.shape[1], frame.shape[0]), msg.header)
            writer.write("/cam/camera_info", record_ns - 1000, info)
            writer.write(topic, record_ns, msg)
            stamps.append((msg.header.stamp.sec, msg.header.stamp.nanosec))
            times.append(record_ns)
            images.append(msg)
    return stamps, times, images


class Listener(Node):
    """Records /clock, /diagnostics and replayed topics with their wall time of arrival."""

    def __init__(self, context, topics: dict[str, type]) -> None:
        super().__init__("bag_listener", context=context)
        self.received: dict[str, list[tuple[float, object]]] = defaultdict(list)
        self._lock = threading.Lock()
        for topic, msg_class in topics.items():
            self.create_subscription(msg_class, topic, self._recorder(topic), RELIABLE)

    def _recorder(self, topic: str):
        def record(msg) -> None:
            with self._lock:
                self.received[topic].append((time.monotonic(), msg))

        return record

    def messages(self, topic: str) -> list[tuple[float, object]]:
        with self._lock:
            return list(self.received[topic])


def wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout_s} s")
        time.sleep(0.05)


def people_of(msg) -> list[tuple[int, np.ndarray]]:
    """(id, (K, 3) x, y, confidence) per person of a PersonArray (rclpy or rosbags message)."""
    return [(p.id, np.array([[k.x, k.y, k.confidence] for k in p.keypoints], np.float64)) for p in msg.people]


def run_process_bag(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", "import sys; from pose_ros.tools.process_bag import main; sys.exit(main())"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=600, cwd=REPO)


def test_replay_paced_by_pose_node_on_sim_time_then_offline_gives_the_same_people(tmp_path, walkers) -> None:
    bag = tmp_path / "recording"
    stamps, record_times, _ = write_bag(bag, walkers)
    with RosGraph() as graph:
        node, probe = graph.start_pose_node(Parameter("use_sim_time", value=True), topics=("people",))
        listener = graph.add(Listener(graph.context, {"/diagnostics": DiagnosticArray}))
        source = graph.add(ImageSource(context=graph.context, parameter_overrides=[
            Parameter("source", value=str(bag)), Parameter("bag_pace", value="consumer"),
            Parameter("bag_pace_timeout_s", value=120.0), Parameter("publish_clock", value=True),
            Parameter("loop", value=False),
        ]))
        wait_for(lambda: source.finished, 300, "the bag was not played to its end")
        online = dict(probe.received["people"])
        assert sorted(online) == stamps, "one /people per recorded frame, with the recorded stamps"
        assert all(msg.header.frame_id == FRAME_ID for msg in online.values())
        assert source.player.published == len(stamps) and source.player.pace_timeouts == 0
        assert node.counters["frames_processed"] == len(stamps)
        assert node.statistics.dropped_in_queue == 0, "no frame lost or replaced in pose_node's keep-last-1 queue"
        # pose_node runs on the recording's time: its clock is the last /clock (the last frame's recording time).
        wait_for(lambda: node.get_clock().now().nanoseconds == record_times[-1], 10, "pose_node's clock is not /clock")
        assert node.get_clock().ros_time_is_active
        # The recording's time now stands still (no more /clock), diagnostics keep their wall-clock 1 Hz rhythm.
        start = time.monotonic()
        time.sleep(3.5)
        ours = [
            (t, msg) for t, msg in listener.messages("/diagnostics")
            if t >= start and msg.status[0].name.startswith("pose_node")
        ]
        assert 3 <= len(ours) <= 4, f"{len(ours)} diagnostics in 3.5 s of wall time"
        values = {kv.key: kv.value for kv in ours[-1][1].status[0].values}
        assert values["latency_reference"] == LATENCY_FROM_RECEIPT
        assert 0 < float(values["latency_p50_ms"]) < 60_000  # wall time receipt -> publish, not stamp arithmetic
        assert ours[-1][1].header.stamp.sec == record_times[-1] // 1_000_000_000, "stamped with the node's (sim) time"
    assert sum(len(people_of(m)) for m in online.values()) >= 2 * len(stamps), "vtest frames show several walkers"

    out = tmp_path / "processed"
    result = run_process_bag(str(bag), str(out), "-p", "device:=cpu", "-p", "mesh_model:=none", "--overlay")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert f"processed {len(stamps)} frames" in result.stdout and "frames/s" in result.stdout
    assert f"{len(stamps)}/{len(stamps)}" in result.stderr, "tqdm progress bar"
    store = pose_ros_typestore()
    with Reader(out) as reader:
        topics = {c.topic: c for c in reader.connections}
        assert set(topics) == {"/people", "/markers", "/overlay"}
        offline = {}
        for topic in ("/markers", "/overlay"):
            assert topics[topic].msgcount == len(stamps)
        for connection, time_ns, raw in reader.messages(connections=[topics["/people"]]):
            msg = store.deserialize_cdr(raw, connection.msgtype)
            key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
            assert key not in offline and msg.header.frame_id == FRAME_ID
            assert time_ns == record_times[stamps.index(key)], "written at the source frame's recording time"
            offline[key] = msg
        for connection, _, raw in reader.messages(connections=[topics["/overlay"]]):
            overlay = store.deserialize_cdr(raw, connection.msgtype)
            assert (overlay.width, overlay.height) == (768, 576) and overlay.header.frame_id == FRAME_ID
    assert sorted(offline) == stamps, "one PersonArray per input frame, with the input stamps"
    for key in stamps:
        ours, theirs = people_of(offline[key]), people_of(online[key])
        assert [i for i, _ in ours] == [i for i, _ in theirs], f"same people and track ids at {key}"
        for (_, a), (_, b) in zip(ours, theirs, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-3)


def test_replay_compressed_sqlite3_bag_at_a_scaled_rate_with_clock(tmp_path, walkers) -> None:
    bag = tmp_path / "compressed"
    period_s, rate = 0.5, 5.0
    stamps, record_times, written = write_bag(bag, walkers[:4], storage="sqlite3", compressed=True, period_s=period_s)
    assert list(bag.glob("*.db3")), "a sqlite3 rosbag2"
    with RosGraph() as graph:
        listener = graph.add(Listener(graph.context, {
            "/image/compressed": CompressedImage, "/camera_info": CameraInfo, "/clock": Clock,
        }))
        source = graph.add(ImageSource(context=graph.context, parameter_overrides=[
            Parameter("source", value=str(bag)), Parameter("bag_rate", value=rate),
            Parameter("publish_clock", value=True), Parameter("loop", value=False),
        ]))
        wait_for(lambda: source.finished, 60, "the bag was not played to its end")
        wait_for(lambda: len(listener.messages("/image/compressed")) == len(stamps), 10, "not every frame arrived")

        def clocks_ns() -> list[int]:
            return [msg.clock.sec * 1_000_000_000 + msg.clock.nanosec for _, msg in listener.messages("/clock")]

        # the last /clock can arrive after the last image: wait for the bag's end time before comparing
        wait_for(lambda: clocks_ns()[-1:] == [record_times[-1]], 10, "/clock did not reach the bag's end")
        images = listener.messages("/image/compressed")
        infos = listener.messages("/camera_info")
        clocks = clocks_ns()
    assert [(m.header.stamp.sec, m.header.stamp.nanosec) for _, m in images] == stamps
    for (_, msg), original in zip(images, written, strict=True):
        assert msg.header.frame_id == FRAME_ID and msg.format == "jpeg"
        assert bytes(msg.data) == bytes(original.data), "republished as recorded"
    assert len(infos) >= len(stamps) - 1 and all(m.header.stamp == i.header.stamp for (_, m), i in zip(
        infos[-3:], written[-3:], strict=True)), "the bag's camera info, as recorded"
    span_s = images[-1][0] - images[0][0]
    expected_s = (record_times[-1] - record_times[0]) * 1e-9 / rate  # 0.3 s
    assert 0.8 * expected_s <= span_s <= expected_s + 0.5, f"{span_s:.2f} s for {expected_s:.2f} s at {rate}x"
    # from the first recorded message (the camera info, 1 us before the first image) to the last
    assert clocks == sorted(clocks) and record_times[0] - 1000 <= clocks[0] and clocks[-1] == record_times[-1]
    assert len(clocks) > len(stamps), "/clock also advances between frames"


def test_bag_without_the_topic_stops_listing_its_topics(tmp_path, walkers) -> None:
    bag = tmp_path / "other_topics"
    write_bag(bag, walkers[:1])
    with pytest.raises(BagError, match="no topic /front/image_raw") as error:
        BagSource(str(bag), "/front/image_raw")
    for listed in ("/cam/image_raw (sensor_msgs/msg/Image, 1 messages)", "/cam/camera_info", "/cam/unrelated"):
        assert listed in str(error.value)
    with pytest.raises(BagError, match=r"/cam/unrelated of bag .* is rosgraph_msgs/msg/Clock, not"):
        BagSource(str(bag), "cam/unrelated")

    result = run_process_bag(str(bag), str(tmp_path / "out"), "--topic", "/front/image_raw")
    assert result.returncode == 2 and "/cam/image_raw (sensor_msgs/msg/Image" in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()
    replay = subprocess.run(
        [sys.executable, "-c", "import sys; from pose_ros.ros.image_source import main; sys.exit(main())",
         "--ros-args", "-p", f"source:={bag}", "-p", "bag_topic:=/front/image_raw"],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    assert replay.returncode == 1, replay.stderr
    assert "has no topic /front/image_raw" in replay.stderr
    assert "/cam/unrelated (rosgraph_msgs/msg/Clock" in replay.stderr


def test_offline_waits_for_each_frames_meshes(tmp_path, walkers) -> None:
    """mesh_rate_hz 0 offline: every frame's meshes are fitted on that very frame (a live node would attach whatever
    mesh its worker had finished last)."""
    from pose_ros.core.body.anny_fit import anny_cache_ready

    if not anny_cache_ready():
        pytest.skip("needs Anny's model data from scripts/setup.sh (python -m pose_ros.tools.prepare_anny)")
    bag = tmp_path / "recording"
    stamps, _, _ = write_bag(bag, walkers[:3])
    out = tmp_path / "meshes"
    result = run_process_bag(
        str(bag), str(out), "-p", "device:=cpu", "-p", "mesh_model:=anny_fit", "-p", "mesh_rate_hz:=0.0", "--quiet"
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    store = pose_ros_typestore()
    with Reader(out) as reader:
        topics = {c.topic: c for c in reader.connections}
        people = [store.deserialize_cdr(raw, c.msgtype) for c, _, raw in reader.messages([topics["/people"]])]
        markers = [store.deserialize_cdr(raw, c.msgtype) for c, _, raw in reader.messages([topics["/markers"]])]
    assert [(m.header.stamp.sec, m.header.stamp.nanosec) for m in people] == stamps
    for frame, frame_markers in zip(people, markers, strict=True):
        meshed = [p for p in frame.people if p.body_model.name]
        assert len(meshed) >= max(1, len(frame.people) // 2), "most people of every frame have a mesh"
        for person in meshed:
            assert person.body_model.name == "anny"
            assert (person.body_model.stamp.sec, person.body_model.stamp.nanosec) == (
                frame.header.stamp.sec, frame.header.stamp.nanosec), "fitted on this very frame"
        assert sum(m.ns == "mesh" for m in frame_markers.markers) == len(meshed)


def test_compressed_bag_replayed_to_a_compressed_pose_node_and_offline_alike(tmp_path, walkers) -> None:
    """A CompressedImage recording: replayed as recorded on image/compressed to pose_node with image_transport
    compressed (paced by it), and processed offline: the same people for every frame."""
    bag = tmp_path / "jpeg"
    stamps, _, _ = write_bag(bag, walkers[:3], storage="sqlite3", compressed=True)
    with RosGraph() as graph:
        node = PoseNode(context=graph.context, parameter_overrides=[
            *CPU_NO_MESH, Parameter("image_reliability", value="reliable"),
            Parameter("image_transport", value="compressed"),
        ])
        assert activate(node)
        graph.add(node)
        probe = graph.add(Probe(graph.context, topics=("people",)))
        source = graph.add(ImageSource(context=graph.context, parameter_overrides=[
            Parameter("source", value=str(bag)), Parameter("bag_pace", value="consumer"),
            Parameter("bag_pace_timeout_s", value=120.0), Parameter("loop", value=False),
        ]))
        wait_for(lambda: source.finished, 300, "the bag was not played to its end")
        online = dict(probe.received["people"])
        assert source.player.image_topic == "/image/compressed" and source.player.pace_timeouts == 0
        assert node.counters["frames_processed"] == len(stamps)
    assert sorted(online) == stamps

    out = tmp_path / "processed"
    result = run_process_bag(str(bag), str(out), "-p", "device:=cpu", "-p", "mesh_model:=none", "--no-markers")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    store = pose_ros_typestore()
    with Reader(out) as reader:
        assert {c.topic for c in reader.connections} == {"/people"}
        offline = {}
        for connection, _, raw in reader.messages():
            msg = store.deserialize_cdr(raw, connection.msgtype)
            offline[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = msg
    assert sorted(offline) == stamps
    for key in stamps:
        ours, theirs = people_of(offline[key]), people_of(online[key])
        assert [i for i, _ in ours] == [i for i, _ in theirs] and ours, f"same people and track ids at {key}"
        for (_, a), (_, b) in zip(ours, theirs, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-3)
