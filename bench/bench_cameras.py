"""Several cameras in one pose_launcher process: memory, start-up time and delivered FPS per camera, in one run.

Each configuration runs in a fresh process (the embedded launcher's `start_nodes`, as `pose_launcher --cameras`),
one after the other, every camera fed vtest.avi by its own image_source faster than pose_node can go:

    1 camera             one pose pipeline
    2 cameras, shared    two pipelines, one ModelCache: one copy of each network, one mesh child process with
                         one Anny body and one fitter per camera (the product)
    2 cameras, private   two pipelines, each loading its own models and starting its own mesh child (what two
                         pose_node processes would hold, less one interpreter)

Per configuration: start-up time (start_nodes: every model loaded and warmed, every camera configured and active),
resident memory after start-up and its peak (VmHWM), both summed over the process and its mesh child processes
(a mesh child per camera when private, one shared child when shared), and per camera the frames pose_node
processed per second over `--measure-s` after `--settle-s`, and the meshes fitted per second. Absolute numbers
depend on the machine and its other load: compare the rows of one run.

    source scripts/env.sh && python bench/bench_cameras.py                 # config/pose.yaml on the CPU (Anny at 2 Hz)
    python bench/bench_cameras.py --mesh-model none --measure-s 30          # 2D only
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIGURATIONS = (("1 camera", 1, True), ("2 cameras, shared", 2, True), ("2 cameras, private", 2, False))


def memory_mb() -> tuple[float, float]:
    """(VmRSS, VmHWM) in MB of this process plus its children (the mesh child processes), summed."""
    pids, ppids = [os.getpid()], {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppids[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    for pid in pids:  # grows while walking: every descendant
        pids.extend(child for child, parent in ppids.items() if parent == pid)
    rss = peak = 0.0
    for pid in pids:
        try:
            lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, amount, _ = line.split()
                if name == "VmRSS:":
                    rss += int(amount) / 1024
                else:
                    peak += int(amount) / 1024
    return rss, peak


def worker(cameras: int, share: bool, options: argparse.Namespace) -> dict:
    """One configuration in this process; returns its figures."""
    started = time.monotonic()
    import rclpy
    import yaml

    from pose_ros.core import assets
    from pose_ros.ros.launcher import LaunchArguments, ros_arguments, start_nodes

    imported_s = time.monotonic() - started
    config = yaml.safe_load((REPO / "config" / "pose.yaml").read_text())
    config["/**/pose_node"]["ros__parameters"] |= {"device": options.device, "mesh_model": options.mesh_model}
    with tempfile.TemporaryDirectory() as tmp:
        params = Path(tmp) / "pose.yaml"
        params.write_text(yaml.safe_dump(config, sort_keys=False))
        args = LaunchArguments(
            params_file=params,
            cameras=tuple(f"cam{i}" for i in range(cameras)),
            source=str(assets.demo_data_dir() / "vtest.avi"),
            source_overrides={"rate": options.source_rate_hz, "loop": True},
            share_models=share,
        )
        rclpy.init(args=ros_arguments(args))
        loading = time.monotonic()
        nodes = start_nodes(args)
        startup_s = time.monotonic() - loading
    time.sleep(2.0)  # the mesh children finish loading (start_nodes waits for them; their warm-up settles)
    rss_started, _ = memory_mb()
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            nodes.executor.spin_once(timeout_sec=0.05)

    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()
    pose_nodes = [camera.pose_node for camera in nodes.cameras]

    def snapshot() -> list[tuple[int, int]]:
        return [
            (n.counters["frames_processed"], n.mesh_worker.stats.fits if n.mesh_worker is not None else 0)
            for n in pose_nodes
        ]

    time.sleep(options.settle_s)
    first, begin = snapshot(), time.monotonic()
    time.sleep(options.measure_s)
    last, elapsed = snapshot(), time.monotonic() - begin
    rss_end, peak = memory_mb()
    stop.set()
    spinner.join(5)
    nodes.shutdown()
    rclpy.try_shutdown()
    return {
        "imports_s": imported_s,
        "startup_s": startup_s,
        "rss_started_mb": rss_started,
        "rss_end_mb": rss_end,
        "peak_mb": peak,
        "fps": [(b[0] - a[0]) / elapsed for a, b in zip(first, last, strict=True)],
        "meshes_per_s": [(b[1] - a[1]) / elapsed for a, b in zip(first, last, strict=True)],
        "models_built": nodes.models.stats.builds if nodes.models is not None else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--mesh-model", default="auto", help="pose_node mesh_model (auto: Anny here)")
    parser.add_argument("--source-rate-hz", type=float, default=30.0, help="image_source rate per camera")
    parser.add_argument("--settle-s", type=float, default=8.0)
    parser.add_argument("--measure-s", type=float, default=20.0)
    parser.add_argument("--worker", nargs=2, metavar=("CAMERAS", "SHARE"), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker:
        result = worker(int(options.worker[0]), options.worker[1] == "1", options)
        print("RESULT " + json.dumps(result), flush=True)
        return 0
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    print(
        f"device {options.device}, mesh_model {options.mesh_model}, vtest.avi at {options.source_rate_hz:g} Hz per "
        f"camera, {options.settle_s:g} s settle + {options.measure_s:g} s measured, {os.cpu_count()} CPUs",
        flush=True,
    )
    rows = {}
    for name, cameras, share in CONFIGURATIONS:
        command = [sys.executable, __file__, "--worker", str(cameras), "1" if share else "0"]
        command += ["--device", options.device, "--mesh-model", options.mesh_model]
        command += ["--source-rate-hz", str(options.source_rate_hz)]
        command += ["--settle-s", str(options.settle_s), "--measure-s", str(options.measure_s)]
        output = subprocess.run(command, capture_output=True, text=True, timeout=900)
        lines = [line for line in output.stdout.splitlines() if line.startswith("RESULT ")]
        if output.returncode or not lines:
            print(f"{name}: failed (exit {output.returncode})\n{output.stderr[-3000:]}", file=sys.stderr)
            return 1
        rows[name] = json.loads(lines[-1][len("RESULT ") :])
        print(f"  {name}: done", flush=True)
    print()
    print("| configuration | start-up s | RSS after start-up MB | peak RSS MB | FPS per camera | meshes/s per camera |")
    print("|---|---|---|---|---|---|")
    for name, row in rows.items():
        fps = " / ".join(f"{value:.1f}" for value in row["fps"])
        meshes = " / ".join(f"{value:.2f}" for value in row["meshes_per_s"])
        print(
            f"| {name} | {row['startup_s']:.1f} | {row['rss_started_mb']:.0f} | {row['peak_mb']:.0f} | {fps} | "
            f"{meshes} |"
        )
    one, shared, private = (rows[name] for name, _, _ in CONFIGURATIONS)
    print()
    print(f"imports (same in every row): {one['imports_s']:.1f} s")
    print(
        f"second camera costs, shared: +{shared['rss_started_mb'] - one['rss_started_mb']:.0f} MB, "
        f"+{shared['startup_s'] - one['startup_s']:.1f} s start-up; "
        f"private: +{private['rss_started_mb'] - one['rss_started_mb']:.0f} MB, "
        f"+{private['startup_s'] - one['startup_s']:.1f} s"
    )
    print(
        f"ratios: RSS 2 shared / 1 = {shared['rss_started_mb'] / one['rss_started_mb']:.2f}, "
        f"2 private / 1 = {private['rss_started_mb'] / one['rss_started_mb']:.2f}; "
        f"start-up 2 shared / 1 = {shared['startup_s'] / one['startup_s']:.2f}, "
        f"2 private / 1 = {private['startup_s'] / one['startup_s']:.2f}; "
        f"FPS per camera 2 shared / 1 = {sum(shared['fps']) / 2 / one['fps'][0]:.2f}, "
        f"total 2 shared / 1 = {sum(shared['fps']) / one['fps'][0]:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
