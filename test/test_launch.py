"""The launch file (checked statically: `launch` is not installable here), the embedded launcher and
image_source, over real DDS."""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import io
import re
import shlex
import sys
import time
import types
from pathlib import Path

import cv2
import numpy as np
import pytest
import rclpy
import yaml
from rclpy.context import Context
from rclpy.parameter import Parameter
from ros_harness import Probe, RosGraph
from sensor_msgs.msg import CameraInfo, Image

from pose_ros.core.camera import default_camera_matrix, load_camera_calibration
from pose_ros.msg import PersonArray
from pose_ros.ros.image_source import ImageSource
from pose_ros.ros.launcher import LaunchArguments, parse_arguments, ros_arguments, start_nodes
from pose_ros.ros.parameters import PARAMETERS

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILE = REPO / "launch" / "pose.launch.py"
CONFIG_FILE = REPO / "config" / "pose.yaml"


def launch_tree() -> ast.Module:
    return ast.parse(LAUNCH_FILE.read_text())


def test_launch_file_imports_only_launch_apis() -> None:
    modules = set()
    for node in ast.walk(launch_tree()):
        if isinstance(node, ast.ImportFrom):
            modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
    assert modules, "the launch file imports something"
    assert all(m.split(".")[0] in ("launch", "launch_ros") for m in modules), modules
    names = {n.name for n in launch_tree().body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in names


def launch_arguments() -> dict[str, object]:
    """DeclareLaunchArgument name → default (a literal, or the source text of a substitution)."""
    for node in launch_tree().body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "ARGUMENTS":
            rows = {}
            for row in node.value.elts:
                name, default = row.elts[0], row.elts[1]
                literal = isinstance(default, ast.Constant)
                rows[name.value] = default.value if literal else ast.unparse(default)
            return rows
    raise AssertionError("no ARGUMENTS table in the launch file")


# ----- the launch file, run against small stand-ins of the launch / launch_ros APIs it uses -------------------------
# `launch` is not installable here. These stand-ins follow the documented behaviour of the real classes (launch 3.4,
# launch_ros 0.26): a LaunchConfiguration performs to the argument's value (its declared default when not given),
# an OpaqueFunction calls its function with the context, and launch_ros reads a plain string parameter value as
# YAML (so "0" would become the integer 0) unless it is a ParameterValue with value_type=str.


class FakeContext:
    def __init__(self, launch_configurations: dict[str, str]) -> None:
        self.launch_configurations = dict(launch_configurations)


class FakeSubstitution:
    def perform(self, context: FakeContext) -> str:
        raise NotImplementedError


class LaunchConfiguration(FakeSubstitution):
    def __init__(self, variable_name: str) -> None:
        self.variable_name = variable_name

    def perform(self, context: FakeContext) -> str:
        return context.launch_configurations[self.variable_name]


class FindPackageShare(FakeSubstitution):
    def __init__(self, package: str) -> None:
        assert package == "pose_ros"

    def perform(self, context: FakeContext) -> str:
        return str(REPO)  # the source checkout stands in for share/pose_ros


class PathJoinSubstitution(FakeSubstitution):
    def __init__(self, substitutions: list) -> None:
        self.substitutions = substitutions

    def perform(self, context: FakeContext) -> str:
        parts = [s if isinstance(s, str) else s.perform(context) for s in self.substitutions]
        return str(Path(*parts))


class DeclareLaunchArgument:
    def __init__(self, name: str, *, default_value=None, description: str = "") -> None:
        self.name, self.default_value, self.description = name, default_value, description

    def execute(self, context: FakeContext) -> None:
        """As the real action: the default applies when the argument was not given on the command line."""
        if self.name not in context.launch_configurations:
            default = self.default_value
            context.launch_configurations[self.name] = default if isinstance(default, str) else default.perform(context)


class OpaqueFunction:
    def __init__(self, *, function, args=None, kwargs=None) -> None:
        self.function, self.args, self.kwargs = function, args or [], kwargs or {}

    def execute(self, context: FakeContext) -> list:
        return self.function(context, *self.args, **self.kwargs)


class LaunchDescription:
    def __init__(self, entities: list) -> None:
        self.entities = list(entities)


class ParameterValue:
    def __init__(self, value, *, value_type=None) -> None:
        self.value, self.value_type = value, value_type


def section_matches(key: str, fqn: str) -> bool:
    """Whether a parameters file section `key` applies to the node `fqn`, as rcl matches them: a leading "/" is
    optional, `*` stands for one name token, `/**` for any number of namespace tokens (also none)."""
    pattern = re.escape("/" + key.lstrip("/")).replace(r"/\*\*", "(/[^/]+)*").replace(r"\*", "[^/]+")
    return re.fullmatch(pattern, fqn) is not None


def test_section_matching_follows_rcl() -> None:
    """The stand-in's matching, checked against the rules rclpy applied to these keys on this machine."""
    assert section_matches("pose_node", "/pose_node") and not section_matches("pose_node", "/front/pose_node")
    assert section_matches("/**/pose_node", "/pose_node") and section_matches("/**/pose_node", "/a/b/pose_node")
    assert section_matches("/**", "/front/image_source") and section_matches("front/pose_node", "/front/pose_node")
    assert not section_matches("/front/pose_node", "/back/pose_node")
    assert section_matches("/*/pose_node", "/front/pose_node") and not section_matches("/*/pose_node", "/pose_node")


class Node:
    def __init__(
        self, *, package: str, executable: str, name: str, output: str, parameters: list, remappings, namespace=""
    ) -> None:
        self.package, self.executable, self.name, self.output = package, executable, name, output
        self.parameters, self.remappings, self.namespace = parameters, remappings, namespace

    @property
    def fqn(self) -> str:
        return f"/{self.namespace}/{self.name}" if self.namespace else f"/{self.name}"

    def effective_parameters(self) -> dict[str, object]:
        """What the node is given: each parameters file's sections matching the node's full name in file order
        (as rcl: later sections win), then dicts, later entries winning."""
        result: dict[str, object] = {}
        for entry in self.parameters:
            if isinstance(entry, str):
                for key, section in yaml.safe_load(Path(entry).read_text()).items():
                    if section_matches(key, self.fqn):
                        result.update(section["ros__parameters"])
                continue
            for key, value in entry.items():
                if isinstance(value, ParameterValue):
                    result[key] = value.value_type(value.value) if value.value_type else yaml.safe_load(value.value)
                else:
                    result[key] = yaml.safe_load(value) if isinstance(value, str) else value
        return result


def fake_launch_modules() -> dict[str, types.ModuleType]:
    contents = {
        "launch": {"LaunchDescription": LaunchDescription},
        "launch.actions": {"DeclareLaunchArgument": DeclareLaunchArgument, "OpaqueFunction": OpaqueFunction},
        "launch.substitutions": {
            "LaunchConfiguration": LaunchConfiguration,
            "PathJoinSubstitution": PathJoinSubstitution,
        },
        "launch_ros": {},
        "launch_ros.actions": {"Node": Node},
        "launch_ros.parameter_descriptions": {"ParameterValue": ParameterValue},
        "launch_ros.substitutions": {"FindPackageShare": FindPackageShare},
    }
    modules = {}
    for name, attributes in contents.items():
        module = types.ModuleType(name)
        module.__dict__.update(attributes)
        modules[name] = module
    return modules


@pytest.fixture
def launch_file(monkeypatch):
    """The launch file imported with the stand-ins in sys.modules (only for this test)."""
    for name, module in fake_launch_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("pose_launch_under_test", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_launch(launch_file, **given: str) -> dict[str, Node]:
    """`ros2 launch pose_ros pose.launch.py name:=value ...`: the nodes it starts, by name."""
    description = launch_file.generate_launch_description()
    context = FakeContext(given)
    started: list[Node] = []
    for entity in description.entities:
        result = entity.execute(context)
        started.extend(result or [])
    assert all(isinstance(node, Node) for node in started)
    return {node.fqn.lstrip("/"): node for node in started}


SHARED = "/**/pose_node"  # config/pose.yaml's section for every pose_node, in any namespace


def params_file(tmp_path: Path, cameras: dict[str, dict] | None = None, **pose_node: object) -> str:
    """config/pose.yaml with `pose_node` values changed in the shared section and, per camera, a section of its own
    (after the shared ones, as the file's comment says)."""
    config = yaml.safe_load(CONFIG_FILE.read_text())
    config[SHARED]["ros__parameters"].update(pose_node)
    for camera, values in (cameras or {}).items():
        config[f"/{camera}/pose_node"] = {"ros__parameters": values}
    path = tmp_path / "my_pose.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return str(path)


def test_unset_launch_arguments_leave_the_parameters_file_alone(launch_file, tmp_path) -> None:
    file_values = {"mode": "top_down", "device": "cpu", "image_transport": "compressed", "input_width": 320}
    nodes = run_launch(launch_file, params_file=params_file(tmp_path, **file_values))
    assert set(nodes) == {"pose_node"}, "no source: image_source is not started"
    effective = nodes["pose_node"].effective_parameters()
    assert {k: effective[k] for k in file_values} == file_values
    assert nodes["pose_node"].remappings == [("image", "image"), ("camera_info", "camera_info")]
    # The default parameters file is the package's config/pose.yaml, taken as it is.
    default = run_launch(launch_file)["pose_node"]
    assert default.parameters == [str(CONFIG_FILE)]
    assert default.effective_parameters() == yaml.safe_load(CONFIG_FILE.read_text())[SHARED]["ros__parameters"]


def test_given_launch_arguments_override_the_file(launch_file, tmp_path) -> None:
    file = params_file(tmp_path, mode="top_down", device="cpu")
    nodes = run_launch(
        launch_file, params_file=file, mode="bottom_up", image="/cam/image_raw", image_transport="compressed"
    )
    effective = nodes["pose_node"].effective_parameters()
    assert (effective["mode"], effective["device"], effective["image_transport"]) == ("bottom_up", "cpu", "compressed")
    assert ("image", "/cam/image_raw") in nodes["pose_node"].remappings


@pytest.mark.parametrize(("source", "expected"), [("0", "0"), ("/dev/video2", "/dev/video2"), ("1.5", "1.5")])
def test_source_starts_image_source_with_a_string(launch_file, tmp_path, source, expected) -> None:
    """`source:=0` (a camera index) reaches image_source as the string "0", not the integer launch would make."""
    nodes = run_launch(launch_file, params_file=params_file(tmp_path), source=source, image="/cam/image_raw")
    image_source = nodes["image_source"]
    value = image_source.effective_parameters()["source"]
    assert value == expected and isinstance(value, str)
    assert image_source.effective_parameters()["frame_id"] == "camera_optical_frame"  # the rest: from the file
    assert image_source.remappings == nodes["pose_node"].remappings


@pytest.mark.parametrize(("viewer", "started"), [(None, False), ("false", False), ("true", True), ("1", True)])
def test_viewer_argument(launch_file, tmp_path, viewer, started) -> None:
    given = {"viewer": viewer} if viewer is not None else {}
    file = params_file(tmp_path)
    nodes = run_launch(launch_file, params_file=file, camera_info="/cam/camera_info", **given)
    assert ("pose_viewer" in nodes) == started
    if started:
        assert nodes["pose_viewer"].parameters == [file]
        assert nodes["pose_viewer"].remappings == [("camera_info", "/cam/camera_info")]


def test_viewer_argument_that_is_not_a_boolean(launch_file) -> None:
    with pytest.raises(ValueError, match="viewer must be true or false"):
        run_launch(launch_file, viewer="yes please")


def test_launch_file_and_pose_launcher_take_the_same_arguments_with_the_same_meaning(launch_file) -> None:
    arguments = launch_arguments()
    config = yaml.safe_load(CONFIG_FILE.read_text())
    pose_params = config[SHARED]["ros__parameters"]
    assert set(pose_params) == {spec.name for spec in PARAMETERS}, "config/pose.yaml lists every pose_node parameter"
    for spec in PARAMETERS:
        assert pose_params[spec.name] == spec.default, f"{spec.name}: config default differs from the node's"
    # Every argument named after a pose_node parameter is unset by default: the file decides.
    for name in set(arguments) & set(pose_params):
        assert arguments[name] == "", f"launch argument {name} must default to unset, not override the file"
    assert set(launch_file.POSE_NODE_PARAMETERS) == set(arguments) & set(pose_params)
    assert {"params_file", "image", "camera_info", "source"} <= set(arguments)
    # The embedded launcher takes the same arguments with the same defaults (None: unset).
    parsed = parse_arguments([])
    options = {name.replace("_", "-") for name in arguments}
    help_words = launcher_help().split()
    assert all(f"--{option}" in help_words for option in options), (options, help_words)
    assert (parsed.image, parsed.camera_info, parsed.source) == (arguments["image"], arguments["camera_info"], "")
    assert (parsed.mode, parsed.device, parsed.image_transport) == (None, None, None)
    assert parsed.params_file.name == "pose.yaml" and "'config', 'pose.yaml'" in arguments["params_file"]
    given = parse_arguments(["--mode", "top_down", "--image-transport", "compressed", "--source", "0"])
    assert (given.mode, given.image_transport, given.source) == ("top_down", "compressed", "0")
    source_params = config["/**/image_source"]["ros__parameters"]
    assert set(source_params) >= {"source", "rate", "loop", "frame_id", "camera_info_file"}


# ----- several cameras ---------------------------------------------------------------------------------------------


def test_cameras_start_one_pipeline_per_namespace_with_its_own_section(launch_file, tmp_path) -> None:
    file = params_file(tmp_path, {"back": {"mode": "top_down", "max_people": 3}}, input_width=320)
    nodes = run_launch(launch_file, params_file=file, cameras="[front,back]", device="cpu")
    assert set(nodes) == {"front/pose_node", "back/pose_node"}
    front, back = nodes["front/pose_node"], nodes["back/pose_node"]
    assert (front.namespace, back.namespace) == ("front", "back")
    assert front.remappings == back.remappings == [("image", "image"), ("camera_info", "camera_info")]  # relative
    front_values, back_values = front.effective_parameters(), back.effective_parameters()
    assert (front_values["mode"], back_values["mode"]) == ("bottom_up", "top_down")  # back: its own section
    assert (front_values["max_people"], back_values["max_people"]) == (6, 3)
    assert front_values["input_width"] == back_values["input_width"] == 320  # the shared section, for both
    assert front_values["device"] == back_values["device"] == "cpu"  # a given argument, for every camera
    # The same list written the other ways a shell or a launch file writes it.
    for written in ("front,back", "['front', 'back']", "[/front, /back]"):
        assert set(run_launch(launch_file, params_file=file, cameras=written)) == set(nodes), written


def test_camera_sources_one_per_camera_or_one_for_all(launch_file, tmp_path) -> None:
    file = params_file(tmp_path)
    nodes = run_launch(launch_file, params_file=file, cameras="[front,back]", source="[/data/vtest.avi,0]")
    assert nodes["front/image_source"].effective_parameters()["source"] == "/data/vtest.avi"
    assert nodes["back/image_source"].effective_parameters()["source"] == "0"  # a string, as with one camera
    assert nodes["back/image_source"].namespace == "back"
    only_front = run_launch(launch_file, params_file=file, cameras="[front,back]", source="[/data/vtest.avi,]")
    assert {n for n in only_front if n.endswith("image_source")} == {"front/image_source"}, "empty entry: no source"
    shared = run_launch(launch_file, params_file=file, cameras="[front,back]", source="/data/vtest.avi")
    assert {n for n in shared if n.endswith("image_source")} == {"front/image_source", "back/image_source"}
    with pytest.raises(ValueError, match="3 sources for 2 cameras"):
        run_launch(launch_file, params_file=file, cameras="[front,back]", source="a.avi,b.avi,c.avi")


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"cameras": "[front,front]"}, "must differ"),
        ({"cameras": "[front,2nd]"}, "not a ROS namespace"),
        ({"cameras": "[front,back]", "image": "/camera/image_raw"}, "relative names"),
    ],
)
def test_unusable_cameras_are_refused_by_both_launchers(launch_file, given, message) -> None:
    with pytest.raises(ValueError, match=message):
        run_launch(launch_file, **given)
    argv = [f"--{name.replace('_', '-')}={split_or_keep(value)}" for name, value in given.items()]
    with contextlib.redirect_stderr(io.StringIO()) as errors, pytest.raises(SystemExit):
        parse_arguments(argv)
    assert message in errors.getvalue()


def split_or_keep(value: str) -> str:
    """A launch list `[a,b]` as pose_launcher's `a,b`."""
    return value.strip("[]")


def test_viewer_with_cameras_shows_the_first_camera(launch_file, tmp_path) -> None:
    nodes = run_launch(launch_file, params_file=params_file(tmp_path), cameras="[front,back]", viewer="true")
    viewer = nodes["pose_viewer"]
    assert viewer.namespace == ""  # its section in the file stays pose_viewer
    assert dict(viewer.remappings) == {
        "people": "/front/people", "markers": "/front/markers", "overlay": "/front/overlay",
        "camera_info": "/front/camera_info",
    }  # fmt: skip


def test_pose_launcher_reads_cameras_and_sources_as_the_launch_file() -> None:
    from pose_ros.ros.launcher import camera_sources

    args = parse_arguments(["--cameras", "front,back", "--source", "vtest.avi,frames/"])
    assert args.cameras == ("front", "back")
    assert camera_sources(args.cameras, args.source) == ["vtest.avi", "frames/"]
    assert camera_sources(("front", "back"), "0") == ["0", "0"]
    assert camera_sources((), "a,b.avi") == ["a,b.avi"], "one camera: the source is taken as it is"
    assert parse_arguments([]).cameras == ()


def launcher_help() -> str:
    """pose_launcher --help."""
    text = io.StringIO()
    with contextlib.redirect_stdout(text), contextlib.suppress(SystemExit):
        parse_arguments(["--help"])
    return text.getvalue()


def documented_commands(prefix: str) -> list[list[str]]:
    """Argument lists of the documented command lines starting with `prefix` (README, docs/launch.md)."""
    commands = []
    for document in (REPO / "README.md", REPO / "docs" / "launch.md"):
        for line in document.read_text().splitlines():
            line = line.strip().split("  #", 1)[0].strip()
            if line.startswith(prefix):
                commands.append(shlex.split(line.removeprefix(prefix)))
    return commands


def test_documented_launch_commands_use_declared_arguments(launch_file) -> None:
    commands = documented_commands("ros2 launch pose_ros pose.launch.py")
    assert len(commands) >= 5 and any("image_transport:=compressed" in c for c in commands)
    for command in commands:
        given = dict(word.split(":=", 1) for word in command)
        assert set(given) <= set(launch_arguments()), command
        if "params_file" not in given:  # a user's file: not here
            started = run_launch(launch_file, **given)
            assert any(name.split("/")[-1] == "pose_node" for name in started), command


def test_documented_pose_launcher_commands_parse() -> None:
    commands = documented_commands("pose_launcher") + documented_commands("ros2 run pose_ros pose_launcher")
    assert len(commands) >= 5 and any("--image-transport" in c for c in commands)
    for command in commands:
        parse_arguments(command)  # argparse exits on an unknown option


@pytest.mark.parametrize(("argv", "expected_mode"), [([], "top_down"), (["--mode", "bottom_up"], "bottom_up")])
def test_pose_launcher_honours_the_file_unless_told(tmp_path, argv, expected_mode) -> None:
    """Real nodes: a file with mode top_down stays top_down under pose_launcher unless --mode is given."""
    file = Path(params_file(tmp_path, mode="top_down", image_transport="compressed", auto_activate=False))
    args = parse_arguments(["--params-file", str(file), "--image", "/cam/image_raw", *argv])
    context = Context()
    rclpy.init(args=ros_arguments(args), context=context)
    nodes = start_nodes(args, context=context)
    try:
        node = nodes.pose_node
        assert node.get_parameter("mode").value == expected_mode
        assert node.get_parameter("image_transport").value == "compressed"  # from the file
        assert node.get_parameter("device").value == "auto"
        assert nodes.image_source is None
    finally:
        nodes.shutdown()
        rclpy.try_shutdown(context=context)


def test_embedded_launcher_runs_source_and_pose_node_from_the_params_file(demo_data, human_models) -> None:
    """pose_launcher's start_nodes: the params file is applied, remapping works, people come out."""
    context = Context()
    rclpy.init(args=["pose_launcher", "--ros-args", "--params-file", str(CONFIG_FILE)], context=context)
    args = LaunchArguments(
        params_file=CONFIG_FILE,
        image="/cam/image_raw",
        camera_info="/cam/camera_info",
        device="cpu",
        source=str(demo_data / "vtest.avi"),
        source_overrides={"max_frames": 30, "rate": 20.0, "loop": False},
    )
    nodes = start_nodes(args, context=context)
    try:
        assert nodes.pose_node.get_parameter("device").value == "cpu"  # override wins over the file
        assert nodes.pose_node.get_parameter("input_width").value == 512  # from the file
        assert nodes.image_source.frame_id == "camera_optical_frame"
        probe = Probe(context, prefix="")
        received = []
        probe.create_subscription(PersonArray, "/people", received.append, 10)
        nodes.executor.add_node(probe)
        deadline = nodes.pose_node.get_clock().now().nanoseconds + 60e9
        while len(received) < 2 and nodes.pose_node.get_clock().now().nanoseconds < deadline:
            nodes.executor.spin_once(timeout_sec=0.1)
        assert len(received) >= 2
        assert received[0].header.frame_id == "camera_optical_frame"
        assert nodes.pose_node._image_sub.topic_name == "/cam/image_raw"
        assert any(len(msg.people) >= 2 for msg in received)
    finally:
        nodes.shutdown()
        rclpy.try_shutdown(context=context)


def test_image_source_folder_with_calibration_file(tmp_path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for index in range(3):
        cv2.imwrite(str(folder / f"{index:02d}.png"), np.full((48, 64, 3), index * 40, np.uint8))
    calibration = tmp_path / "camera.yaml"
    calibration.write_text(
        "image_width: 64\nimage_height: 48\ncamera_name: test\n"
        "camera_matrix: {rows: 3, cols: 3, data: [50, 0, 31.5, 0, 51, 23.5, 0, 0, 1]}\n"
        "distortion_model: plumb_bob\ndistortion_coefficients: {rows: 1, cols: 5, data: [0.1, 0, 0, 0, 0]}\n"
    )
    assert load_camera_calibration(calibration).camera_matrix[1, 1] == 51
    with RosGraph() as ros:
        source = ImageSource(
            context=ros.context,
            parameter_overrides=[
                Parameter("source", value=str(folder)),
                Parameter("rate", value=50.0),
                Parameter("loop", value=False),
                Parameter("frame_id", value="test_cam"),
                Parameter("camera_info_file", value=str(calibration)),
            ],
        )
        images, infos = [], []
        listener = Probe(ros.context)
        listener.create_subscription(Image, "image", images.append, 10)
        listener.create_subscription(CameraInfo, "camera_info", infos.append, 10)
        ros.add(listener)
        ros.add(source)
        deadline = time.monotonic() + 10
        while (len(images) < 3 or not source.finished) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert source.finished and source.published == 3
    assert [int(i.data[0]) for i in images] == [0, 40, 80]
    assert all(i.header.frame_id == "test_cam" and i.encoding == "bgr8" for i in images)
    assert infos[0].k[0] == 50 and infos[0].d[0] == 0.1 and infos[0].header == images[0].header


def test_default_intrinsics_are_documented_values() -> None:
    k = default_camera_matrix(768, 576)
    assert k[0, 0] == k[1, 1] == 768 and k[0, 2] == 383.5 and k[1, 2] == 287.5
