"""Process a whole rosbag2 recording offline: every frame through pose_node's frame path, results into a new bag.

    python -m pose_ros.tools.process_bag IN_BAG OUT_BAG [--topic /camera/image_raw] [--overlay] [-p device:=cpu]
    ros2 run pose_ros process_bag IN_BAG OUT_BAG ...

No DDS and no dropped frames: pose_node is used as a library (configured, never activated, ROS discovery off in
this process) and each frame is handed to its frame path (`PoseNode.process_now`: the same pipeline, tracker,
depth, meshes and message assembly as a live node, with the same parameters file) one after the other, as fast
as the CPU/GPU allows. The output bag (MCAP unless --storage sqlite3) holds /people (pose_ros/PersonArray),
/markers (visualization_msgs/MarkerArray, unless --no-markers) and, with --overlay, /overlay (sensor_msgs/Image),
one message per input frame, each with its source frame's header and written at the source frame's recording
time; --copy-input adds the image (and camera info) topics as recorded.

Meshes: a live node fits meshes beside the 2D path (each frame carries its tracks' newest mesh). Offline, the
frames due by mesh_rate_hz in recording time (every frame with mesh_rate_hz: 0) are fitted on the frame itself
and waited for; the frames between carry their tracks' newest mesh, as live (BodyModel.stamp names the frame).
A CompressedImage topic is decoded by pose_node as live (JPEG/PNG). Exit status: 0, 1 when some frames gave no
result (logged), 2 for bad arguments or a bag without the topic (the message lists the bag's topics).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle OpenMP threads sleep; before torch loads

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rclpy.context import Context
from rclpy.lifecycle import TransitionCallbackReturn
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from tqdm import tqdm
from visualization_msgs.msg import MarkerArray

from pose_ros.core.sources import SourceError
from pose_ros.msg import PersonArray
from pose_ros.ros import shutdown
from pose_ros.ros.bag_source import BagSource, open_bag
from pose_ros.ros.bag_writer import STORAGES, BagWriter
from pose_ros.ros.image_conversion import array_to_image
from pose_ros.ros.launcher import default_params_file


class Sink:
    """A publisher stand-in for PoseNode.process_now: keeps what the frame path publishes on one topic."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.messages: list = []

    def get_subscription_count(self) -> int:
        return 1 if self.enabled else 0  # pose_node assembles markers / overlay only for listeners

    def publish(self, msg) -> None:
        self.messages.append(msg)

    def publish_rgb(self, rgb: np.ndarray, header: Header) -> None:
        """As pose_node's overlay output (transport.ImageOutput) with a raw listener."""
        self.publish(array_to_image(rgb, "rgb8", header))

    def take(self) -> list:
        taken, self.messages = self.messages, []
        return taken


@dataclass
class Summary:
    """What a run did."""

    frames: int = 0
    without_result: int = 0
    people: list[int] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def report(self) -> str:
        mean = sum(self.people) / len(self.people) if self.people else 0.0
        text = (
            f"processed {self.frames} frames in {self.seconds:.1f} s: {self.fps:.2f} frames/s; "
            f"people per frame: mean {mean:.2f}, max {max(self.people, default=0)}"
        )
        if self.without_result:
            text += f"; {self.without_result} frames gave no result (see the errors above)"
        return text


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="process_bag", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("input", type=Path, help="rosbag2 directory, or one .mcap / .db3 file")
    parser.add_argument("output", type=Path, help="new rosbag2 directory to write (must not exist)")
    parser.add_argument("--topic", default="", help="image topic (Image or CompressedImage); default: the only one")
    parser.add_argument(
        "--camera-info-topic", default="", help="CameraInfo topic (default: the one beside --topic if recorded; none)"
    )
    parser.add_argument("--params-file", type=Path, default=default_params_file(), help="pose_node parameters YAML")
    parser.add_argument(
        "-p", "--param", action="append", default=[], metavar="NAME:=VALUE",
        help="override a pose_node parameter (ROS syntax, e.g. -p device:=cpu -p mesh_model:=none); repeatable",
    )
    parser.add_argument("--overlay", action="store_true", help="also write /overlay (skeletons drawn on the frame)")
    parser.add_argument("--no-markers", action="store_true", help="do not write /markers")
    parser.add_argument("--copy-input", action="store_true", help="also copy the image and camera info topics")
    parser.add_argument("--storage", choices=tuple(STORAGES), default="mcap", help="output storage (default mcap)")
    parser.add_argument("--max-frames", type=int, default=0, help="stop after this many frames (0: all)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    for override in args.param:
        if ":=" not in override:
            parser.error(f"-p {override}: use NAME:=VALUE")
    if args.max_frames < 0:
        parser.error("--max-frames must be >= 0")
    return args


def node_cli_args(args: argparse.Namespace) -> list[str]:
    cli = ["--ros-args"]
    if args.params_file:
        cli += ["--params-file", str(args.params_file)]
    for override in args.param:
        cli += ["-p", override]
    return cli


def process(args: argparse.Namespace, source: BagSource, context: Context) -> Summary:
    """Run every frame of `source` through a configured pose_node and write the outputs (see the module doc)."""
    from pose_ros.ros.pose_node import PoseNode

    node = PoseNode(context=context, cli_args=node_cli_args(args))
    summary = Summary()
    try:
        if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            raise RuntimeError("pose_node did not configure (the model could not be loaded; see the error above)")
        node.meshes_in_step = True
        people, markers, overlay = Sink(), Sink(not args.no_markers), Sink(args.overlay)
        outputs = {"/people": (people, PersonArray), "/markers": (markers, MarkerArray), "/overlay": (overlay, Image)}
        with BagWriter(args.output, args.storage) as writer:
            for topic, (sink, msg_class) in outputs.items():
                if sink.enabled:
                    writer.add_topic(topic, msg_class)
            if args.copy_input:
                writer.add_topic(source.image_topic, source.image_type)
                if source.camera_info_topic is not None:
                    writer.add_topic(source.camera_info_topic, CameraInfo)
            total = min(source.frame_count, args.max_frames or source.frame_count)
            progress = tqdm(total=total, unit="frame", disable=args.quiet, file=sys.stderr, dynamic_ncols=True)
            started = time.perf_counter()
            camera_info: CameraInfo | None = None
            for record in source.messages():
                if shutdown.stop_requested() or summary.frames >= total:
                    break
                if args.copy_input:
                    writer.write(record.topic, record.time_ns, record.msg)
                if not record.is_image:
                    camera_info = record.msg
                    continue
                summary.frames += 1
                try:
                    node.process_now(record.msg, (people, markers, overlay), camera_info)  # Image or CompressedImage
                except Exception as error:  # the node logged model/image errors already; this frame has no result
                    node.get_logger().error(f"frame {summary.frames}: {type(error).__name__}: {error}")
                camera_info = None
                progress.update(1)
                results = people.take()
                if not results:
                    summary.without_result += 1
                for msg in results:
                    writer.write("/people", record.time_ns, msg)
                    summary.people.append(len(msg.people))
                for topic in ("/markers", "/overlay"):
                    for msg in outputs[topic][0].take():
                        writer.write(topic, record.time_ns, msg)
            summary.seconds = time.perf_counter() - started
            progress.close()
    finally:
        node.destroy_node()
    return summary


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(sys.argv[1:] if argv is None else argv)
    if args.output.exists():
        print(f"process_bag: {args.output} exists; choose a new output path", file=sys.stderr)
        return 2
    try:
        source = open_bag(str(args.input), args.topic, args.camera_info_topic)
    except SourceError as error:
        print(f"process_bag: {error}", file=sys.stderr)
        return 2
    # No DDS discovery at all (set before the context starts): pose_node is a library in this process only.
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "OFF"
    context = Context()
    shutdown.init(["process_bag"], context=context)
    try:
        summary = process(args, source, context)
    except RuntimeError as error:
        print(f"process_bag: {error}", file=sys.stderr)
        return 2
    finally:
        source.close()
        shutdown.finish(context)
    if shutdown.stop_requested():
        print(f"process_bag: stopped by {shutdown.stop_reason()}; {args.output} holds the frames done so far")
    print(summary.report())
    print(f"wrote {args.output}")
    return 1 if summary.without_result else 0


if __name__ == "__main__":
    sys.exit(main())
