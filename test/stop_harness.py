"""Stop a pose_ros process with signals the way ROS 2 tools do, and measure how it ends.

Used by test/test_shutdown.py (CI cases) and bench/stop_matrix.py (every process × state × signal).
Each run gets its own ROS_DOMAIN_ID; a listener in a private rclpy context on that domain counts the
process's `people` messages (so a run can wait until frames flow) and notes when each one arrived.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import rclpy
import yaml
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import Image

from pose_ros.msg import PersonArray

REPO = Path(__file__).resolve().parents[1]
CONFIG_FILE = REPO / "config" / "pose.yaml"
# The signals of the matrix: ros2 launch sends SIGINT (to the whole process group on Ctrl-C: two SIGINTs a few
# ms apart, one from the terminal, one from launch), then SIGTERM; docker and systemd send SIGTERM.
SIGNALS = {"SIGINT": (signal.SIGINT,), "SIGTERM": (signal.SIGTERM,), "2xSIGINT": (signal.SIGINT, signal.SIGINT)}
DOUBLE_SIGNAL_GAP_S = 0.005
FAILURE_MARKERS = (
    "Traceback", "terminate called", "RCLError", "ExternalShutdownException", "core dumped", "was never awaited"
)


def run_module(module: str) -> list[str]:
    """The command running `module`'s main() from this checkout (not the install space: no rebuild needed)."""
    return [sys.executable, "-c", f"import sys; from {module} import main; sys.exit(main())"]


def pose_node_command(*extra: str, mesh: bool = False) -> list[str]:
    """pose_node on the CPU, reliable image QoS; without the mesh stage (quick start) unless `mesh` (default
    mesh model: Anny fitted to the keypoints on the mesh worker thread)."""
    meshes = [] if mesh else ["-p", "mesh_model:=none"]
    return [*run_module("pose_ros.ros.pose_node"), "--ros-args", "-p", "device:=cpu", *meshes,
            "-p", "image_reliability:=reliable", *extra]


def image_source_command(source: Path, *extra: str) -> list[str]:
    return [*run_module("pose_ros.ros.image_source"), "--ros-args", "-p", f"source:={source}", "-p", "rate:=10.0",
            *extra]


def quick_params_file(directory: Path) -> Path:
    """config/pose.yaml with pose_node on the CPU without the mesh stage (what the launcher and demo read)."""
    config = yaml.safe_load(CONFIG_FILE.read_text())
    config["/**/pose_node"]["ros__parameters"].update(device="cpu", mesh_model="none")
    path = directory / "pose_quick.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def launcher_command(params_file: Path, source: Path | None) -> list[str]:
    extra = ["--source", str(source)] if source is not None else []
    return [*run_module("pose_ros.ros.launcher"), "--params-file", str(params_file), *extra]


def demo_command(params_file: Path, output_dir: Path, frames: int = 0) -> list[str]:
    return ["bash", str(REPO / "scripts" / "demo.sh"), "--frames", str(frames), "--device", "cpu",
            "--params-file", str(params_file), "--output-dir", str(output_dir)]


class Listener(Node):
    """Counts `people` messages (and `image` messages when asked) with their arrival times."""

    def __init__(self, context: Context, listen_images: bool) -> None:
        super().__init__("stop_listener", context=context)
        self.arrivals: dict[str, list[float]] = {"people": [], "image": []}
        qos = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE)
        self.create_subscription(PersonArray, "people", lambda _: self.arrivals["people"].append(time.monotonic()),
                                 qos)
        if listen_images:
            self.create_subscription(Image, "image", lambda _: self.arrivals["image"].append(time.monotonic()), qos)


@dataclass
class StopResult:
    """How one process ended after the signal(s)."""

    name: str
    signal_name: str
    returncode: int | None  # None: still running at the deadline (then killed)
    stop_s: float  # first signal -> process exit
    messages_before: int  # outputs received before the first signal (frames flowing when > 0)
    last_output_after_signal_ms: float | None  # arrival of the last output relative to the first signal
    output: str = field(repr=False)

    @property
    def failures(self) -> list[str]:
        return [marker for marker in FAILURE_MARKERS if marker in self.output]

    @property
    def clean(self) -> bool:
        return self.returncode == 0 and not self.failures


def stop_run(
    name: str,
    command: list[str],
    signal_name: str,
    domain_id: int,
    flowing: str | None = "people",
    ready_pattern: str | None = None,
    start_timeout_s: float = 120.0,
    deadline_s: float = 10.0,
    settle_s: float = 1.0,
    feeder: list[str] | None = None,
) -> StopResult:
    """Start `command` on `domain_id`, wait until it is ready, signal it, and wait up to `deadline_s` for the exit.

    `feeder` (e.g. an image_source command) runs beside it on the same domain and is stopped afterwards.
    Ready: `flowing` ("people" or "image") messages arrive, or (flowing None: the idle case) `ready_pattern`
    appears in its output; then `settle_s` more. Output (stdout + stderr) is collected in a temporary file.
    """
    context = Context()
    rclpy.init(context=context, domain_id=domain_id)
    listener = Listener(context, listen_images=flowing == "image")
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(listener)
    running = True

    def spin() -> None:
        while running and context.ok():
            executor.spin_once(timeout_sec=0.05)

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
               OMP_WAIT_POLICY="PASSIVE", PYTHONUNBUFFERED="1")
    with tempfile.TemporaryFile("w+") as log:
        feeding = (subprocess.Popen(feeder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=REPO,
                                    start_new_session=True) if feeder else None)
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO,
                                   start_new_session=True)
        try:
            _wait_until_ready(process, listener, log, flowing, ready_pattern, start_timeout_s)
            time.sleep(settle_s)
            before = len(listener.arrivals[flowing or "people"])
            signals = SIGNALS[signal_name]
            signalled_at = time.monotonic()
            for index, signum in enumerate(signals):
                if index:
                    time.sleep(DOUBLE_SIGNAL_GAP_S)
                process.send_signal(signum)
            try:
                returncode = process.wait(timeout=deadline_s)
            except subprocess.TimeoutExpired:
                returncode = None
            stop_s = time.monotonic() - signalled_at
        finally:
            for child in (process, feeding):
                if child is not None and child.poll() is None:
                    os.killpg(child.pid, signal.SIGKILL)
                    child.wait()
            running = False
            thread.join(timeout=5)
            executor.shutdown()
            listener.destroy_node()
            rclpy.try_shutdown(context=context)
        log.seek(0)
        output = log.read()
    arrivals = listener.arrivals[flowing or "people"]
    last = (arrivals[-1] - signalled_at) * 1000.0 if arrivals else None
    return StopResult(name, signal_name, returncode, stop_s, before, last, output)


def _wait_until_ready(process, listener: Listener, log, flowing: str | None, pattern: str | None,
                      timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"exited early with {process.returncode}:\n{log.read()[-3000:]}")
        if flowing is not None and len(listener.arrivals[flowing]) >= 3:
            return
        if flowing is None and pattern is not None:
            log.seek(0)
            if pattern in log.read():
                return
        time.sleep(0.1)
    log.seek(0)
    raise TimeoutError(f"not ready within {timeout_s} s:\n{log.read()[-3000:]}")
