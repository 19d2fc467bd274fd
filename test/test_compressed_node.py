"""pose_node on compressed camera topics over real DDS: real JPEG frames of vtest.avi in, people and a
compressed overlay out; the compressed topic follows the remapped image topic; bad frames are counted."""

from __future__ import annotations

import array
import io
import threading
import time

import cv2
import numpy as np
import pytest
from PIL import Image as PilImage
from rclpy.node import Node
from rclpy.parameter import Parameter
from ros_harness import CPU_NO_MESH, RELIABLE, RosGraph
from sensor_msgs.msg import CompressedImage, Image

from pose_ros.core.pipeline import PipelineConfig, PosePipeline
from pose_ros.msg import PersonArray
from pose_ros.ros.image_conversion import compressed_to_rgb8
from pose_ros.ros.pose_node import PoseNode, activate

CAMERA = "/cam/image_raw"


class CompressedProbe(Node):
    """Publishes JPEG frames on <CAMERA>/compressed and records people and overlays by header stamp."""

    def __init__(self, context) -> None:
        super().__init__("compressed_probe", context=context)
        self.image_pub = self.create_publisher(CompressedImage, CAMERA + "/compressed", RELIABLE)
        self.raw_pub = self.create_publisher(Image, CAMERA, RELIABLE)
        self.lock = threading.Lock()
        self.received: dict[str, dict[int, object]] = {"people": {}, "overlay": {}, "overlay_compressed": {}}
        self.create_subscription(PersonArray, "people", self._record("people"), RELIABLE)
        self.create_subscription(Image, "overlay", self._record("overlay"), RELIABLE)
        self.create_subscription(CompressedImage, "overlay/compressed", self._record("overlay_compressed"), RELIABLE)

    def _record(self, topic: str):
        def record(msg) -> None:
            with self.lock:
                self.received[topic][msg.header.stamp.sec] = msg

        return record

    def wait(self, topic: str, sec: int, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if sec in self.received[topic]:
                    return self.received[topic][sec]
            time.sleep(0.02)
        raise TimeoutError(f"no {topic} for stamp {sec} within {timeout} s")


def jpeg_message(rgb: np.ndarray, sec: int, encoder: str, format_field: str) -> CompressedImage:
    if encoder == "opencv":
        ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        payload = data.tobytes()
    else:
        buffer = io.BytesIO()
        PilImage.fromarray(rgb).save(buffer, format="JPEG", quality=90)
        payload = buffer.getvalue()
    msg = CompressedImage(format=format_field, data=array.array("B", payload))
    msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id = sec, 5, "camera_optical_frame"
    return msg


@pytest.fixture(scope="module")
def graph(human_models):
    with RosGraph() as ros:
        node = PoseNode(
            context=ros.context,
            cli_args=["--ros-args", "-r", f"image:={CAMERA}"],
            parameter_overrides=[
                *CPU_NO_MESH,
                Parameter("image_reliability", value="reliable"),
                Parameter("image_transport", value="compressed"),
                Parameter("overlay_transport", value="both"),
                Parameter("overlay_jpeg_quality", value=80),
            ],
        )
        assert activate(node)
        ros.add(node)
        probe = ros.add(CompressedProbe(ros.context))
        deadline = time.monotonic() + 10
        while probe.image_pub.get_subscription_count() == 0:
            assert time.monotonic() < deadline, "pose_node never subscribed to the compressed topic"
            time.sleep(0.05)
        yield node, probe


def test_compressed_topic_follows_the_remapped_image_topic(graph) -> None:
    node, probe = graph
    assert node._image_sub.topic_name == CAMERA + "/compressed"
    assert node._image_sub.msg_type is CompressedImage
    assert probe.raw_pub.get_subscription_count() == 0, "raw image not subscribed in compressed mode"


@pytest.mark.parametrize(
    ("encoder", "format_field"), [("opencv", "bgr8; jpeg compressed bgr8"), ("pillow", "rgb8; jpeg compressed bgr8")]
)
def test_jpeg_frames_give_people_and_a_compressed_overlay(graph, vtest_frames, encoder, format_field) -> None:
    _node, probe = graph
    frame = vtest_frames[1]
    sec = 100 + len(probe.received["people"])
    msg = jpeg_message(frame, sec, encoder, format_field)
    probe.image_pub.publish(msg)
    people = probe.wait("people", sec)
    assert people.header == msg.header, "outputs carry the input header"
    assert (people.image_width, people.image_height) == (768, 576)
    assert len(people.people) >= 4, "vtest frame 100 shows several walkers"
    overlay = compressed_to_rgb8(probe.wait("overlay_compressed", sec))
    raw_overlay = probe.wait("overlay", sec)
    assert overlay.shape == (576, 768, 3) and (raw_overlay.height, raw_overlay.width) == (576, 768)
    assert probe.received["overlay_compressed"][sec].format == "rgb8; jpeg compressed bgr8"
    raw_pixels = np.frombuffer(bytes(raw_overlay.data), np.uint8).reshape(576, 768, 3)
    assert np.abs(overlay.astype(float) - raw_pixels).mean() < 4.0, "overlay/compressed shows the overlay"


def test_jpeg_input_gives_the_same_people_as_raw_input(graph, vtest_frames) -> None:
    """The people of a JPEG frame are those of the pipeline on the decoded pixels; vs. the original frame: close."""
    _node, probe = graph
    frame = vtest_frames[2]
    jpeg = jpeg_message(frame, 300, "opencv", "bgr8; jpeg compressed bgr8")
    probe.image_pub.publish(jpeg)
    from_jpeg = probe.wait("people", 300)
    pipeline, config = PosePipeline(), PipelineConfig(device="cpu")  # the node's parameters are the defaults
    decoded = compressed_to_rgb8(jpeg)
    expected = pipeline(config, decoded)
    assert len(from_jpeg.people) == len(expected) >= 3
    got = sorted((round(p.score, 4) for p in from_jpeg.people), reverse=True)
    assert got == pytest.approx(sorted((p.score for p in expected), reverse=True), abs=1e-4)
    on_original = pipeline(config, frame)
    assert abs(len(on_original) - len(expected)) <= 1, "JPEG at quality 90 barely changes the detections"


def test_bad_compressed_frames_are_counted_and_the_node_keeps_serving(graph, vtest_frames) -> None:
    node, probe = graph
    before = node.counters["bad_image"]
    node._last_error_log.pop("bad_image", None)
    good = jpeg_message(vtest_frames[1], 0, "opencv", "jpeg")
    bad_messages = [
        CompressedImage(format="bgr8; jpeg compressed bgr8", data=array.array("B", bytes(good.data)[:300])),
        CompressedImage(format="h264", data=array.array("B", b"\x00\x00\x00\x01" * 10)),
        CompressedImage(format="png", data=good.data),
    ]
    for index, bad in enumerate(bad_messages):
        bad.header.stamp.sec = 500 + index
        probe.image_pub.publish(bad)
        deadline = time.monotonic() + 10
        while node.counters["bad_image"] < before + index + 1:
            assert time.monotonic() < deadline, f"bad frame {index} not counted"
            time.sleep(0.01)
    assert node.counters["bad_image"] == before + 3
    assert "says png" in node.last_error["bad_image"]
    assert f"bad image on {CAMERA}/compressed" in node.last_error["bad_image"], "the error names the topic"
    assert node.errors_logged["bad_image"] >= 1
    good.header.stamp.sec = 600
    probe.image_pub.publish(good)
    assert len(probe.wait("people", 600).people) >= 4, "the node keeps serving good frames"
    assert not any(500 <= s < 510 for s in probe.received["people"]), "no output for a bad frame"


RAW_OVERLAY = {"/cam/overlay": "sensor_msgs/msg/Image"}
COMPRESSED_OVERLAY = {"/cam/overlay/compressed": "sensor_msgs/msg/CompressedImage"}


@pytest.mark.parametrize(
    ("transport", "expected"),
    [("raw", RAW_OVERLAY), ("compressed", COMPRESSED_OVERLAY), ("both", RAW_OVERLAY | COMPRESSED_OVERLAY)],
)
def test_overlay_transport_chooses_the_published_topics(transport, expected) -> None:
    """In namespace /cam: `overlay` resolves to /cam/overlay, its compressed form to /cam/overlay/compressed."""
    from pose_ros.ros.transport import ImageOutput

    with RosGraph() as ros:
        node = ros.add(Node("overlay_owner", namespace="/cam", context=ros.context))
        output = ImageOutput(node, "overlay", transport, RELIABLE)
        published = {
            name: types[0]
            for name, types in node.get_publisher_names_and_types_by_node("overlay_owner", "/cam")
            if "overlay" in name
        }
        assert published == expected
        assert output.get_subscription_count() == 0
        output.destroy()

        def overlay_publishers() -> list[str]:
            return [n for n, _ in node.get_publisher_names_and_types_by_node("overlay_owner", "/cam") if "overlay" in n]

        deadline = time.monotonic() + 5.0  # the ROS graph learns of a destroyed publisher asynchronously
        while overlay_publishers() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not overlay_publishers()
