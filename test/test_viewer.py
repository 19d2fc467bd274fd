"""pose_viewer in a real browser: headless Chromium loads the page served by the viewer while pose_node
runs on vtest.avi frames over real DDS; the screenshot's pixels must show each person's colour where that
person is, the status panel must follow a live mode switch, and the page must survive a reload.
A page open in a browser is what makes the viewer take markers and overlay.
Without a browser: a taken port fails with a message naming the port and the parameter, and with no
pose_node the status says so."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from headless_browser import HeadlessChromium, find_chromium
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from ros_harness import RosGraph, bgr_frame

from pose_ros.ros.messages import PALETTE
from pose_ros.ros.viewer import PortInUseError, PoseViewer, ViewerSettings

# Where to also save the screenshots (docs/images uses them); unset: only under pytest's tmp_path.
SCREENSHOT_DIR = os.environ.get("POSE_VIEWER_SCREENSHOT_DIR")
VIEWPORT = (960, 540)  # CSS pixels: small, one page for the whole test
AXES_GIZMO_PX = 90  # bottom-left corner of the 3D view: viser's orientation gizmo (red/green/blue)
DISMISS_NOTICES = "document.querySelectorAll('.mantine-Notification-closeButton').forEach(b => b.click())"
STATUS = "document.body.innerText"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_viewer(ros: RosGraph, port: int, *overrides: Parameter) -> PoseViewer:
    return ros.add(PoseViewer(context=ros.context, parameter_overrides=[Parameter("port", value=port), *overrides]))


def colour_mask(image: np.ndarray, rgb01, tolerance: int = 40) -> np.ndarray:
    """Pixels within `tolerance` (per channel) of a palette colour."""
    target = np.round(np.asarray(rgb01) * 255).astype(np.int16)
    return (np.abs(image.astype(np.int16) - target) <= tolerance).all(axis=2)


def canvas_boxes(people, image_size, canvas) -> dict[int, tuple[float, float, float, float]]:
    """Each person's bbox (x0, y0, x1, y1) in canvas pixels: the viewer looks from the camera (default intrinsics
    fx = fy = max(W, H), principal point at the centre) with a field of view that fits the whole image into the
    canvas, so image pixel (u, v) lands at (Wc/2 + (u - cx) s, Hc/2 + (v - cy) s), s = min(Wc/W, Hc/H)."""
    width, height = image_size
    scale = min(canvas["width"] / width, canvas["height"] / height)
    cx, cy = (width - 1) / 2, (height - 1) / 2
    boxes = {}
    for person in people:
        x, y, w, h = person.bbox
        x0 = canvas["width"] / 2 + (x - cx) * scale
        y0 = canvas["height"] / 2 + (y - cy) * scale
        boxes[person.id] = (x0, y0, x0 + w * scale, y0 + h * scale)
    return boxes


def scene_problems(png: bytes, canvas: dict, people, image_size, has_meshes: bool) -> list[str]:
    """What is wrong with the 3D view of a screenshot: each person's id colour must appear inside that person's
    box (projected into the canvas) and hardly anywhere else; a mesh must fill a good part of its box."""
    import cv2

    if canvas["width"] < 300 or canvas["height"] < 300:
        return [f"3D view too small: {canvas}"]
    shot = cv2.cvtColor(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    top, left = int(canvas["y"]), int(canvas["x"])
    view = shot[top: top + int(canvas["height"]), left: left + int(canvas["width"])].copy()
    view[-AXES_GIZMO_PX:, :AXES_GIZMO_PX] = 255
    boxes = canvas_boxes(people, image_size, canvas)
    rows, cols = np.mgrid[: view.shape[0], : view.shape[1]]

    def near(box) -> np.ndarray:
        x0, y0, x1, y1 = box
        m = 0.25 * (y1 - y0)
        return (cols >= x0 - m) & (cols <= x1 + m) & (rows >= y0 - m) & (rows <= y1 + m)

    problems = []
    for person in people:
        colour = PALETTE[person.id % len(PALETTE)]
        mask = colour_mask(view, colour)
        in_any = np.zeros_like(mask)
        for other in people:
            if other.id % len(PALETTE) == person.id % len(PALETTE):
                in_any |= near(boxes[other.id])
        found, stray = int((mask & near(boxes[person.id])).sum()), int((mask & ~in_any).sum())
        if found < 20:
            problems.append(f"person {person.id}: only {found} pixels of its colour {colour} at {boxes[person.id]}")
        if stray > 0.2 * mask.sum():
            problems.append(f"person {person.id}: {stray} of {mask.sum()} pixels of its colour elsewhere")
    if has_meshes:  # a mesh covers much more of its box than a skeleton of 3 px lines does
        person = max(people, key=lambda p: p.bbox[3])
        x0, y0, x1, y1 = boxes[person.id]
        box = view[max(0, int(y0)): int(y1), max(0, int(x0)): int(x1)]
        filled = float((box.astype(int).sum(axis=2) < 700).mean())
        if filled < 0.2:
            problems.append(f"the mesh of person {person.id} fills only {filled:.0%} of its box")
    return problems


def save(png: bytes, name: str, tmp_path: Path) -> None:
    (tmp_path / name).write_bytes(png)
    if SCREENSHOT_DIR:
        Path(SCREENSHOT_DIR, name).write_bytes(png)


def wait_for_outputs(probe, key, topics, timeout=120.0):
    return probe.outputs(key, topics=topics, timeout=timeout)


@pytest.mark.timeout(400)
def test_browser_shows_people_where_they_are_and_follows_mode_switch(vtest_frames, human_models, tmp_path) -> None:
    if find_chromium() is None:
        pytest.skip("needs Debian's chromium (scripts/setup.sh installs it for the tests)")
    port = free_port()
    with RosGraph() as ros, HeadlessChromium(*VIEWPORT) as browser:
        viewer = start_viewer(ros, port, Parameter("stale_after_s", value=60.0))
        browser.navigate(f"http://127.0.0.1:{port}/")
        # 1. no pose_node yet: the page says so and waits
        browser.wait_for(f"{STATUS}.includes('waiting for pose_node')", timeout=60)
        deadline = time.monotonic() + 30
        while len(viewer._page_subscriptions) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(viewer._page_subscriptions) == 2, "with a page open, the viewer takes markers and overlay"

        # 2. pose_node on a vtest.avi frame (meshes on: the default mesh model): the page follows, live
        _, probe = ros.start_pose_node(Parameter("max_people", value=4), mesh=True, topics=("people", "markers"))
        frame = vtest_frames[1]
        for sec in (1, 2):  # twice: the second frame's people are tracked (stable ids)
            out = wait_for_outputs(probe, probe.send(bgr_frame(frame, sec)), ("people", "markers"))
        people = out["people"].people
        assert len(people) >= 3, "vtest.avi frame 100 has several walkers"
        ids = ", ".join(str(p.id) for p in people)
        # with pose_node's frame time per stage from /diagnostics (its window: the last 10 s)
        browser.wait_for(f"{STATUS}.includes('pose_node running') && {STATUS}.includes('(ids {ids})') && "
                         f"/frame time p50: .*estimate [0-9]+/.test({STATUS})", timeout=60)  # fmt: skip
        has_meshes = any(m.ns == "mesh" for m in out["markers"].markers)
        # the scene arrives with the status; software WebGL may take a while to draw it: poll the pixels
        browser.evaluate(DISMISS_NOTICES)
        image_size = (out["people"].image_width, out["people"].image_height)
        deadline, problems = time.monotonic() + 45, ["no screenshot yet"]
        while problems and time.monotonic() < deadline:
            time.sleep(1.0)
            png = browser.screenshot_png()
            canvas = browser.evaluate("(r => ({x: r.x, y: r.y, width: r.width, height: r.height}))"
                                      "(document.querySelector('canvas').getBoundingClientRect())")
            problems = scene_problems(png, canvas, people, image_size, has_meshes)
        save(png, "viewer_bottom_up.png", tmp_path)
        assert not problems, f"{problems} (screenshot: {tmp_path / 'viewer_bottom_up.png'})"

        # 3. live mode switch through the parameter service (as `ros2 param set /pose_node mode top_down`)
        client = AsyncParameterClient(probe, "pose_node")
        assert client.wait_for_services(timeout_sec=10)
        future = client.set_parameters([Parameter("mode", value="top_down")])
        deadline = time.monotonic() + 120
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert future.done() and future.result().results[0].successful
        out = wait_for_outputs(probe, probe.send(bgr_frame(frame, 3)), ("people", "markers"))
        assert out["people"].mode == "top_down"
        # 4. the browser disconnects and reconnects (reload): the new page shows the new mode
        browser.call("Page.reload")
        browser.wait_for(f"{STATUS}.includes('mode: top_down') && {STATUS}.includes('centernet')", timeout=60)
        time.sleep(2.0)
        browser.evaluate(DISMISS_NOTICES)
        time.sleep(0.5)
        save(browser.screenshot_png(), "viewer_top_down.png", tmp_path)
        assert "mode: top_down" in browser.evaluate(STATUS)

        # offline: nothing but localhost was asked for, and the page raised no error
        assert not browser.console_errors, browser.console_errors
        assert not [r for r in browser.failed_requests if "NAME_NOT_RESOLVED" in r], browser.failed_requests


def test_port_in_use_is_a_clear_error_naming_port_and_parameter() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with RosGraph() as ros:
            with pytest.raises(PortInUseError) as error:
                start_viewer(ros, port)
            assert f"port {port}" in str(error.value) and "parameter `port`" in str(error.value)
            # the same process can still start a viewer elsewhere (nothing left half-open)
            viewer = start_viewer(ros, free_port())
            assert viewer.server.get_port() != port


def test_no_pose_node_status_says_so_and_waits() -> None:
    with RosGraph() as ros:
        viewer = start_viewer(ros, free_port())
        deadline = time.monotonic() + 10
        while "waiting for pose_node" not in viewer._status.content and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "waiting for pose_node: nothing publishes /people" in viewer._status.content
        assert viewer.frames_shown == 0
        # no browser: no subscription that would make pose_node build markers or the overlay
        assert viewer._page_subscriptions == {}
        assert viewer.count_subscribers("/markers") == 0 and viewer.count_subscribers("/overlay") == 0


def test_launchers_start_the_viewer_on_request_and_pose_node_survives_a_taken_port(tmp_path, human_models) -> None:
    import rclpy
    import yaml
    from rclpy.context import Context
    from test_launch import CONFIG_FILE, launch_arguments

    from pose_ros.ros.launcher import parse_arguments, start_nodes

    assert launch_arguments()["viewer"] == "false"
    assert "pose_viewer" in (Path(__file__).parents[1] / "launch" / "pose.launch.py").read_text()
    assert not parse_arguments([]).viewer
    config = yaml.safe_load(CONFIG_FILE.read_text())
    assert config["pose_viewer"]["ros__parameters"]["port"] == ViewerSettings().port
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        for port, expect_viewer in ((free_port(), True), (taken.getsockname()[1], False)):
            config["pose_viewer"]["ros__parameters"]["port"] = port
            config["/**/pose_node"]["ros__parameters"] |= {"device": "cpu", "mesh_model": "none"}
            params_file = tmp_path / f"pose_{port}.yaml"
            params_file.write_text(yaml.safe_dump(config))
            args = parse_arguments(["--viewer", "--params-file", str(params_file)])
            context = Context()
            rclpy.init(args=["pose_launcher", "--ros-args", "--params-file", str(params_file)], context=context)
            nodes = start_nodes(args, context=context)
            try:
                assert nodes.pose_node._is_configured()
                if expect_viewer:
                    assert nodes.viewer is not None and nodes.viewer.server.get_port() == port
                else:
                    assert nodes.viewer is None, "a taken port leaves pose_node running without a viewer"
            finally:
                nodes.shutdown()
                rclpy.try_shutdown(context=context)


def test_marker_geometry_and_view_fitting() -> None:
    from pose_ros.ros.marker_wire import WireMarker
    from pose_ros.ros.viewer import fitted_fov_y, marker_points

    marker = WireMarker("m", 0, 0, points=np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]))
    np.testing.assert_allclose(marker_points(marker), [[1, 0, 0], [0, 2, 0]])
    # 90 degrees about z (x -> y), then moved by the pose position
    turned = replace(marker, orientation=(0.0, 0.0, np.sqrt(0.5), np.sqrt(0.5)), position=(0.0, 0.0, 3.0))
    np.testing.assert_allclose(marker_points(turned), [[0, 1, 3], [-2, 0, 3]], atol=1e-6)
    # a 4:3 image seen with its own focal length: the vertical FOV of the camera in a 4:3 view,
    # a wider one in a narrower view (the whole image width must fit)
    f = 768.0
    np.testing.assert_allclose(fitted_fov_y((768, 576), f, 4 / 3), 2 * np.arctan(288 / f))
    np.testing.assert_allclose(fitted_fov_y((768, 576), f, 1.0), 2 * np.arctan(384 / f))
    np.testing.assert_allclose(fitted_fov_y((768, 576), f, 2.0), 2 * np.arctan(288 / f))


def test_a_mesh_goes_to_the_browsers_only_when_it_changed() -> None:
    """Meshes are refitted a few times a second but arrive with every frame's markers: an unchanged mesh is not
    sent again (the browser would rebuild it every frame); a refitted one sends its new vertices only (an update
    of the object the browsers have), a recoloured one its colour only, a returning one is created again."""
    from pose_ros.ros.marker_wire import WireMarker

    rng = np.random.default_rng(0)
    triangles = rng.normal(size=(600, 3)) + np.array([0.0, 0.0, 3.0])

    def frame(points: np.ndarray, color=(0.9, 0.1, 0.3, 0.8)) -> list[WireMarker]:
        return [WireMarker("", 0, 0, action=3),  # DELETEALL, as pose_node's arrays start
                WireMarker("skeleton", 4, 5, points=points[:4]), WireMarker("mesh", 4, 11, color=color, points=points)]

    with RosGraph() as ros:
        viewer = start_viewer(ros, free_port())
        sent: list[str] = []  # what goes to the browsers for the mesh: "create", "update <props>", "remove"
        queue = viewer.server.scene._queue_scene_message

        def spy(message) -> None:
            kind = type(message).__name__
            if getattr(message, "name", None) == "/markers/mesh/4" and "Visibility" not in kind:
                sent.append("create" if hasattr(message, "props") else "remove" if "Remove" in kind
                            else f"update {' '.join(sorted(message.updates))}")  # fmt: skip
            queue(message)

        viewer.server.scene._queue_scene_message = spy
        viewer._show_markers(frame(triangles))
        viewer._show_markers(frame(triangles))  # the next frame, same fit
        assert sent == ["create"]
        viewer._show_markers(frame(triangles + 0.01))  # refitted
        viewer._show_markers(frame(triangles + 0.01, color=(0.1, 0.9, 0.3, 0.8)))  # recoloured
        assert sent[1:] == ["update vertices", "update color"]
        viewer._show_markers(frame(triangles)[:2])  # the mesh left the scene ...
        assert sent[3:] == ["remove"] and "/markers/mesh/4" not in viewer._scene
        viewer._show_markers(frame(triangles))  # ... and came back: created again
        assert sent[4:] == ["create"] and "/markers/mesh/4" in viewer._scene


def test_joints_of_one_size_are_one_point_cloud_with_each_persons_colour() -> None:
    """Every person's joints (a SPHERE_LIST each) go to the browsers as one point cloud per point size, each point
    in its person's colour: one object to create per frame instead of one per person."""
    from pose_ros.ros.marker_wire import WireMarker

    def joints(person_id: int, size: float, rgb: tuple[float, float, float], z: float) -> WireMarker:
        points = np.array([[0.0, 0.0, z], [0.1, 0.2, z], [0.2, 0.4, z]])
        return WireMarker("joints", person_id, 7, scale=(size, size, size), color=(*rgb, 1.0), points=points)

    with RosGraph() as ros:
        viewer = start_viewer(ros, free_port())
        viewer._show_markers([WireMarker("", 0, 0, action=3), joints(1, 0.04, (1.0, 0.0, 0.0), 2.0),
                              joints(2, 0.04, (0.0, 0.0, 1.0), 3.0), joints(3, 0.02, (0.0, 1.0, 0.0), 4.0)])
        clouds = {handle.point_size: handle for kind, handle in viewer._scene.values() if kind == "points"}
        assert sorted(clouds) == [0.02, 0.04]
        big = clouds[0.04]
        assert len(big.points) == 6
        np.testing.assert_allclose(big.points[:, 2], [2, 2, 2, 3, 3, 3])
        np.testing.assert_array_equal(big.colors, [[255, 0, 0]] * 3 + [[0, 0, 255]] * 3)
        np.testing.assert_array_equal(clouds[0.02].colors, [[0, 255, 0]] * 3)
        viewer._show_markers([WireMarker("", 0, 0, action=3), joints(2, 0.04, (0.0, 0.0, 1.0), 3.0)])
        kinds = [kind for kind, _ in viewer._scene.values()]
        assert kinds == ["points"], "the other size's cloud left the scene"


def test_the_view_from_the_camera_uses_camera_infos_focal_length() -> None:
    """A 30 Hz camera_info is kept serialized and read with the status: the page's field of view is the one that
    fits the image seen with camera_info's fy (not the default fx = fy = max(W, H))."""
    from sensor_msgs.msg import CameraInfo

    from pose_ros.msg import PersonArray
    from pose_ros.ros.viewer import fitted_fov_y

    with RosGraph() as ros:
        viewer = start_viewer(ros, free_port())
        node = ros.add(Node("camera_and_pose_node", context=ros.context))
        info_pub = node.create_publisher(CameraInfo, "camera_info", 10)
        people_pub = node.create_publisher(PersonArray, "people", 10)
        info, people = CameraInfo(width=768, height=576), PersonArray(image_width=768, image_height=576)
        info.k[0] = info.k[4] = 400.0
        expected = fitted_fov_y((768, 576), 400.0, 4 / 3)
        deadline = time.monotonic() + 10
        while abs(viewer.server.initial_camera.fov - expected) > 1e-6 and time.monotonic() < deadline:
            for _ in range(5):  # more camera_info than people, as from a camera
                info_pub.publish(info)
            people_pub.publish(people)
            time.sleep(0.1)
        assert viewer.server.initial_camera.fov == pytest.approx(expected), "fy 400 from camera_info"
        assert expected > fitted_fov_y((768, 576), 768.0, 4 / 3) + 0.3  # the default focal length would differ


def test_markers_and_overlay_are_taken_only_while_a_page_is_open() -> None:
    """pose_node builds markers and the overlay only for listeners: the viewer listens to them only while a
    browser (here bench.remote_page's client, which connects as viser's page does) has the page open."""
    from bench.remote_page import open_page

    def listened(viewer: PoseViewer) -> set[str]:
        return set(viewer._page_subscriptions)

    def wait_until(condition, timeout_s: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.05)
        return condition()

    with RosGraph() as ros:
        port = free_port()
        viewer = start_viewer(ros, port)
        time.sleep(1.0)  # several status ticks with no browser
        assert listened(viewer) == set()
        with open_page(f"ws://127.0.0.1:{port}") as page:
            assert wait_until(lambda: listened(viewer) == {"markers", "overlay"}), listened(viewer)
            assert page.recv(timeout=5)  # the page is being sent the scene
        assert wait_until(lambda: listened(viewer) == set()), listened(viewer)


def page_jpegs(page, timeout_s: float) -> list[bytes]:
    """The JPEG files in what a page receives within `timeout_s`. A viser 1.1 frame: msgpack size (8 bytes,
    little-endian), zstd size (8), the zstd-compressed msgpack of the messages (image props inside), then raw
    array buffers."""
    import msgspec
    import zstandard

    def walk(value):
        if isinstance(value, bytes) and value.startswith(b"\xff\xd8\xff"):
            yield value
        elif isinstance(value, dict | list | tuple):
            for item in value.values() if isinstance(value, dict) else value:
                yield from walk(item)

    found, deadline = [], time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            frame = page.recv(timeout=left)
        except TimeoutError:
            break
        if isinstance(frame, bytes) and len(frame) >= 16:
            size = int.from_bytes(frame[8:16], "little")
            found += walk(msgspec.msgpack.decode(zstandard.ZstdDecompressor().decompress(frame[16: 16 + size])))
    return found


@pytest.mark.parametrize("transport", ["raw", "compressed"])
def test_the_page_gets_the_raw_overlay_scaled_or_pose_nodes_jpeg_as_it_is(transport) -> None:
    """pose_node offers both overlay transports (its default). The viewer takes the one its `overlay_transport`
    names, and only that one (pose_node builds each only for listeners): raw, and the page receives a JPEG of it
    scaled to `overlay_width`; compressed, and the page receives pose_node's very file, nothing re-encoded."""
    import cv2
    from rclpy.qos import QoSProfile, QoSReliabilityPolicy
    from std_msgs.msg import Header

    from bench.remote_page import open_page
    from pose_ros.ros.image_conversion import rgb8_to_compressed
    from pose_ros.ros.transport import ImageOutput

    rng = np.random.default_rng(3)
    overlay = cv2.resize(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8), (768, 576), interpolation=cv2.INTER_NEAREST)
    with RosGraph() as ros:
        owner = ros.add(Node("overlay_owner", context=ros.context))
        reliable = QoSProfile(depth=5, reliability=QoSReliabilityPolicy.RELIABLE)  # as pose_node's outputs
        output = ImageOutput(owner, "overlay", "both", reliable, jpeg_quality=85)
        port = free_port()
        viewer = start_viewer(ros, port, Parameter("overlay_width", value=320),
                              Parameter("overlay_transport", value=transport))  # fmt: skip
        expected_key = "overlay/compressed" if transport == "compressed" else "overlay"
        with open_page(f"ws://127.0.0.1:{port}") as page:
            deadline = time.monotonic() + 10
            while expected_key not in viewer._page_subscriptions and time.monotonic() < deadline:
                time.sleep(0.05)
            assert set(viewer._page_subscriptions) == {"markers", expected_key}
            while output.get_subscription_count() == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            unused = output.raw if transport == "compressed" else output.compressed
            assert unused.get_subscription_count() == 0, "pose_node builds the other transport for nobody"
            jpegs = []
            for _ in range(20):  # best effort: publish until the page has an image
                output.publish_rgb(overlay, Header(frame_id="camera"))
                jpegs = page_jpegs(page, timeout_s=0.5)
                if jpegs:
                    break
        assert jpegs, "the page received no overlay"
        if transport == "compressed":
            assert jpegs[-1] == bytes(rgb8_to_compressed(overlay, None, "jpeg", 85).data), "pose_node's file, as it is"
        else:
            shown = cv2.cvtColor(cv2.imdecode(np.frombuffer(jpegs[-1], np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            assert shown.shape == (240, 320, 3), "scaled to overlay_width, aspect kept"
            expected = cv2.resize(overlay, (320, 240), interpolation=cv2.INTER_AREA)
            assert np.abs(shown.astype(float) - expected).mean() < 6.0, "the page shows the overlay, colours right"
