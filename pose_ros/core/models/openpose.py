"""OpenPose networks (heatmaps + Part Affinity Fields) and their checkpoint loaders.

Two published layouts load strictly (every key, every shape):

* CMU's COCO body model, as the widely used PyTorch conversion `body_pose_model.pth` (from the Caffe
  `pose_iter_440000.caffemodel` of CMU-Perceptual-Computing-Lab/openpose; PyTorch file distributed with the
  Hzzone/pytorch-openpose project). Flat Caffe layer names: a VGG-19 front (conv1_1 … conv4_2) plus
  conv4_3_CPM and conv4_4_CPM (stride 8, 128 features); stage 1 has two branches, L1 (PAFs, 38 channels) and
  L2 (heatmaps, 19 channels: 18 keypoints + background) of 3×3, 3×3, 3×3, 1×1, 1×1 convolutions; stages 2–6
  take concat(PAFs, heatmaps, features) = 185 channels through five 7×7 and two 1×1 convolutions per branch.
  Every convolution is followed by a ReLU except the last of each branch.
* Lightweight OpenPose (Osokin 2018, `checkpoint_iter_370000.pth` of
  Daniil-Osokin/lightweight-human-pose-estimation.pytorch): MobileNet-v1 front (dilated conv5), a CPM
  adapter to 128 channels, an initial stage and one refinement stage, 19 heatmaps and 38 PAFs, stride 8.
  The checkpoint holds `{"state_dict": ...}` with the module names of that project's `with_mobilenet.py`.

Both expect BGR images normalised as (pixel - 128) / 256, padded to a multiple of 8 with pixel value 128
(which is 0 after normalisation). Both return, per stage, (heatmaps (N, 19, H/8, W/8), pafs (N, 38, H/8, W/8)),
channels as described in `pose_ros.core.openpose.layout`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from pose_ros.core import assets
from pose_ros.core.openpose import layout

STRIDE = 8
PAD_VALUE = 128.0  # pixel value of the padding (0 after normalisation)
PIXEL_MEAN = 128.0
PIXEL_SCALE = 1.0 / 256.0
ARCHITECTURES = ("cmu", "lightweight")
WEIGHTS_HINT = (
    "OpenPose weights are user-supplied: CMU COCO body `body_pose_model.pth` (PyTorch conversion of "
    "CMU-Perceptual-Computing-Lab/openpose pose_iter_440000.caffemodel, from the Hzzone/pytorch-openpose "
    "project) or Lightweight OpenPose `checkpoint_iter_370000.pth` (Daniil-Osokin/"
    "lightweight-human-pose-estimation.pytorch); see docs/openpose.md"
)

StageOutputs = list[tuple[torch.Tensor, torch.Tensor]]

# CMU front: (name, in, out) 3×3 convolutions with ReLU; "pool" = 2×2 max-pool, stride 2.
_CMU_FRONT: tuple[tuple[str, int, int] | str, ...] = (
    ("conv1_1", 3, 64), ("conv1_2", 64, 64), "pool",
    ("conv2_1", 64, 128), ("conv2_2", 128, 128), "pool",
    ("conv3_1", 128, 256), ("conv3_2", 256, 256), ("conv3_3", 256, 256), ("conv3_4", 256, 256), "pool",
    ("conv4_1", 256, 512), ("conv4_2", 512, 512), ("conv4_3_CPM", 512, 256), ("conv4_4_CPM", 256, 128),
)


class OpenPoseCMU(nn.Module):
    """CMU's multi-stage COCO body network with flat Caffe layer names (keys like `Mconv7_stage6_L1.bias`).

    Args:
        num_stages: 6 in the published model.
        num_heatmaps, num_pafs: 19 and 38 for COCO-18.
    """

    stride = STRIDE
    map_offset = 3.5  # output pixel j covers input pixels 8j … 8j + 7 (three 2×2 max-pools)

    def __init__(self, num_stages: int = 6, num_heatmaps: int = layout.NUM_HEATMAP_CHANNELS,
                 num_pafs: int = layout.NUM_PAF_CHANNELS) -> None:
        super().__init__()
        self.num_stages = num_stages
        self.front: list[str] = []
        for item in _CMU_FRONT:
            if item == "pool":
                self.front.append("pool")
                continue
            name, cin, cout = item
            self.add_module(name, nn.Conv2d(cin, cout, 3, padding=1))
            self.front.append(name)
        features = _CMU_FRONT[-1][2]
        self.branches: dict[int, dict[int, list[str]]] = {}
        for stage in range(1, num_stages + 1):
            self.branches[stage] = {}
            for branch, out in ((1, num_pafs), (2, num_heatmaps)):
                specs = _cmu_stage_specs(stage, branch, features, num_pafs + num_heatmaps, out)
                for name, cin, cout, k in specs:
                    self.add_module(name, nn.Conv2d(cin, cout, k, padding=k // 2))
                self.branches[stage][branch] = [name for name, *_ in specs]

    def _run(self, names: list[str], x: torch.Tensor) -> torch.Tensor:
        """Convolutions `names` in order, ReLU after all but the last."""
        for i, name in enumerate(names):
            x = getattr(self, name)(x)
            if i < len(names) - 1:
                x = torch.relu(x)
        return x

    def stages(self, image: torch.Tensor) -> StageOutputs:
        """image (N, 3, H, W) normalised BGR, H and W multiples of 8 → [(heatmaps, pafs)] for every stage."""
        x = image
        for name in self.front:
            x = nn.functional.max_pool2d(x, 2, 2) if name == "pool" else torch.relu(getattr(self, name)(x))
        features = x
        outputs: StageOutputs = []
        stage_input = features
        for stage in range(1, self.num_stages + 1):
            pafs = self._run(self.branches[stage][1], stage_input)
            heatmaps = self._run(self.branches[stage][2], stage_input)
            outputs.append((heatmaps, pafs))
            stage_input = torch.cat([pafs, heatmaps, features], dim=1)
        return outputs

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """image (N, 3, H, W) → the last stage's (heatmaps (N, 19, H/8, W/8), pafs (N, 38, H/8, W/8))."""
        return self.stages(image)[-1]


def _cmu_stage_specs(stage: int, branch: int, features: int, maps: int, out: int) -> list[tuple[str, int, int, int]]:
    """(name, in, out, kernel) of one branch of one CMU stage."""
    if stage == 1:
        prefix = "conv5_{}_CPM_L" + str(branch)
        sizes = [(features, 128, 3), (128, 128, 3), (128, 128, 3), (128, 512, 1), (512, out, 1)]
        return [(prefix.format(i + 1), cin, cout, k) for i, (cin, cout, k) in enumerate(sizes)]
    sizes = [(maps + features, 128, 7)] + [(128, 128, 7)] * 4 + [(128, 128, 1), (128, out, 1)]
    return [(f"Mconv{i + 1}_stage{stage}_L{branch}", cin, cout, k) for i, (cin, cout, k) in enumerate(sizes)]


# --- Lightweight OpenPose (module names follow the published checkpoint) -------------------------------------


def _conv(cin: int, cout: int, kernel: int = 3, stride: int = 1, dilation: int = 1, bn: bool = True,
          relu: bool = True, bias: bool = True) -> nn.Sequential:
    """Conv (padding keeps the size at stride 1) [+ BatchNorm] [+ ReLU]."""
    padding = dilation * (kernel // 2)
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, padding, dilation, bias=bias)]
    if bn:
        layers.append(nn.BatchNorm2d(cout))
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _separable(cin: int, cout: int, stride: int = 1, dilation: int = 1, bn: bool = True) -> nn.Sequential:
    """Depthwise 3×3 + pointwise 1×1, each followed by BatchNorm + ReLU (bn) or by ELU alone (no bn)."""
    depthwise = nn.Conv2d(cin, cin, 3, stride, dilation, dilation, groups=cin, bias=False)
    pointwise = nn.Conv2d(cin, cout, 1, bias=False)
    if bn:
        return nn.Sequential(depthwise, nn.BatchNorm2d(cin), nn.ReLU(inplace=True),
                             pointwise, nn.BatchNorm2d(cout), nn.ReLU(inplace=True))
    return nn.Sequential(depthwise, nn.ELU(inplace=True), pointwise, nn.ELU(inplace=True))


class _Cpm(nn.Module):
    """512 backbone channels → `channels`: 1×1 align, a residual trunk of three separable convs, a 3×3 conv."""

    def __init__(self, cin: int, channels: int) -> None:
        super().__init__()
        self.align = _conv(cin, channels, kernel=1, bn=False)
        self.trunk = nn.Sequential(*[_separable(channels, channels, bn=False) for _ in range(3)])
        self.conv = _conv(channels, channels, bn=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.align(x)
        return self.conv(x + self.trunk(x))


def _heads(cin: int, hidden: int, num_heatmaps: int, num_pafs: int) -> tuple[nn.Sequential, nn.Sequential]:
    """Heatmap and PAF heads: 1×1 conv + ReLU, then a 1×1 conv without activation."""
    return tuple(  # type: ignore[return-value]
        nn.Sequential(_conv(cin, hidden, kernel=1, bn=False), _conv(hidden, out, kernel=1, bn=False, relu=False))
        for out in (num_heatmaps, num_pafs)
    )


class _InitialStage(nn.Module):
    def __init__(self, channels: int, num_heatmaps: int, num_pafs: int) -> None:
        super().__init__()
        self.trunk = nn.Sequential(*[_conv(channels, channels, bn=False) for _ in range(3)])
        self.heatmaps, self.pafs = _heads(channels, 512, num_heatmaps, num_pafs)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.trunk(x)
        return self.heatmaps(x), self.pafs(x)


class _RefinementBlock(nn.Module):
    """1×1 conv, then a residual pair of 3×3 convs (the second dilated by 2) with BatchNorm."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.initial = _conv(cin, cout, kernel=1, bn=False)
        self.trunk = nn.Sequential(_conv(cout, cout), _conv(cout, cout, dilation=2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.initial(x)
        return x + self.trunk(x)


class _RefinementStage(nn.Module):
    def __init__(self, cin: int, channels: int, num_heatmaps: int, num_pafs: int) -> None:
        super().__init__()
        self.trunk = nn.Sequential(_RefinementBlock(cin, channels),
                                   *[_RefinementBlock(channels, channels) for _ in range(4)])
        self.heatmaps, self.pafs = _heads(channels, channels, num_heatmaps, num_pafs)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.trunk(x)
        return self.heatmaps(x), self.pafs(x)


# MobileNet-v1 front of Lightweight OpenPose: (in, out, stride, dilation) of the separable convolutions.
_MOBILENET: tuple[tuple[int, int, int, int], ...] = (
    (32, 64, 1, 1), (64, 128, 2, 1), (128, 128, 1, 1), (128, 256, 2, 1), (256, 256, 1, 1), (256, 512, 1, 1),
    (512, 512, 1, 2), (512, 512, 1, 1), (512, 512, 1, 1), (512, 512, 1, 1), (512, 512, 1, 1),
)


class LightweightOpenPose(nn.Module):
    """Lightweight OpenPose: MobileNet front, CPM adapter, initial stage, `num_refinement_stages` refinements.

    Refinement stages take concat(features, heatmaps, PAFs) of the previous stage.
    """

    stride = STRIDE
    map_offset = 0.0  # output pixel j is centred on input pixel 8j (3×3 stride-2 convolutions, padding 1)

    def __init__(self, num_refinement_stages: int = 1, channels: int = 128,
                 num_heatmaps: int = layout.NUM_HEATMAP_CHANNELS, num_pafs: int = layout.NUM_PAF_CHANNELS) -> None:
        super().__init__()
        self.model = nn.Sequential(_conv(3, 32, stride=2, bias=False),
                                   *[_separable(i, o, s, d) for i, o, s, d in _MOBILENET])
        self.cpm = _Cpm(512, channels)
        self.initial_stage = _InitialStage(channels, num_heatmaps, num_pafs)
        self.refinement_stages = nn.ModuleList(
            _RefinementStage(channels + num_heatmaps + num_pafs, channels, num_heatmaps, num_pafs)
            for _ in range(num_refinement_stages)
        )

    def stages(self, image: torch.Tensor) -> StageOutputs:
        """image (N, 3, H, W) normalised BGR, H and W multiples of 8 → [(heatmaps, pafs)] for every stage."""
        features = self.cpm(self.model(image))
        outputs: StageOutputs = [self.initial_stage(features)]
        for stage in self.refinement_stages:
            heatmaps, pafs = outputs[-1]
            outputs.append(stage(torch.cat([features, heatmaps, pafs], dim=1)))
        return outputs

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """image (N, 3, H, W) → the last stage's (heatmaps (N, 19, H/8, W/8), pafs (N, 38, H/8, W/8))."""
        return self.stages(image)[-1]


# --- a compact network of the CMU design, for training on a CPU ----------------------------------------------


class CompactOpenPose(nn.Module):
    """CMU's two-branch multi-stage design at a small width, trainable from scratch on a CPU.

    Front: `num_pools` + 1 3×3 convolutions with `num_pools` 2×2 max-pools (stride 2**num_pools, `width`
    features). Stage 1: per branch two 3×3 convolutions and a 1×1 output; stages 2…`num_stages`: per branch two
    `kernel`×`kernel` convolutions on concat(PAFs, heatmaps, features) and a 1×1 output. ReLU everywhere
    except on the outputs. Output pixel j covers input pixels stride·j … stride·j + stride - 1.
    """

    def __init__(self, width: int = 32, stage_width: int = 64, num_stages: int = 3, kernel: int = 5,
                 num_pools: int = 3, num_heatmaps: int = layout.NUM_HEATMAP_CHANNELS,
                 num_pafs: int = layout.NUM_PAF_CHANNELS) -> None:
        super().__init__()
        self.config = {"width": width, "stage_width": stage_width, "num_stages": num_stages, "kernel": kernel,
                       "num_pools": num_pools, "num_heatmaps": num_heatmaps, "num_pafs": num_pafs}
        self.stride = 2**num_pools
        self.map_offset = (self.stride - 1) / 2.0
        layers: list[nn.Module] = [_conv(3, width // 2, bn=False)]
        for i in range(num_pools):
            layers += [nn.MaxPool2d(2, 2), _conv(width // 2 if i == 0 else width, width, bn=False)]
        self.front = nn.Sequential(*layers)
        maps = num_heatmaps + num_pafs
        self.paf_branches = nn.ModuleList()
        self.heatmap_branches = nn.ModuleList()
        for stage in range(num_stages):
            cin, k = (width, 3) if stage == 0 else (width + maps, kernel)
            for branches, out in ((self.paf_branches, num_pafs), (self.heatmap_branches, num_heatmaps)):
                branches.append(nn.Sequential(_conv(cin, stage_width, kernel=k, bn=False),
                                              _conv(stage_width, stage_width, kernel=k, bn=False),
                                              _conv(stage_width, out, kernel=1, bn=False, relu=False)))

    def stages(self, image: torch.Tensor) -> StageOutputs:
        """image (N, 3, H, W) normalised BGR, H and W multiples of the stride → [(heatmaps, pafs)] per stage."""
        features = self.front(image)
        outputs: StageOutputs = []
        stage_input = features
        for paf_branch, heatmap_branch in zip(self.paf_branches, self.heatmap_branches, strict=True):
            pafs, heatmaps = paf_branch(stage_input), heatmap_branch(stage_input)
            outputs.append((heatmaps, pafs))
            stage_input = torch.cat([pafs, heatmaps, features], dim=1)
        return outputs

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """image (N, 3, H, W) → the last stage's (heatmaps (N, 19, H/s, W/s), pafs (N, 38, H/s, W/s))."""
        return self.stages(image)[-1]


def save_compact(model: CompactOpenPose, path: str | Path) -> None:
    """Write a trained `CompactOpenPose` as {"state_dict", "compact_config"} (loadable by `load_model`)."""
    torch.save({"state_dict": model.state_dict(), "compact_config": model.config}, Path(path))


# --- checkpoint loading ----------------------------------------------------------------------------------------


def detect_architecture(state_dict: Mapping[str, torch.Tensor]) -> str:
    """"cmu" or "lightweight" from the key names; ValueError when neither layout matches."""
    if "conv1_1.weight" in state_dict and "conv4_4_CPM.weight" in state_dict:
        return "cmu"
    if "cpm.align.0.weight" in state_dict and "initial_stage.trunk.0.0.weight" in state_dict:
        return "lightweight"
    sample = ", ".join(list(state_dict)[:4])
    raise ValueError(f"not an OpenPose CMU or Lightweight OpenPose state dict (first keys: {sample})")


def build_model(state_dict: Mapping[str, torch.Tensor], architecture: str = "auto") -> nn.Module:
    """The network matching `state_dict` (stage count read from its keys), with the weights loaded strictly."""
    if architecture == "auto":
        architecture = detect_architecture(state_dict)
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be 'auto' or one of {ARCHITECTURES}, got {architecture!r}")
    with torch.device("meta"):  # no random initialisation: every tensor comes from the state dict
        if architecture == "cmu":
            stages = {int(m.group(1)) for k in state_dict if (m := re.match(r"Mconv7_stage(\d+)_L1\.weight$", k))}
            model: nn.Module = OpenPoseCMU(num_stages=1 + len(stages))
        else:
            refinements = {int(m.group(1)) for k in state_dict if (m := re.match(r"refinement_stages\.(\d+)\.", k))}
            model = LightweightOpenPose(num_refinement_stages=len(refinements))
    model.load_state_dict(state_dict, strict=True, assign=True)
    return model


def _read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict | None]:
    """(state dict, compact config or None) of a checkpoint file, read with `weights_only=True`."""
    path = assets.require_file(path, "OpenPose weights", WEIGHTS_HINT)
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise RuntimeError(f"cannot read OpenPose weights {path}: {error}") from error
    config = content.get("compact_config") if isinstance(content, Mapping) else None
    if isinstance(content, Mapping) and isinstance(content.get("state_dict"), Mapping):
        content = content["state_dict"]
    if not isinstance(content, Mapping):
        raise RuntimeError(f"OpenPose weights {path} hold a {type(content).__name__}, not a state dict")
    return {k.removeprefix("module."): v for k, v in content.items()}, config


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of an OpenPose checkpoint file (`torch.load(..., weights_only=True)`), unwrapped from a
    training checkpoint's "state_dict" entry and from DataParallel "module." prefixes."""
    return _read_checkpoint(path)[0]


def load_model(path: str | Path, architecture: str = "auto") -> nn.Module:
    """Read a checkpoint (CMU, Lightweight OpenPose or a trained `CompactOpenPose`) and build its network in
    eval mode, weights loaded strictly. Errors name the file."""
    state_dict, compact_config = _read_checkpoint(path)
    try:
        if compact_config is not None and architecture in ("auto", "compact"):
            model = CompactOpenPose(**compact_config)
            model.load_state_dict(state_dict, strict=True)
            return model.eval()
        return build_model(state_dict, architecture).eval()
    except (ValueError, RuntimeError, TypeError) as error:
        raise RuntimeError(f"OpenPose weights {path} do not fit: {error}") from error


def normalise(image_bgr: torch.Tensor) -> torch.Tensor:
    """Pixels (…, 0..255) → the networks' input scale, (pixel - 128) / 256."""
    return (image_bgr - PIXEL_MEAN) * PIXEL_SCALE
