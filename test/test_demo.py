"""The README's demo command end to end: overlay video, PNGs, printed figures, and an MCAP recording
that reads back with the standard `rosbags` reader."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import cv2
from rosbags.rosbag2 import Reader

from pose_ros.core.body.anny_fit import anny_cache_ready
from pose_ros.ros.recorder import pose_ros_typestore

REPO = Path(__file__).resolve().parents[1]


def test_demo_writes_video_pngs_bag_and_figures(tmp_path, demo_data, human_models) -> None:
    out = tmp_path / "demo"
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    # 8 s of video: meshes are fitted beside the 2D path, so the first ones arrive a fit after the first frames.
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "demo.sh"), "--frames", "40", "--rate", "5", "--device", "cpu",
         "--output-dir", str(out), "--pngs", "2"],
        capture_output=True, text=True, timeout=300, env=env, cwd=REPO,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for figure in ("frames published: 40", "people per frame", "FPS", "latency", "p50", "p99"):
        assert figure in result.stdout, figure

    video = cv2.VideoCapture(str(out / "overlay.mp4"))
    frames = int(video.get(cv2.CAP_PROP_FRAME_COUNT))
    ok, first = video.read()
    video.release()
    assert ok and first.shape == (576, 768, 3) and frames >= 3
    assert len(list(out.glob("overlay_*.png"))) >= 1

    store = pose_ros_typestore()
    people_counts = []
    with Reader(out / "pose_bag") as reader:
        topics = {c.topic: c for c in reader.connections}
        assert {"/people", "/markers", "/overlay"} <= set(topics)
        assert topics["/people"].msgtype == "pose_ros/msg/PersonArray"
        for connection, _, raw in reader.messages(connections=[topics["/people"]]):
            msg = store.deserialize_cdr(raw, connection.msgtype)
            assert msg.header.frame_id == "camera_optical_frame"
            assert all(p.layout == "coco17" and len(p.keypoints) == 17 for p in msg.people)
            people_counts.append(len(msg.people))
        meshes = 0
        for connection, _, raw in reader.messages(connections=[topics["/markers"]]):
            markers = store.deserialize_cdr(raw, connection.msgtype).markers
            assert markers[0].action == 3  # DELETEALL first
            meshes += sum(m.ns == "mesh" and m.type == 11 and len(m.points) > 0 for m in markers)  # TRIANGLE_LIST
    assert len(people_counts) >= 3 and max(people_counts) >= 2
    if anny_cache_ready():  # a fresh install shows meshes without any licensed file
        assert meshes >= 2, "the demo publishes Anny mesh markers"
