"""pose_node's executor: rclpy's MultiThreadedExecutor against pose_ros.ros.executor.SpinSafeExecutor, in one run.

    source scripts/env.sh && python -m bench.bench_executor_spin                  # 10 and 30 Hz, ~4 minutes
    python -m bench.bench_executor_spin --rates 10 --rounds 2 --windows 4

Per input rate and round, pose_launcher on vtest.avi (default parameters file, `device: cpu`, `mesh_model: none`,
image_source `rate` set) runs once with each executor, alternating (machine drift cancels). This process counts
/people and reads the launcher's CPU time from /proc over `--windows` windows of `--window-s` seconds after a
warm-up. Printed per run: delivered FPS (mean, min-max over the windows), the launcher's CPU ms per delivered
frame, and its spin thread's share of a core (the thread that waits for work and hands it to workers).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 100)))

import rclpy
import yaml

from bench.bench_viewer_cost import Counter, measure, settle
from pose_ros.core import assets

REPO = Path(__file__).resolve().parents[1]
EXECUTORS = ("rclpy MultiThreadedExecutor", "SpinSafeExecutor (pose_ros)")


def child(executor: str, argv: list[str]) -> int:
    """Run pose_launcher in this process with `executor` ("rclpy" or "pose_ros") as pose_node's executor."""
    from rclpy.executors import MultiThreadedExecutor

    from pose_ros.ros import launcher, pose_node

    if executor == "rclpy":
        def rclpy_executor(context=None):
            return MultiThreadedExecutor(num_threads=pose_node.EXECUTOR_THREADS, context=context)

        launcher.node_executor = rclpy_executor
    return launcher.main(argv)


def main_thread_seconds(pid: int) -> float:
    """CPU seconds of a process's main thread (the launcher spins its executor there)."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(executor: str, params: Path, counter: Counter, warmup_s: float, windows: int, window_s: float) -> dict:
    video = assets.demo_data_dir() / "vtest.avi"
    command = [sys.executable, "-m", "bench.bench_executor_spin", "--child", executor, "--",
               "--source", str(video), "--params-file", str(params)]  # fmt: skip
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        start_count, deadline = counter.count, time.monotonic() + 120
        while counter.count - start_count < 5:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"pose_launcher ({executor}) produced no results within 120 s")
            settle(counter, 0.5)
        settle(counter, warmup_s)
        spin_start, wall_start = main_thread_seconds(process.pid), time.monotonic()
        results = [measure(counter, window_s, process.pid, []) for _ in range(windows)]
        spin_share = (main_thread_seconds(process.pid) - spin_start) / (time.monotonic() - wall_start)
    finally:
        process.terminate()
        process.wait(timeout=20)
    fps = [r[0] for r in results]
    return {"fps": statistics.mean(fps), "fps_min": min(fps), "fps_max": max(fps),
            "ms_per_frame": statistics.mean(r[1] for r in results), "spin_share": spin_share}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[10.0, 30.0], help="image_source rates (Hz)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--windows", type=int, default=4)
    parser.add_argument("--window-s", type=float, default=6.0)
    parser.add_argument("--warmup-s", type=float, default=5.0)
    args = parser.parse_args()
    config = yaml.safe_load((REPO / "config" / "pose.yaml").read_text())
    config["/**/pose_node"]["ros__parameters"] |= {"device": "cpu", "mesh_model": "none"}
    rclpy.init()
    counter = Counter()
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for rate in args.rates:
                config["/**/image_source"]["ros__parameters"] |= {"rate": rate, "loop": True}
                params = Path(tmp) / f"pose_{rate:g}.yaml"
                params.write_text(yaml.safe_dump(config))
                for round_index in range(args.rounds):
                    for name, executor in zip(EXECUTORS, ("rclpy", "pose_ros"), strict=True):
                        result = run(executor, params, counter, args.warmup_s, args.windows, args.window_s)
                        rows.append((rate, round_index, name, result))
                        print(f"{rate:g} Hz, round {round_index + 1}, {name}: {result['fps']:.2f} FPS", flush=True)
    finally:
        counter.destroy_node()
        rclpy.try_shutdown()
    print(f"\npose_launcher on vtest.avi, default parameters, device cpu, mesh_model none; {args.windows} windows of "
          f"{args.window_s:g} s per run")
    print("| input | executor | round | FPS mean (min-max) | launcher CPU ms/frame | spin thread, % of a core |")
    print("|---|---|---|---|---|---|")
    for rate, round_index, name, r in rows:
        print(f"| {rate:g} Hz | {name} | {round_index + 1} | {r['fps']:.2f} ({r['fps_min']:.1f}-{r['fps_max']:.1f}) "
              f"| {r['ms_per_frame']:.0f} | {100 * r['spin_share']:.0f} |")
    for rate in args.rates:
        fps = {name: statistics.mean(r["fps"] for rt, _, n, r in rows if (rt, n) == (rate, name)) for name in EXECUTORS}
        print(f"{rate:g} Hz: SpinSafeExecutor / rclpy FPS = {fps[EXECUTORS[1]] / fps[EXECUTORS[0]]:.2f}")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        sys.exit(child(sys.argv[2], sys.argv[4:]))
    main()
