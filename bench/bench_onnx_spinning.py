"""onnxruntime's intra-op threads spinning or sleeping, alone and beside busy processes (why pose_ros turns spinning
off; pose_ros/core/models/backends.py).

    source scripts/env.sh && python bench/bench_onnx_spinning.py            # MultiPose 512x384, 0 and 1 busy process

The default 2D model's ONNX file (exported by the set-up) run with as many intra-op threads as CPU cores, with
`session.intra_op.allow_spinning` 1 (onnxruntime's default) and 0, alternating, while 0..N other processes spin a
core each (what a mesh process, a browser or the rest of a robot does to pose_node). Median wall and process CPU
time per call.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pose_ros.core import assets


def session(path: Path, spinning: bool) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="movenet-multipose-1x384x512x3", help="prefix of the exported ONNX file")
    parser.add_argument("--busy", type=int, nargs="+", default=[0, 1], help="numbers of busy processes beside it")
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    found = sorted(assets.exported_models_dir().glob(f"{args.model}*.onnx"))
    if not found:
        raise SystemExit(f"no {args.model}*.onnx in {assets.exported_models_dir()}: run scripts/setup.sh first")
    sessions = {spinning: session(found[0], spinning) for spinning in (True, False)}
    spec = sessions[True].get_inputs()[0]
    image = np.random.default_rng(0).integers(0, 255, spec.shape).astype(np.int32 if "int" in spec.type else np.float32)
    print(f"{found[0].name}, {os.cpu_count()} intra-op threads, {args.rounds} rounds of {args.calls} calls")
    print("| busy processes | spinning | wall ms | CPU ms |")
    print("|---|---|---|---|")
    for busy in args.busy:
        others = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
        try:
            time.sleep(0.5)
            times: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
            for _ in range(args.rounds):
                for spinning, runner in sessions.items():
                    for _ in range(args.calls):
                        wall, cpu = time.perf_counter(), time.process_time()
                        runner.run(None, {spec.name: image})
                        times[spinning].append((time.perf_counter() - wall, time.process_time() - cpu))
            for spinning, values in times.items():
                wall_ms = 1e3 * statistics.median(v[0] for v in values)
                cpu_ms = 1e3 * statistics.median(v[1] for v in values)
                print(f"| {busy} | {'on' if spinning else 'off'} | {wall_ms:.1f} | {cpu_ms:.1f} |", flush=True)
        finally:
            for other in others:
                other.kill()


if __name__ == "__main__":
    main()
