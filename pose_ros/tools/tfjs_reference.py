"""Run TF.js graph models with the original runtime (npm @tensorflow/tfjs, pure-JavaScript CPU backend).

Used by tests and benchmarks to prove that pose_ros's torch import of a TF.js model (pose_ros.core.models.
tfjs_graph) computes what TF.js computes. Needs `node` on PATH and @tensorflow/tfjs in
`assets.tfjs_node_modules()` (both installed by scripts/setup.sh). Slow: ~10 s per 512×384 MoveNet frame.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pose_ros.core import assets

SCRIPT = Path(__file__).with_name("tfjs_reference.cjs")


@dataclass
class ReferenceResult:
    """Outputs of one input tensor: arrays by output name (float32 or int32 as TF.js gave them, as float64
    JSON numbers cast to float32), and the model execution time in seconds."""

    outputs: dict[str, np.ndarray]
    seconds: float


def unavailable_reason() -> str | None:
    """Why the reference runtime cannot run here (None when node and @tensorflow/tfjs are present)."""
    if shutil.which("node") is None:
        return "node is not on PATH (scripts/setup.sh installs it)"
    package = assets.tfjs_node_modules() / "@tensorflow" / "tfjs" / "package.json"
    if not package.is_file():
        return f"npm @tensorflow/tfjs is not installed: {package} is absent ({assets.SETUP_HINT})"
    return None


def run_reference(
    model_json: str | Path,
    inputs: list[np.ndarray],
    output_names: list[str] | None = None,
    timeout_s: float = 300.0,
) -> list[ReferenceResult]:
    """Run `model_json` on each input tensor (same shape and dtype, int32 or float32, NHWC) with TF.js.

    Returns one ReferenceResult per input. Raises RuntimeError with node's stderr when the run fails.
    """
    reason = unavailable_reason()
    if reason:
        raise RuntimeError(f"TF.js reference runtime unavailable: {reason}")
    shapes = {x.shape for x in inputs}
    dtypes = {x.dtype for x in inputs}
    if len(shapes) != 1 or len(dtypes) != 1 or dtypes.pop() not in (np.int32, np.float32):
        raise ValueError("inputs must share one shape and one dtype (int32 or float32)")
    with tempfile.TemporaryDirectory(prefix="tfjs_reference_") as tmp:
        files = []
        for i, x in enumerate(inputs):
            files.append(Path(tmp) / f"input{i}.raw")
            np.ascontiguousarray(x).astype(x.dtype.newbyteorder("<")).tofile(files[-1])
        out = Path(tmp) / "output.json"
        command = [
            "node",
            str(SCRIPT),
            "--model",
            str(model_json),
            "--dtype",
            str(inputs[0].dtype),
            "--shape",
            ",".join(str(n) for n in inputs[0].shape),
            "--inputs",
            ",".join(map(str, files)),
            "--output",
            str(out),
        ]
        if output_names:
            command += ["--outputs", ",".join(output_names)]
        env = {**os.environ, "NODE_PATH": str(assets.tfjs_node_modules())}
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"tfjs reference run failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
        report = json.loads(out.read_text())
    return [_result(record) for record in report["results"]]


def _result(record: dict) -> ReferenceResult:
    outputs = {
        name: np.asarray(value["data"], dtype=np.float32).reshape(value["shape"])
        for name, value in record.items()
        if name != "seconds"
    }
    return ReferenceResult(outputs=outputs, seconds=float(record["seconds"]))
