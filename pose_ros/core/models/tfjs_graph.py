"""TF.js graph models (model.json + .bin) executed with torch ops, without TensorFlow.

A TF.js graph model is a TensorFlow GraphDef in JSON (`modelTopology.node`: name, op, inputs, attrs) plus a
`weightsManifest` listing every constant tensor (name, shape, dtype, optional quantization) stored back to
back, little-endian, in one or more .bin files.

`load_graph(path)` parses and validates both files; `TfjsGraphModule(graph, input_shapes)` turns the graph
into a `torch.nn.Module` specialised for fixed input shapes:

* every value that does not depend on the input data (constants, shapes and arithmetic on shapes) is folded
  once at build time, so the forward pass only runs the data ops and is traceable by `torch.onnx.export`;
* constants become buffers (the module moves with `.to(device)`), weights are converted once to torch's
  conv layout in channels_last memory;
* activations stay NHWC like in TF; `x.permute(0, 3, 1, 2)` of a contiguous NHWC tensor is a channels_last
  NCHW view, so convolutions run without layout copies and their outputs permute back for free.

Op semantics follow TF (and the TF.js CPU kernels where TF leaves freedom, e.g. TopK ties pick the lower
index). ResizeBilinear implements all three TF coordinate modes exactly: align_corners, half_pixel_centers
and the legacy "asymmetric" mode (both false) that CenterNet uses.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pose_ros.core.assets import require_file


class ModelFileError(ValueError):
    """A model.json or weight file is corrupt, truncated or inconsistent (the message names the file)."""


class UnsupportedOpError(NotImplementedError):
    """The graph uses an op (or an op variant) this importer does not implement (the message names it)."""


# ----------------------------------------------------------------------------------------------------------
# Parsing model.json and the weight files
# ----------------------------------------------------------------------------------------------------------

_STORAGE_DTYPES = {
    "float32": np.dtype("<f4"),
    "float16": np.dtype("<f2"),
    "int32": np.dtype("<i4"),
    "uint8": np.dtype("u1"),
    "uint16": np.dtype("<u2"),
    "int8": np.dtype("i1"),
    "int16": np.dtype("<i2"),
    "bool": np.dtype("u1"),
}
_VALUE_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}
_TF_DTYPES = {
    "DT_FLOAT": torch.float32,
    "DT_HALF": torch.float32,  # TF.js computes half as float32
    "DT_INT32": torch.int32,
    "DT_INT64": torch.int32,  # TF.js has no int64: it computes int64 tensors as int32
    "DT_INT8": torch.int32,
    "DT_UINT8": torch.int32,
    "DT_BOOL": torch.bool,
}


@dataclass(frozen=True)
class GraphNode:
    """One GraphDef node: `inputs` are value refs "node" or "node:k" (control inputs "^node" dropped)."""

    name: str
    op: str
    inputs: tuple[str, ...]
    attrs: dict

    def attr(self, key: str, default=None):
        """Decoded attribute value: int, float, bool, str, torch dtype, list of those, or `default`."""
        if key not in self.attrs:
            return default
        return _decode_attr(self.attrs[key])


@dataclass
class TfjsGraph:
    """A parsed TF.js graph model.

    Attributes:
        path: the model.json file.
        nodes: all nodes in file order, by name.
        constants: weight tensors by Const node name (dequantized: float32, int32 or bool).
        input_names: Placeholder node names in file order.
        output_names: the signature's outputs (node names), else the nodes nothing consumes.
        weights_sha256: hex digest of the weight files' bytes (identifies the weights, e.g. for caches).
        generated_by: the model's `generatedBy` field (its origin).
    """

    path: Path
    nodes: dict[str, GraphNode]
    constants: dict[str, np.ndarray]
    input_names: list[str]
    output_names: list[str]
    weights_sha256: str
    generated_by: str = ""
    op_counts: dict[str, int] = field(default_factory=dict)


def load_graph(model_json: str | Path) -> TfjsGraph:
    """Parse a TF.js graph model.json and its weight files.

    Raises FileNotFoundError (naming the file) when model.json or a weight file is missing or empty, and
    ModelFileError when either is corrupt or the weight bytes do not match the manifest.
    """
    path = require_file(model_json, "TF.js model.json")
    try:
        spec = json.loads(path.read_text())
        topology = spec["modelTopology"]
        raw_nodes = topology["node"]
        manifest = spec["weightsManifest"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as error:
        raise ModelFileError(f"{path} is not a TF.js graph model.json: {error!r}") from error
    nodes = {n["name"]: _parse_node(n) for n in raw_nodes}
    constants, digest = _load_weights(path, manifest)
    missing = [n.name for n in nodes.values() if n.op == "Const" and n.name not in constants]
    if missing:
        raise ModelFileError(f"{path}: Const nodes without weights in the manifest: {missing[:5]}")
    op_counts: dict[str, int] = {}
    for node in nodes.values():
        op_counts[node.op] = op_counts.get(node.op, 0) + 1
    return TfjsGraph(
        path=path,
        nodes=nodes,
        constants=constants,
        input_names=[n.name for n in nodes.values() if n.op == "Placeholder"],
        output_names=_output_names(spec, nodes),
        weights_sha256=digest,
        generated_by=str(spec.get("generatedBy", "")),
        op_counts=op_counts,
    )


def _parse_node(raw: dict) -> GraphNode:
    inputs = tuple(i for i in raw.get("input", []) if not i.startswith("^"))
    return GraphNode(name=raw["name"], op=raw["op"], inputs=inputs, attrs=raw.get("attr", {}))


def _output_names(spec: dict, nodes: dict[str, GraphNode]) -> list[str]:
    outputs = spec.get("signature", {}).get("outputs", {})
    names = [o["name"].split(":")[0] for o in outputs.values()]
    if names and all(n in nodes for n in names):
        return names
    consumed = {_split_ref(i)[0] for n in nodes.values() for i in n.inputs}
    return [n.name for n in nodes.values() if n.name not in consumed and n.op not in ("Const", "Placeholder")]


def _load_weights(model_json: Path, manifest: list[dict]) -> tuple[dict[str, np.ndarray], str]:
    """Read every manifest group's shards (concatenated in order) into dequantized numpy arrays."""
    constants: dict[str, np.ndarray] = {}
    digest = hashlib.sha256()
    for group in manifest:
        files = [require_file(model_json.parent / p, "TF.js weight file") for p in group["paths"]]
        data = b"".join(f.read_bytes() for f in files)
        digest.update(data)
        where = ", ".join(str(f) for f in files)
        offset = 0
        for weight in group["weights"]:
            array, offset = _read_tensor(data, offset, weight, where)
            constants[weight["name"]] = array
        if offset != len(data):
            raise ModelFileError(
                f"{where}: {len(data)} bytes but the manifest in {model_json} describes {offset} "
                "(corrupt or from another model version)"
            )
    return constants, digest.hexdigest()


def _read_tensor(data: bytes, offset: int, weight: dict, where: str) -> tuple[np.ndarray, int]:
    """Decode one manifest entry at `offset`; return (array, offset after it)."""
    name, dtype, shape = weight["name"], weight["dtype"], [int(s) for s in weight["shape"]]
    quantization = weight.get("quantization")
    storage = quantization["dtype"] if quantization else dtype
    if storage not in _STORAGE_DTYPES or dtype not in _VALUE_DTYPES:
        raise ModelFileError(f"{where}: tensor {name!r} has unsupported dtype {dtype!r} (stored as {storage!r})")
    count = math.prod(shape)
    nbytes = count * _STORAGE_DTYPES[storage].itemsize
    if offset + nbytes > len(data):
        raise ModelFileError(
            f"{where}: truncated: tensor {name!r} needs bytes {offset}..{offset + nbytes} but the weights "
            f"have {len(data)} bytes"
        )
    stored = np.frombuffer(data, dtype=_STORAGE_DTYPES[storage], count=count, offset=offset)
    values = _dequantize(stored, quantization, dtype) if quantization else stored
    return values.astype(_VALUE_DTYPES[dtype]).reshape(shape), offset + nbytes


def _dequantize(stored: np.ndarray, quantization: dict, dtype: str) -> np.ndarray:
    """TF.js weight quantization: float16 storage, or affine uint8/uint16 (value = q * scale + min)."""
    if quantization["dtype"] == "float16":
        return stored.astype(np.float32)
    values = stored.astype(np.float32) * np.float32(quantization["scale"]) + np.float32(quantization["min"])
    return np.round(values) if dtype == "int32" else values


def _decode_attr(value: dict):
    if "list" in value:
        items = value["list"]
        for key in ("i", "f", "s", "b", "type"):
            if key in items:
                return [_decode_scalar(key, v) for v in items[key]]
        return []
    for key in ("i", "f", "s", "b", "type"):
        if key in value:
            return _decode_scalar(key, value[key])
    return value


def _decode_scalar(key: str, raw):
    if key == "i":
        return int(raw)
    if key == "f":
        return float(raw)
    if key == "s":
        return base64.b64decode(raw).decode()
    if key == "b":
        return bool(raw)
    if raw not in _TF_DTYPES:
        raise UnsupportedOpError(f"unsupported tensor type {raw}")
    return _TF_DTYPES[raw]


def _split_ref(ref: str) -> tuple[str, int]:
    name, _, index = ref.partition(":")
    return name, int(index) if index else 0


# ----------------------------------------------------------------------------------------------------------
# Ops: one small nn.Module per graph node that depends on the input data
# ----------------------------------------------------------------------------------------------------------


@dataclass
class Value:
    """A value at build time: its static tensor when it does not depend on the input data, else None;
    `example` is its value for the build-time example input (used for shapes)."""

    example: Tensor
    static: Tensor | None


EXP_NORMAL_LIMIT = -87.0  # exp(-87) = 1.6e-38, just above float32's smallest normal number


class Op(nn.Module):
    """Base of all ops. Subclasses list in `python_args` the input positions read as Python values at
    build time (shapes, axes, k, ...) and implement `compute(inputs)` on the full input list."""

    python_args: tuple[int, ...] = ()

    def __init__(self, node: GraphNode, values: list[Value]) -> None:
        super().__init__()
        self.node_name = node.name
        for i in self.python_args:
            if i < len(values) and values[i].static is None:
                raise UnsupportedOpError(
                    f"{node.op} node {node.name!r}: input {i} depends on the input data (dynamic shapes are "
                    "not supported)"
                )
        self._plan: list[int | str | None] = []  # dynamic slot, buffer name or None (a Python arg)
        slot = 0
        for i, value in enumerate(values):
            if value.static is None:
                self._plan.append(slot)
                slot += 1
            elif i in self.python_args or not self.keep_static(i):
                self._plan.append(None)
            else:
                self.register_buffer(f"c{i}", value.static.clone(), persistent=False)
                self._plan.append(f"c{i}")

    def keep_static(self, index: int) -> bool:
        """Whether static input `index` is kept as a buffer and passed to `compute` (False: op consumed it)."""
        return True

    def forward(self, *dynamic: Tensor) -> Tensor | tuple[Tensor, ...]:
        inputs = [dynamic[p] if isinstance(p, int) else getattr(self, p) if p else None for p in self._plan]
        return self.compute(inputs)

    def compute(self, inputs: list[Tensor | None]) -> Tensor | tuple[Tensor, ...]:
        raise NotImplementedError


def _python(value: Value) -> list | int | float:
    return value.static.tolist() if value.static is not None else []


def _axis(axis: int, ndim: int) -> int:
    return axis + ndim if axis < 0 else axis


def _exp_flushing_underflow(x: Tensor) -> Tensor:
    """exp(x), with 0 where float32 would underflow to a denormal (x < -87.3, exp(x) < 1.2e-38).

    Denormal results send torch's vectorised exp to a scalar path ~20x slower (MoveNet MultiPose takes the
    exp of ~1.2 M squared distances, most of them far below -87); values this small change nothing downstream.
    """
    return torch.where(x >= EXP_NORMAL_LIMIT, torch.exp(torch.clamp(x, min=EXP_NORMAL_LIMIT)), 0.0)


class ElementwiseOp(Op):
    """Unary/binary/n-ary elementwise ops with TF broadcasting."""

    FUNCTIONS: ClassVar[dict[str, Callable[..., Tensor]]] = {
        "Add": torch.add,
        "AddV2": torch.add,
        "Sub": torch.sub,
        "Mul": torch.mul,
        "RealDiv": torch.div,
        "FloorDiv": lambda a, b: torch.div(a, b, rounding_mode="floor"),
        "FloorMod": torch.remainder,
        "Maximum": torch.maximum,
        "Minimum": torch.minimum,
        "SquaredDifference": lambda a, b: (a - b) * (a - b),
        "Less": torch.lt,
        "LessEqual": torch.le,
        "Greater": torch.gt,
        "GreaterEqual": torch.ge,
        "Equal": torch.eq,
        "NotEqual": torch.ne,
        "LogicalAnd": torch.logical_and,
        "LogicalOr": torch.logical_or,
        "LogicalNot": torch.logical_not,
        "Abs": torch.abs,
        "Neg": torch.neg,
        "Exp": _exp_flushing_underflow,
        "Log": torch.log,
        "Sqrt": torch.sqrt,
        "Rsqrt": torch.rsqrt,
        "Square": lambda a: a * a,
        "Sigmoid": torch.sigmoid,
        "Tanh": torch.tanh,
        "Relu": torch.relu,
        "Relu6": lambda a: torch.clamp(a, 0.0, 6.0),
        "Reciprocal": torch.reciprocal,
        "Floor": torch.floor,
        "Identity": lambda a: a,
        "AddN": lambda *xs: sum(xs[1:], xs[0]),
    }

    def __init__(self, node: GraphNode, values: list[Value]) -> None:
        super().__init__(node, values)
        self.function = self.FUNCTIONS[node.op]

    def compute(self, inputs: list[Tensor | None]) -> Tensor:
        return self.function(*inputs)


class CastOp(Op):
    def __init__(self, node: GraphNode, values: list[Value]) -> None:
        super().__init__(node, values)
        self.dtype = node.attr("DstT")

    def compute(self, inputs: list[Tensor | None]) -> Tensor:
        return inputs[0].to(self.dtype)


class SelectOp(Op):
    """Select (v1: a rank-1 condition picks rows) and SelectV2 (broadcasting)."""

    def compute(self, inputs: list[Tensor | None]) -> Tensor:
        condition, then, otherwise = inputs
        if condition.dim() == 1 and then.dim() > 1:
            condition = condition.reshape(-1, *([1] * (then.dim() - 1)))
        return torch.where(condition, then, otherwise)


def _same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TF 'SAME' padding (before, after) of one spatial dimension."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class ConvOp(Op):
    """Conv2D / _FusedConv2D / DepthwiseConv2dNative / FusedDepthwiseConv2dNative, NHWC in and out.

    Weights (TF: HWIO, or HW C M for depthwise) are stored once as torch OIHW in channels_last memory, or, for
    1×1 stride-1 convolutions, as a (Cin, Cout) matrix: those run as one `addmm` on the NHWC pixels (bias
    fused; measured up to 1.6× faster than F.conv2d's 1×1 path, bit-identical).
    Fused ops: BiasAdd then an optional activation (Relu, Relu6, LeakyRelu, Sigmoid, Elu, Prelu).
    """

    ACTIVATIONS = ("Relu", "Relu6", "LeakyRelu", "Sigmoid", "Elu", "Prelu")

    def __init__(self, node: GraphNode, values: list[Value]) -> None:
        self.depthwise = "Depthwise" in node.op
        self.fused = [] if node.op in ("Conv2D", "DepthwiseConv2dNative") else node.attr("fused_ops", [])
        super().__init__(node, values)
        if node.attr("data_format", "NHWC") != "NHWC" or any(v.static is None for v in values[1:]):
            raise UnsupportedOpError(f"{node.op} node {node.name!r}: only NHWC with constant weights")
        unknown = [f for f in self.fused if f not in ("BiasAdd", *self.ACTIVATIONS)]
        if unknown or (self.fused and self.fused[0] != "BiasAdd"):
            raise UnsupportedOpError(f"{node.op} node {node.name!r}: unsupported fused ops {self.fused}")
        filt = values[1].static
        kh, kw, cin, cout = filt.shape
        self.groups = cin if self.depthwise else 1
        weight = filt.reshape(kh, kw, 1, cin * cout) if self.depthwise else filt
        self.pointwise = (kh, kw) == (1, 1) and self.groups == 1 and node.attr("strides") == [1, 1, 1, 1]
        if self.pointwise:
            self.weight = nn.Buffer(filt.reshape(cin, cout).contiguous())
        else:
            self.weight = nn.Buffer(weight.permute(3, 2, 0, 1).contiguous(memory_format=torch.channels_last))
        self.bias = nn.Buffer(values[2].static.clone()) if "BiasAdd" in self.fused else None
        self.activation = self.fused[1] if len(self.fused) > 1 else None
        self.alpha = nn.Buffer(values[3].static.clone()) if self.activation == "Prelu" else None
        self.leaky_alpha = float(node.attr("leakyrelu_alpha", 0.2))
        self.stride = tuple(node.attr("strides")[1:3])
        self.dilation = tuple(node.attr("dilations", [1, 1, 1, 1])[1:3])
        height, width = values[0].example.shape[1:3]
        self.pads = self._pads(node, (height, width), (kh, kw))

    def _pads(self, node: GraphNode, size: tuple[int, int], kernel: tuple[int, int]) -> tuple[int, int, int, int]:
        padding = node.attr("padding")
        if padding == "VALID":
            return (0, 0, 0, 0)
        if padding != "SAME":
            raise UnsupportedOpError(f"{node.op} node {node.name!r}: padding {padding!r}")
        top, bottom = _same_padding(size[0], kernel[0], self.stride[0], self.dilation[0])
        left, right = _same_padding(size[1], kernel[1], self.stride[1], self.dilation[1])
        return (left, right, top, bottom)

    def keep_static(self, index: int) -> bool:
        return index == 0

    def compute(self, inputs: list[Tensor | None]) -> Tensor:
        return self._activate(self._pointwise(inputs[0]) if self.pointwise else self._conv(inputs[0]))

    def _pointwise(self, x: Tensor) -> Tensor:
        """(N, H, W, Cin) -> (N, H, W, Cout) as one matrix product over the pixels."""
        pixels = x.reshape(-1, x.shape[-1])
        y = pixels @ self.weight if self.bias is None else torch.addmm(self.bias, pixels, self.weight)
        return y.reshape(*x.shape[:-1], self.weight.shape[1])

    def _conv(self, x: Tensor) -> Tensor:
        """(N, H, W, Cin) -> (N, H, W, Cout) through a channels_last NCHW view (no layout copies)."""
        x = x.permute(0, 3, 1, 2)
        left, right, top, bottom = self.pads
        if left == right and top == bottom:
            padding = (top, left)
        else:
            x = F.pad(x, self.pads)
            padding = (0, 0)
        y = F.conv2d(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)
        return y.permute(0, 2, 3, 1)

    def _activate(self, y: Tensor) -> Tensor:
        """The fused activation on the fresh NHWC conv output."""
        if self.activation is None:
            return y
        if self.activation == "Relu":  # in place: y is the fresh conv output (saves a full-size allocation)
            return torch.relu_(y)
        if self.activation == "Relu6":
            return torch.clamp_(y, 0.0, 6.0)
        if self.activation == "LeakyRelu":
            return F.leaky_relu(y, self.leaky_alpha)
        if self.activation == "Sigmoid":
            return torch.sigmoid(y)
        if self.activation == "Elu":
            return F.elu(y)
        return torch.where(y >= 0, y, y * self.alpha.reshape(-1))


class MaxPoolOp(Op):
    def __init__(self, node: GraphNode, values: list[Value]) -> None:
        super().__init__(node, values)
        self.kernel = tuple(node.attr("ksize")[1:3])
        self.stride = tuple(node.attr("strides")[1:3])
        height, width = values[0].example.shape[1:3]
        if node.attr("padding") == "SAME":
            top, bottom = _same_padding(height, self.kernel[0], self.stride[0], 1)
            left, right = _same_padding(width, self.kernel[1], self.stride[1], 1)
        else:
            top = bottom = left = right = 0
        self.pads = (left, right, top, bottom)

    def compute(self, inputs: list[Tensor | None]) -> Tensor:
        x = F.pad(inputs[0].permute(0, 3, 1, 2), self.pads, value=-math.inf) if any(self.pads) else None
        x = inputs[0].permute(0, 3, 1, 2) if x is None else x
        return F.max_pool2d(x, self.kernel, self.stride).permute(0, 2, 3, 1)


class ResizeBilinearOp(Op):
    """TF ResizeBilinear (NHWC), exactly as the TF.js CPU kernel: per output row/column a source coordinate
    `src = ratio * (out + 0.5) - 0.5` (half_pixel_centers) or `src = ratio * out` (align_corners, or the
    'asymmetric' legacy mode when both attrs are false), with ratio = in/out or (in-1)/(out-1) for
    align_corners; neighbours floor/ceil clamped to the image; lerp along x, then along y."""

    python_args = (1,)

    def __init__(self, node: GraphNode, values: list[Value]) -> None:
        super().__init__(node, values)
        align_corners = bool(node.attr("align_corners", False))
        half_pixel = bool(node.attr("half_pixel_centers", False))
        (out_h, out_w), (in_h, in_w) = _python(values[1]), values[0].example.shape[1:3]
        for axis, (n_in, n_out) in (("y", (in_h, out_h)), ("x", (in_w, out_w))):
            low, high, frac = self._sources(n_in, n_out, align_corners, half_pixel)
            self.register_buffer(f"{axis}_low", low, persistent=False)
            self.register_buffer(f"{axis}_high", high, persistent=False)
            self.register_buffer(f"{axis}_frac", frac, persistent=False)

    @staticmethod
    def _sources(n_in: int, n_out: int, align_corners: bool, half_pixel: bool) -> tuple[Tensor, Tensor, Tensor]:
        corners = align_corners and n_out > 1
        ratio = (n_in - 1) / (n_out - 1) if corners else n_in / n_out
        out = np.arange(n_out, dtype=np.float64)
        source = ratio * (out + 0.5) - 0.5 if half_pixel else ratio * out
        low = np.maximum(np.floor(source), 0)
        high = np.minimum(np.ceil(source), n_in - 1)
        frac = (source - low).astype(np.float32)
        return torch.from_numpy(low.astype(np.int64)), torch.from_numpy(high.astype(np.int64)), torch.from_numpy(frac)

    def compute(self, inputs: list[Tensor | None]) -> Tensor:
        x = inputs[0]
        fx = self.x_frac.reshape(1, 1, -1, 1)
        left, right = x.index_select(2, self.x_low), x.index_select(2, self.x_high)
        rows = left + (right - left) * fx
        top, bottom = rows.index_select(1, self.y_low), rows.index_select(1, self.y_high)
        return top + (bottom - top) * self.y_frac.reshape(1, -1, 1, 1)


class ReduceOp(Op):
    """Mean / Sum / Max / Min / Prod over constant axes."""

    python_args = (1,)

    def __init__(self, node: GraphNode, values: list[Value]) -> None:
        super().__init__(node, values)
        axes = _python(values[1])
        ndim = values[0].example.dim()
        self.axes = sorted(_axis(a, ndim) for a in (axes if isinstance(axes, list) else [axes]))
        self.keep_dims = bool(node.attr("keep_dims", False))
        self.op = node.op

    def compute(self, inputs: list[Tensor | None]) -> Tensor:
        x = inputs[0]
        if self.op == "Mean":
            return x.mean(dim=self.axes, keepdim=self.keep_dims)
        if self.op == "Sum":
            return x.sum(dim=self.axes, keepdim=self.keep_dims)
        if self.op == "Prod":
            for axis in reversed(self.axes):
                x = x.prod(dim=axis, keepdim=self.keep_dims)
            return x
        reduce = torch.amax if self.op == "Max" else torch.amin
        return reduce(x, dim=self.axes, keepdim=self.keep_dims)


class ArgMaxOp(Op):
    python_args = (1,)

    def __init__(self, node: GraphNode, values: list[Value]) -> None:
        super().__init__(node, values)
        self.axis = _axis(int(_python(values[1])), values[0].example.dim())
        self.op = node.op

    def compute(self, inputs: list[Tensor | None]) -> Tensor:
        x = inputs[0] if self.op == "ArgMax" else -inputs[0]
        return torch.argmax(x, dim=self.axis).to(torch.int32)


class TopKOp(Op):
    """TopKV2 along the last axis; ties go to the lower index (as TF and TF.js): a stable descending sort."""

    python_args = (1,)

    def __init__(self, node: GraphNode, values: list[Value]) -> None:
        super().__init__(node, values)
        self.k = int(_python(values[1]))

    def compute(self, inputs: list[Tensor | None]) -> tuple[Tensor, Tensor]:
        if torch.compiler.is_exporting():  # ONNX TopK specifies the lower index first on ties
            values, indices = torch.topk(inputs[0], self.k, dim=-1, largest=True, sorted=True)
            return values, indices.to(torch.int32)
        values, indices = torch.sort(inputs[0], dim=-1, descending=True, stable=True)  # torch.topk: ties unordered
        return values[..., : self.k], indices[..., : self.k].to(torch.int32)


class StridedSliceOp(Op):
    """TF StridedSlice with begin/end/ellipsis/new-axis/shrink-axis masks, as a torch indexing tuple."""

    python_args = (1, 2, 3)

    def __init__(self, node: GraphNode, values: list[Value]) -> None:
        super().__init__(node, values)
        begin, end, strides = (_python(v) for v in values[1:4])
        if any(s < 0 for s in strides):
            raise UnsupportedOpError(f"StridedSlice node {node.name!r}: negative strides")
        masks = {k: int(node.attr(f"{k}_mask", 0)) for k in ("begin", "end", "ellipsis", "new_axis", "shrink_axis")}
        index: list = []
        for i, (b, e, s) in enumerate(zip(begin, end, strides, strict=True)):
            bit = 1 << i
            if masks["ellipsis"] & bit:
                index.append(Ellipsis)
            elif masks["new_axis"] & bit:
                index.append(None)
            elif masks["shrink_axis"] & bit:
                index.append(b)
            else:
                index.append(slice(None if masks["begin"] & bit else b, None if masks["end"] & bit else e, s))
        self.index = tuple(index)

    def compute(self, inputs: list[Tensor | None]) -> Tensor:
        return inputs[0][self.index]


class ReshapeOp(Op):
    python_args = (1,)

    def __init__(self, node: GraphNode, values: list[Value]) -> None:
        super().__init__(node, values)
        shape = _python(values[1])
        self.shape = [shape] if isinstance(shape, int) else shape

    def compute(self, inputs: list[Tensor | None]) -> Tensor:
        return inputs[0].reshape(self.shape)


class SqueezeOp(Op):
    def __init__(self, node: GraphNode, values: list[Value]) -> None:
        super().__init__(node, values)
        shape = values[0].example.shape
        dims = node.attr("squeeze_dims", []) or [i for i, n in enumerate(shape) if n == 1]
        self.shape = [n for i, n in enumerate(shape) if i not in {_axis(d, len(shape)) for d in dims}]

    def compute(self, inputs: list[Tensor | None]) -> Tensor:
        return inputs[0].reshape(self.shape)


class ExpandDimsOp(Op):
    python_args = (1,)

    def __init__(self, node: GraphNode, values: list[Value]) -> None:
        super().__init__(node, values)
        dim = _python(values[1])
        dim = dim[0] if isinstance(dim, list) else dim
        self.dim = dim + values[0].example.dim() + 1 if dim < 0 else dim

    def compute(self, inputs: list[Tensor | None]) -> Tensor:
        return inputs[0].unsqueeze(self.dim)


class PackOp(Op):
    def __init__(self, node: GraphNode, values: list[Value]) -> None:
        super().__init__(node, values)
        self.axis = _axis(int(node.attr("axis", 0)), values[0].example.dim() + 1)

    def compute(self, inputs: list[Tensor | None]) -> Tensor:
        return torch.stack(inputs, dim=self.axis)


class UnpackOp(Op):
    def __init__(self, node: GraphNode, values: list[Value]) -> None:
        super().__init__(node, values)
        self.axis = _axis(int(node.attr("axis", 0)), values[0].example.dim())

    def compute(self, inputs: list[Tensor | None]) -> tuple[Tensor, ...]:
        return torch.unbind(inputs[0], dim=self.axis)


class ConcatOp(Op):
    """ConcatV2: the last input is the axis."""

    def __init__(self, node: GraphNode, values: list[Value]) -> None:
        self.python_args = (len(values) - 1,)
        super().__init__(node, values)
        self.axis = _axis(int(_python(values[-1])), values[0].example.dim())

    def compute(self, inputs: list[Tensor | None]) -> Tensor:
        return torch.cat(inputs[:-1], dim=self.axis)


class SplitOp(Op):
    """Split: input 0 is the axis, input 1 the value, attr num_split equal parts."""

    python_args = (0,)

    def __init__(self, node: GraphNode, values: list[Value]) -> None:
        super().__init__(node, values)
        self.axis = _axis(int(_python(values[0])), values[1].example.dim())
        self.parts = int(node.attr("num_split"))

    def compute(self, inputs: list[Tensor | None]) -> tuple[Tensor, ...]:
        return torch.chunk(inputs[1], self.parts, dim=self.axis)


class TileOp(Op):
    python_args = (1,)

    def __init__(self, node: GraphNode, values: list[Value]) -> None:
        super().__init__(node, values)
        self.multiples = _python(values[1])

    def compute(self, inputs: list[Tensor | None]) -> Tensor:
        return inputs[0].repeat(self.multiples)


class FillOp(Op):
    python_args = (0,)

    def __init__(self, node: GraphNode, values: list[Value]) -> None:
        super().__init__(node, values)
        self.shape = _python(values[0])

    def compute(self, inputs: list[Tensor | None]) -> Tensor:
        return inputs[1].expand(self.shape).clone()


class RangeOp(Op):
    python_args = (0, 1, 2)

    def __init__(self, node: GraphNode, values: list[Value]) -> None:
        super().__init__(node, values)
        self.start, self.limit, self.delta = (_python(v) for v in values)
        self.dtype = values[0].static.dtype

    def compute(self, inputs: list[Tensor | None]) -> Tensor:
        return torch.arange(self.start, self.limit, self.delta, dtype=torch.float64).to(self.dtype)


class GatherNdOp(Op):
    """GatherNd: indices (..., M) address the first M axes of params (shape static)."""

    def __init__(self, node: GraphNode, values: list[Value]) -> None:
        super().__init__(node, values)
        params_shape = list(values[0].example.shape)
        depth = values[1].example.shape[-1]
        strides = [math.prod(params_shape[i + 1 : depth]) for i in range(depth)]
        self.strides = nn.Buffer(torch.tensor(strides, dtype=torch.int64), persistent=False)
        self.flat_shape = [math.prod(params_shape[:depth]), *params_shape[depth:]]
        self.slice_shape = params_shape[depth:]

    def compute(self, inputs: list[Tensor | None]) -> Tensor:
        params, indices = inputs
        flat = (indices.to(torch.int64) * self.strides).sum(dim=-1)
        gathered = params.reshape(self.flat_shape).index_select(0, flat.reshape(-1))
        return gathered.reshape(*indices.shape[:-1], *self.slice_shape)


class GatherOp(Op):
    """GatherV2 (batch_dims 0): params.take(indices) along a constant axis."""

    python_args = (2,)

    def __init__(self, node: GraphNode, values: list[Value]) -> None:
        super().__init__(node, values)
        if int(node.attr("batch_dims", 0)) != 0:
            raise UnsupportedOpError(f"GatherV2 node {node.name!r}: batch_dims != 0")
        self.axis = _axis(int(_python(values[2])), values[0].example.dim())

    def compute(self, inputs: list[Tensor | None]) -> Tensor:
        params, indices = inputs[0], inputs[1]
        gathered = params.index_select(self.axis, indices.reshape(-1).to(torch.int64))
        shape = [*params.shape[: self.axis], *indices.shape, *params.shape[self.axis + 1 :]]
        return gathered.reshape(shape)


SHAPE_OPS = ("Shape", "Size", "Rank")  # folded at build time, see TfjsGraphModule
OPS: dict[str, type[Op]] = {
    **dict.fromkeys(ElementwiseOp.FUNCTIONS, ElementwiseOp),
    "Cast": CastOp,
    "Select": SelectOp,
    "SelectV2": SelectOp,
    **dict.fromkeys(("Conv2D", "_FusedConv2D", "DepthwiseConv2dNative", "FusedDepthwiseConv2dNative"), ConvOp),
    "MaxPool": MaxPoolOp,
    "ResizeBilinear": ResizeBilinearOp,
    **dict.fromkeys(("Mean", "Sum", "Max", "Min", "Prod"), ReduceOp),
    "ArgMax": ArgMaxOp,
    "ArgMin": ArgMaxOp,
    "TopKV2": TopKOp,
    "StridedSlice": StridedSliceOp,
    "Reshape": ReshapeOp,
    "Squeeze": SqueezeOp,
    "ExpandDims": ExpandDimsOp,
    "Pack": PackOp,
    "Unpack": UnpackOp,
    "ConcatV2": ConcatOp,
    "Split": SplitOp,
    "Tile": TileOp,
    "Fill": FillOp,
    "Range": RangeOp,
    "GatherNd": GatherNdOp,
    "GatherV2": GatherOp,
}


# ----------------------------------------------------------------------------------------------------------
# The module: constant folding at build time, then a flat program of data ops
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Step:
    inputs: tuple[int, ...]  # value slots read
    outputs: tuple[int, ...]  # value slots written
    release: tuple[int, ...]  # slots whose last reader this step is


class TfjsGraphModule(nn.Module):
    """A TF.js graph as a torch module for fixed input shapes.

    forward(*inputs) takes the graph's Placeholders in `input_names` order (NHWC tensors of the model's
    dtypes, e.g. int32 RGB 0..255 for MoveNet) and returns a tuple with one tensor per `output_names` entry.
    Build-time cost: one pass of the graph on zero inputs (folds constants, records shapes).
    """

    def __init__(
        self,
        graph: TfjsGraph,
        input_shapes: dict[str, Sequence[int]],
        output_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        self.model_path = str(graph.path)
        self.input_names = list(graph.input_names)
        self.output_names = list(output_names or graph.output_names)
        missing = set(self.input_names) - set(input_shapes)
        if missing:
            raise ValueError(f"{graph.path}: input shapes missing for {sorted(missing)}")
        self.input_shapes = {name: tuple(int(n) for n in input_shapes[name]) for name in self.input_names}
        order = _topological_order(graph, self.output_names)
        _check_supported(graph, order)
        self.steps = nn.ModuleList()
        self._program: list[_Step] = []
        self._build(graph, order)

    def _build(self, graph: TfjsGraph, order: list[GraphNode]) -> None:
        values: dict[str, Value] = {}
        slots: dict[str, int] = {}
        program: list[tuple[Op, list[str], list[str]]] = []
        for node in order:
            outputs = self._build_node(graph, node, values, program)
            for index, value in enumerate(outputs):
                values[f"{node.name}:{index}"] = value
                if value.static is None:
                    slots[f"{node.name}:{index}"] = len(slots)
        self._input_slots = [slots[f"{name}:0"] for name in self.input_names]
        self._output_slots = []
        for name in self.output_names:
            if f"{name}:0" not in slots:
                raise UnsupportedOpError(f"{graph.path}: output {name!r} does not depend on the input")
            self._output_slots.append(slots[f"{name}:0"])
        self._num_slots = len(slots)
        self._program = self._schedule(program, slots)

    def _build_node(self, graph: TfjsGraph, node: GraphNode, values: dict[str, Value], program: list) -> list[Value]:
        """Create the op for `node`, run it on the example values; return its output Values."""
        if node.op == "Const":
            constant = torch.from_numpy(graph.constants[node.name].copy())
            return [Value(constant, constant)]
        if node.op == "Placeholder":
            dtype = node.attr("dtype", torch.float32)
            return [Value(torch.zeros(self.input_shapes[node.name], dtype=dtype), None)]
        inputs = [values[_canonical(ref)] for ref in node.inputs]
        if node.op in SHAPE_OPS:  # static for fixed input shapes
            shape = _shape_value(node.op, inputs[0].example)
            return [Value(shape, shape)]
        try:
            op = OPS[node.op](node, inputs)
            example = op(*[v.example for v in inputs if v.static is None])
        except (RuntimeError, IndexError, ValueError) as error:  # torch's shape errors, bad constant indices
            if isinstance(error, UnsupportedOpError | ModelFileError):
                raise
            shapes = [tuple(v.example.shape) for v in inputs]
            raise ValueError(
                f"{graph.path}: {node.op} node {node.name!r} cannot run on inputs of shapes {shapes} with model "
                f"input shapes {self.input_shapes} (does the model accept this input size?): {error}"
            ) from error
        examples = list(example) if isinstance(example, tuple) else [example]
        dynamic = any(v.static is None for v in inputs)
        if dynamic:
            outputs = [f"{node.name}:{i}" for i in range(len(examples))]
            program.append((op, [_canonical(r) for r in node.inputs], outputs))
        return [Value(e, None if dynamic else e) for e in examples]

    def _schedule(self, program: list, slots: dict[str, int]) -> list[_Step]:
        """Flatten (op, input refs, output refs) into slot steps, releasing each value after its last use."""
        last_use: dict[int, int] = {}
        resolved = []
        for position, (op, input_refs, output_refs) in enumerate(program):
            ins = tuple(slots[r] for r in input_refs if r in slots)
            outs = tuple(slots[r] for r in output_refs)
            for slot in ins:
                last_use[slot] = position
            resolved.append((op, ins, outs))
        keep = set(self._output_slots)
        steps = []
        for position, (op, ins, outs) in enumerate(resolved):
            release = tuple(s for s in set(ins) if last_use[s] == position and s not in keep)
            self.steps.append(op)
            steps.append(_Step(ins, outs, release))
        return steps

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        if len(inputs) != len(self._input_slots):
            raise ValueError(f"expected {len(self._input_slots)} inputs ({self.input_names}), got {len(inputs)}")
        slots: list[Tensor | None] = [None] * self._num_slots
        for slot, x in zip(self._input_slots, inputs, strict=True):
            slots[slot] = x
        for op, step in zip(self.steps, self._program, strict=True):
            result = op(*[slots[s] for s in step.inputs])
            if len(step.outputs) == 1:
                slots[step.outputs[0]] = result if isinstance(result, Tensor) else result[0]
            else:
                for slot, value in zip(step.outputs, result, strict=False):
                    slots[slot] = value
            for slot in step.release:
                slots[slot] = None
        return tuple(slots[s] for s in self._output_slots)


def _canonical(ref: str) -> str:
    name, index = _split_ref(ref)
    return f"{name}:{index}"


def _shape_value(op: str, example: Tensor) -> Tensor:
    if op == "Shape":
        return torch.tensor(list(example.shape), dtype=torch.int32)
    if op == "Size":
        return torch.tensor(example.numel(), dtype=torch.int32)
    return torch.tensor(example.dim(), dtype=torch.int32)


def _topological_order(graph: TfjsGraph, output_names: Sequence[str]) -> list[GraphNode]:
    """Nodes needed for the outputs, each after its inputs (iterative DFS)."""
    order: list[GraphNode] = []
    state: dict[str, int] = {}  # 1 = visiting, 2 = done
    for output in output_names:
        if output not in graph.nodes:
            raise ValueError(f"{graph.path}: no node named {output!r}")
        stack: list[tuple[str, bool]] = [(output, False)]
        while stack:
            name, expanded = stack.pop()
            if expanded:
                state[name] = 2
                order.append(graph.nodes[name])
                continue
            if state.get(name):
                continue
            state[name] = 1
            stack.append((name, True))
            for ref in reversed(graph.nodes[name].inputs):
                parent = _split_ref(ref)[0]
                if parent not in graph.nodes:
                    raise ModelFileError(f"{graph.path}: node {name!r} reads unknown node {parent!r}")
                if not state.get(parent):
                    stack.append((parent, False))
    return order


def _check_supported(graph: TfjsGraph, order: list[GraphNode]) -> None:
    built_in = ("Const", "Placeholder", *SHAPE_OPS)
    unsupported = sorted({n.op for n in order if n.op not in OPS and n.op not in built_in})
    if unsupported:
        users = {op: next(n.name for n in order if n.op == op) for op in unsupported}
        raise UnsupportedOpError(f"{graph.path}: unsupported TF ops {users} (op: first node using it)")


def build_module(
    model_json: str | Path,
    input_shapes: dict[str, Sequence[int]] | Sequence[int],
    output_names: Sequence[str] | None = None,
) -> TfjsGraphModule:
    """Load a TF.js graph model and build its torch module; `input_shapes` may be one shape for a
    single-input model."""
    graph = load_graph(model_json)
    if not isinstance(input_shapes, dict):
        if len(graph.input_names) != 1:
            raise ValueError(f"{graph.path} has inputs {graph.input_names}: give a shape per input name")
        input_shapes = {graph.input_names[0]: tuple(input_shapes)}
    return TfjsGraphModule(graph, input_shapes, output_names).eval()
