"""A small reader for frozen TensorFlow GraphDef files (protobuf wire format), without TensorFlow.

Only what a frozen inference graph of convolutions needs: node name, op, inputs and the attributes of
types string, int, float, bool, dtype, shape, tensor and lists of ints/strings. Tensors come back as numpy
arrays (float32, int32, int64 from `tensor_content` or the repeated `*_val` fields).

Field numbers follow tensorflow/core/framework/{graph,node_def,attr_value,tensor,tensor_shape}.proto.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# TensorFlow DataType enum values used by frozen inference graphs.
DTYPES = {1: np.float32, 3: np.int32, 9: np.int64, 10: np.bool_}


@dataclass
class Node:
    """One NodeDef: `inputs` are tensor names ("node", "node:1", "^control")."""

    name: str
    op: str
    inputs: list[str] = field(default_factory=list)
    attrs: dict[str, object] = field(default_factory=dict)


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    """(value, new position) of the varint at `pos`."""
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(data: memoryview):
    """Yield (field number, wire type, value) of one message: ints for varints/fixed, memoryviews for bytes."""
    pos, end = 0, len(data)
    while pos < end:
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = bytes(data[pos : pos + 8]), pos + 8
        elif wire == 2:
            size, pos = _varint(data, pos)
            value, pos = data[pos : pos + size], pos + size
        elif wire == 5:
            value, pos = bytes(data[pos : pos + 4]), pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} (field {number})")
        yield number, wire, value


def _signed(value: int) -> int:
    """Two's-complement int64 of a varint."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _packed_varints(value) -> list[int]:
    """A packed (bytes) or single (int) repeated varint field."""
    if isinstance(value, int):
        return [_signed(value)]
    out, pos = [], 0
    while pos < len(value):
        v, pos = _varint(value, pos)
        out.append(_signed(v))
    return out


def _shape(data: memoryview) -> tuple[int, ...] | None:
    """TensorShapeProto → dims (-1 unknown), None for unknown rank."""
    dims: list[int] = []
    for number, _, value in _fields(data):
        if number == 2:  # dim
            size = 0
            for n, _, v in _fields(value):
                if n == 1:
                    size = _signed(v)
            dims.append(size)
        elif number == 3 and value:
            return None
    return tuple(dims)


def _tensor(data: memoryview) -> np.ndarray:
    """TensorProto → numpy array."""
    dtype_code, shape, content = 1, (), None
    floats: list[float] = []
    ints: list[int] = []
    for number, wire, value in _fields(data):
        if number == 1:
            dtype_code = value
        elif number == 2:
            shape = _shape(value) or ()
        elif number == 4:
            content = bytes(value)
        elif number == 5:  # float_val, packed or not
            raw = bytes(value) if wire == 2 else value
            floats.extend(struct.unpack(f"<{len(raw) // 4}f", raw))
        elif number in (7, 10):  # int_val, int64_val
            ints.extend(_packed_varints(value))
    if dtype_code not in DTYPES:
        raise ValueError(f"unsupported tensor dtype code {dtype_code}")
    dtype = np.dtype(DTYPES[dtype_code])
    count = int(np.prod(shape)) if shape else 1
    if content is not None:
        array = np.frombuffer(content, dtype=dtype.newbyteorder("<")).astype(dtype)
    else:
        values = floats if dtype == np.float32 else ints
        array = np.array(values, dtype=dtype)
        if array.size == 1 and count > 1:  # a single value stands for all
            array = np.full(count, array[0], dtype=dtype)
    return array.reshape(shape)


def _attr(data: memoryview) -> object:
    """AttrValue → python value (str, int, float, bool, dtype code, shape, array, list)."""
    for number, _, value in _fields(data):
        if number == 2:
            return bytes(value).decode()
        if number == 3:
            return _signed(value)
        if number == 4:
            return struct.unpack("<f", value)[0]
        if number == 5:
            return bool(value)
        if number == 6:
            return value
        if number == 7:
            return _shape(value)
        if number == 8:
            return _tensor(value)
        if number == 1:  # ListValue
            items: list[object] = []
            for n, _, v in _fields(value):
                if n == 2:
                    items.append(bytes(v).decode())
                elif n in (3, 6):
                    items.extend(_packed_varints(v))
                elif n == 4:
                    raw = bytes(v)  # packed (length-delimited) or one fixed32
                    items.extend(struct.unpack(f"<{len(raw) // 4}f", raw))
            return items
    return None


def _node(data: memoryview) -> Node:
    node = Node(name="", op="")
    for number, _, value in _fields(data):
        if number == 1:
            node.name = bytes(value).decode()
        elif number == 2:
            node.op = bytes(value).decode()
        elif number == 3:
            node.inputs.append(bytes(value).decode())
        elif number == 5:  # map entry: key = 1, value = 2
            key, attr = "", None
            for n, _, v in _fields(value):
                if n == 1:
                    key = bytes(v).decode()
                elif n == 2:
                    attr = _attr(v)
            node.attrs[key] = attr
    return node


def read_graph(path: str | Path) -> dict[str, Node]:
    """The nodes of a binary GraphDef file by name, in file order."""
    data = memoryview(Path(path).read_bytes())
    nodes: dict[str, Node] = {}
    for number, _, value in _fields(data):
        if number == 1:
            node = _node(value)
            nodes[node.name] = node
    if not nodes:
        raise ValueError(f"{path} holds no GraphDef nodes")
    return nodes
