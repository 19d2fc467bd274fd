"""TensorFlow as the reference runtime of imported frozen graphs, kept out of the product's venv.

`run_graph` runs a GraphDef in TensorFlow (PyPI tensorflow-cpu, pinned below) inside a separate venv under
$POSE_ROS_CACHE/tf-reference/, created on first use (pip; about 1.6 GB, a minute or two), and caches the outputs
by a hash of (graph, inputs, tensor names, TensorFlow version, runner script), so a test computes each reference
once per machine. Test helper only.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

import numpy as np

from pose_ros.core import assets

TENSORFLOW = "tensorflow-cpu==2.21.0"
RUNNER = Path(__file__).with_name("tf_graph_reference.py")


def reference_dir() -> Path:
    return assets.cache_dir() / "tf-reference"


def tf_python() -> Path:
    """Python of the reference venv, created (with TensorFlow) when missing. Serialised by a file lock."""
    root = reference_dir()
    root.mkdir(parents=True, exist_ok=True)
    python = root / "venv" / "bin" / "python"
    marker = root / "venv" / f".installed-{TENSORFLOW}"
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.is_file():
            print(f"creating the TensorFlow reference venv ({TENSORFLOW}) in {root / 'venv'}", file=sys.stderr)
            venv.EnvBuilder(with_pip=True, clear=True).create(root / "venv")
            env = {k: v for k, v in os.environ.items() if k != "PIP_CONSTRAINT"}  # the product's pins do not apply
            subprocess.run(
                [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", TENSORFLOW],
                check=True, env=env, timeout=1800,
            )  # fmt: skip
            marker.touch()
    return python


def _key(graph: Path, inputs: dict[str, np.ndarray], input_node: str, outputs: list[str]) -> str:
    digest = hashlib.sha256()
    for part in (TENSORFLOW, input_node, *outputs):
        digest.update(part.encode() + b"\0")
    digest.update(graph.read_bytes())
    digest.update(RUNNER.read_bytes())
    for name in sorted(inputs):
        array = np.ascontiguousarray(inputs[name], dtype=np.float32)
        digest.update(name.encode() + str(array.shape).encode() + array.tobytes())
    return digest.hexdigest()[:24]


def run_graph(graph: Path, inputs: dict[str, np.ndarray], input_node: str, outputs: list[str]) -> dict[str, list]:
    """TensorFlow's outputs of `graph` for each NHWC float32 input: {name: [array per output tensor]} (cached)."""
    cache = reference_dir() / "outputs" / f"{_key(graph, inputs, input_node, outputs)}.npz"
    if not cache.is_file():
        cache.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            inputs_path, outputs_path = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
            np.savez(inputs_path, **{k: np.asarray(v, np.float32) for k, v in inputs.items()})
            env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2")
            subprocess.run(
                [str(tf_python()), str(RUNNER), str(graph), str(inputs_path), str(outputs_path), input_node, *outputs],
                check=True, env=env, timeout=900,
            )  # fmt: skip
            os.replace(outputs_path, cache)
    stored = np.load(cache)
    return {name: [stored[f"{name}/{i}"] for i in range(len(outputs))] for name in inputs}
