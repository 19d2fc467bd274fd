"""Inference backends for the project's torch modules: torch itself, or onnxruntime on an ONNX export.

The ONNX file is exported from the project's own torch module (`torch.onnx.export`, which needs the `onnx`
and `onnxscript` packages) and cached under `assets.exported_models_dir()`, keyed by model name, input
shapes, a hash of the weights and a fingerprint of the code that builds the module (the importer's source and
the torch version), so a changed importer never reuses a stale export.

Both runners take and return numpy arrays, so estimators do not care which one runs.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from pose_ros.core import assets
from pose_ros.core.models import tfjs_graph

BACKENDS = ("auto", "torch", "onnxruntime")
LOG = logging.getLogger(__name__)


class BackendError(RuntimeError):
    """A backend could not be prepared (e.g. ONNX export or onnxruntime failed); the message says why."""


class Runner(Protocol):
    """Runs a model: numpy inputs (the model's dtypes and shapes) -> numpy outputs (on the CPU)."""

    name: str

    def __call__(self, *inputs: np.ndarray) -> tuple[np.ndarray, ...]: ...


class TorchRunner:
    """Runs a torch module on its device under inference_mode; the module is moved once, here."""

    name = "torch"

    def __init__(self, module: nn.Module, device: torch.device) -> None:
        self.module = module.eval().to(device)
        self.device = device

    def __call__(self, *inputs: np.ndarray) -> tuple[np.ndarray, ...]:
        with torch.inference_mode():
            outputs = self.module(*[torch.from_numpy(np.ascontiguousarray(x)).to(self.device) for x in inputs])
        return tuple(o.cpu().numpy() for o in outputs)


class OnnxRunner:
    """Runs an ONNX file with onnxruntime (CUDA provider when asked for and available, else CPU), with as many
    intra-op threads as torch uses (`torch.get_num_threads()` when the session is made): one thread policy."""

    name = "onnxruntime"

    def __init__(self, path: Path, device: torch.device) -> None:
        import onnxruntime

        providers = ["CPUExecutionProvider"]
        if device.type == "cuda" and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        self.session = onnxruntime.InferenceSession(str(path), options, providers=providers)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.path = path

    def __call__(self, *inputs: np.ndarray) -> tuple[np.ndarray, ...]:
        return tuple(self.session.run(None, dict(zip(self.input_names, inputs, strict=True))))


def resolve_backend(backend: str, device: torch.device) -> str:
    """'auto' -> 'onnxruntime' on the CPU, 'torch' on CUDA; other names are checked and returned."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        return "torch" if device.type == "cuda" else "onnxruntime"
    return backend


def onnx_cache_path(model_name: str, input_shapes: Sequence[Sequence[int]], weights_sha256: str) -> Path:
    """Where the ONNX export of `model_name` at these input shapes with these weights is cached."""
    shapes = "_".join("x".join(str(n) for n in shape) for shape in input_shapes)
    return assets.exported_models_dir() / f"{model_name}-{shapes}-{weights_sha256[:16]}-{code_fingerprint()}.onnx"


@functools.cache
def code_fingerprint() -> str:
    """8 hex digits identifying the importer's source and the torch version (part of the ONNX cache key)."""
    digest = hashlib.sha256(Path(tfjs_graph.__file__).read_bytes())
    digest.update(torch.__version__.encode())
    return digest.hexdigest()[:8]


def export_onnx(module: nn.Module, example_inputs: Sequence[torch.Tensor], path: Path) -> Path:
    """Export `module` (on the CPU) to `path` unless it exists; written atomically. Raises BackendError."""
    if path.is_file() and path.stat().st_size > 0:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(suffix=".onnx", dir=path.parent)
    os.close(handle)
    try:
        module = module.eval().to("cpu")
        with torch.inference_mode(False), torch.no_grad():
            torch.onnx.export(module, tuple(example_inputs), tmp, dynamo=True, external_data=False, verbose=False)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except Exception as error:  # the exporter raises many types; all mean "no ONNX file"
        summary = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
        raise BackendError(
            f"exporting {type(module).__name__} to ONNX ({path}) failed: {type(error).__name__}: {summary}"
        ) from error
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def make_runner(
    module: nn.Module,
    example_inputs: Sequence[torch.Tensor],
    backend: str,
    device: torch.device,
    onnx_path: Path,
    fallback_to_torch: bool,
) -> Runner:
    """The runner for `backend` ('auto' | 'torch' | 'onnxruntime').

    For onnxruntime the module is exported to `onnx_path` first (cached). If that or loading the session
    fails: with `fallback_to_torch` log a warning and return a TorchRunner, else raise BackendError.
    """
    if resolve_backend(backend, device) == "torch":
        return TorchRunner(module, device)
    try:
        return OnnxRunner(export_onnx(module, example_inputs, onnx_path), device)
    except Exception as error:
        message = f"onnxruntime backend unavailable: {error}"
        if not fallback_to_torch:
            raise BackendError(f"{message} (use backend='torch', or allow the fallback to torch)") from error
        LOG.warning("%s; falling back to torch", message)
        return TorchRunner(module, device)
