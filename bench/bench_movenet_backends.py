"""MoveNet MultiPose time per frame: torch vs onnxruntime vs the TF.js reference runtime, in one run.

    source scripts/env.sh && python bench/bench_movenet_backends.py [--runs 20] [--tfjs-runs 2] [--device cpu]

For each input size (512×384, 256×192) every backend runs the model on the same real vtest.avi frames
(preprocessed once); the table shows the median milliseconds of the model call (input tensor in, raw
(1, 6, 56) out, including host<->device copies) and of the whole estimator call (letterbox + model +
decoding). TF.js is the pure-JavaScript CPU backend under node (its own timer around `executeAsync`),
run on fewer frames because it takes seconds per frame.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench.fixtures when run as bench/x.py
from bench.fixtures import tfjs_reference
from pose_ros.core import assets
from pose_ros.core.estimators.movenet import MoveNetMultiPose, MoveNetMultiPoseSettings
from pose_ros.core.sources import read_video_frames

SIZES = ((512, 384), (256, 192))


def read_frames(path: Path, count: int, start: int = 100) -> list[np.ndarray]:
    """`count` consecutive RGB frames of a video starting at frame `start`."""
    return read_video_frames(path, range(start, start + count))


def median_ms(function, arguments: list, runs: int) -> float:
    """Median wall time in ms of `function(argument)` over `runs` calls cycling through `arguments`
    (after one warm-up call)."""
    function(arguments[0])
    times = []
    for i in range(runs):
        start = time.perf_counter()
        function(arguments[i % len(arguments)])
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def bench_size(width: int, height: int, frames: list[np.ndarray], args: argparse.Namespace) -> list[tuple]:
    rows = []
    inputs = None
    for backend in ("torch", "onnxruntime"):
        settings = MoveNetMultiPoseSettings(
            input_width=width, input_height=height, device=args.device, backend=backend, fallback_to_torch=False
        )
        estimator = MoveNetMultiPose(settings)
        inputs = inputs or [estimator.preprocess(frame)[0] for frame in frames]
        model = median_ms(estimator.run_model, inputs, args.runs)
        full = median_ms(estimator, frames, args.runs)
        rows.append((f"{width}×{height}", backend, str(estimator.device), model, full, args.runs))
    reason = tfjs_reference.unavailable_reason()
    if reason or args.tfjs_runs == 0:
        rows.append((f"{width}×{height}", "tfjs (cpu, JS)", "cpu", float("nan"), float("nan"), 0))
        return rows
    model_json = assets.human_models_dir() / "movenet-multipose.json"
    results = tfjs_reference.run_reference(model_json, inputs[: args.tfjs_runs])
    seconds = statistics.median(r.seconds for r in results)
    rows.append((f"{width}×{height}", "tfjs (cpu, JS)", "cpu", 1000 * seconds, float("nan"), len(results)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="timed calls per backend and size")
    parser.add_argument("--tfjs-runs", type=int, default=2, help="frames for TF.js (0: skip; ~10 s each at 512×384)")
    parser.add_argument("--device", default="cpu", help="torch device for both backends: cpu, cuda, auto")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    frames = read_frames(assets.require_file(assets.demo_data_dir() / "vtest.avi", "demo video"), max(args.runs, 4))
    rows = [row for width, height in SIZES for row in bench_size(width, height, frames, args)]
    print(f"MoveNet MultiPose, vtest.avi frames, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| input | backend | device | model ms (median) | estimator ms (median) | runs |")
    print("|---|---|---|---:|---:|---:|")
    for size, backend, device, model, full, runs in rows:
        full_text = "—" if np.isnan(full) else f"{full:.1f}"
        model_text = "—" if np.isnan(model) else f"{model:.1f}"
        print(f"| {size} | {backend} | {device} | {model_text} | {full_text} | {runs} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
