"""Cost per frame of compressed camera input and output: decoding a CompressedImage vs converting a raw Image.

    source scripts/env.sh && python bench/bench_compressed_decode.py [--frames 20] [--runs 200] [--threads 1]

Real vtest.avi frames (768×576) are encoded once as the camera side would (JPEG at quality 95 and 80 with
OpenCV, as image_transport's compressed plugin does; PNG level 3), then the node-side conversions run on the
same messages, interleaved round-robin so that machine load affects every row alike: raw bgr8 → RGB
(`to_rgb8`), JPEG/PNG → RGB (`compressed_to_rgb8`), and the overlay encoding (`rgb8_to_compressed`, JPEG q90).
Prints the median CPU time per frame of the converting thread (`time.thread_time`: robust on a shared machine),
its ratio to the raw conversion, the median wall time, and the message sizes.
"""

from __future__ import annotations

import argparse
import array
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sensor_msgs.msg import CompressedImage

from pose_ros.core import assets
from pose_ros.core.sources import read_video_frames
from pose_ros.ros.image_conversion import array_to_image, compressed_to_rgb8, rgb8_to_compressed, to_rgb8


def encoded(rgb: np.ndarray, extension: str, params: list[int], format_field: str) -> CompressedImage:
    ok, data = cv2.imencode(extension, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    assert ok
    return CompressedImage(format=format_field, data=array.array("B", data.tobytes()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=20, help="consecutive vtest.avi frames used")
    parser.add_argument("--runs", type=int, default=200, help="timed calls per row")
    parser.add_argument("--threads", type=int, default=1, help="OpenCV threads (cv2.setNumThreads)")
    args = parser.parse_args(argv)
    cv2.setNumThreads(args.threads)
    frames = read_video_frames(assets.demo_data_dir() / "vtest.avi", range(100, 100 + args.frames))
    raw = [array_to_image(np.ascontiguousarray(f[:, :, ::-1]), "bgr8") for f in frames]
    jpeg95 = [encoded(f, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 95], "bgr8; jpeg compressed bgr8") for f in frames]
    jpeg80 = [encoded(f, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 80], "bgr8; jpeg compressed bgr8") for f in frames]
    png = [encoded(f, ".png", [cv2.IMWRITE_PNG_COMPRESSION, 3], "bgr8; png compressed bgr8") for f in frames]
    def size(messages: list) -> float:
        return statistics.mean(len(m.data) for m in messages)

    rows = {
        "raw bgr8 → RGB (to_rgb8)": (to_rgb8, raw, size(raw)),
        "JPEG q95 → RGB (compressed_to_rgb8)": (compressed_to_rgb8, jpeg95, size(jpeg95)),
        "JPEG q80 → RGB (compressed_to_rgb8)": (compressed_to_rgb8, jpeg80, size(jpeg80)),
        "PNG → RGB (compressed_to_rgb8)": (compressed_to_rgb8, png, size(png)),
        "overlay RGB → JPEG q90 (rgb8_to_compressed)": (lambda f: rgb8_to_compressed(f, None, "jpeg", 90), frames, 0),
    }
    times: dict[str, list[float]] = {name: [] for name in rows}
    cpu_times: dict[str, list[float]] = {name: [] for name in rows}
    for function, inputs, _ in rows.values():
        function(inputs[0])  # warm-up
    for run in range(args.runs):
        for name, (function, inputs, _) in rows.items():
            item = inputs[run % len(inputs)]
            start, cpu_start = time.perf_counter(), time.thread_time()
            function(item)
            times[name].append((time.perf_counter() - start) * 1e3)
            cpu_times[name].append((time.thread_time() - cpu_start) * 1e3)
    height, width = frames[0].shape[:2]
    base = statistics.median(cpu_times["raw bgr8 → RGB (to_rgb8)"])
    print(f"{width}x{height} vtest.avi frames, {args.runs} runs per row, OpenCV threads {args.threads}")
    print("| conversion | median CPU ms/frame | × raw | median wall ms | message kB |")
    print("|---|---|---|---|---|")
    for name, (_, _, kilobytes) in rows.items():
        cpu = statistics.median(cpu_times[name])
        size_text = f"{kilobytes / 1024:.0f}" if kilobytes else "—"
        print(f"| {name} | {cpu:.2f} | {cpu / base:.1f} | {statistics.median(times[name]):.2f} | {size_text} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
