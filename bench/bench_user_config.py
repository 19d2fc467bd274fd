"""What users run, measured: the embedded launcher with default parameters on vtest.avi, open loop.

    source scripts/env.sh && python bench/bench_user_config.py            # 10 Hz and 30 Hz, ~5 minutes
    python bench/bench_user_config.py --rates 10 --seconds 40             # the README's headline row only

Per input rate, two runs of `pose_launcher --source vtest.avi --device cpu` (same nodes, parameters file and
arguments as `ros2 launch pose_ros pose.launch.py`; only image_source's `rate` is set): the default configuration
(meshes on: Anny fitted beside the 2D path) and `mesh_model: none`. The launcher runs in its own process; this
process subscribes to /people, /markers (taken serialized, decoded into arrays as RViz's C++ does) and
/overlay (as RViz and an image viewer would) and measures, after a
warm-up, over a fixed window:
  FPS                delivered /people messages per second
  latency            receipt time - image header stamp (image_source stamps frames when it publishes them)
  mesh updates/s     per tracked person: distinct body_model stamps seen per second of the person being in view
  mesh age           header stamp - body_model stamp, over every published person with a mesh
  meshed             share of published tracked people that carry a mesh
  query p50/p99      `get_parameters`, `describe_parameters` and lifecycle `get_state` round trips, 5 per second
                     (default configuration runs only)
and before the runs, in this process, the 2D model alone (PosePipeline on the same frames, median ms per frame).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 100)))

import numpy as np
import rclpy
from rclpy.context import Context
from rclpy.node import Node
from rclpy.qos import QoSProfile, QoSReliabilityPolicy

from pose_ros.ros.executor import SpinSafeExecutor

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from pose_ros.core import assets  # noqa: E402
from pose_ros.ros.marker_wire import decode_marker_array  # noqa: E402

NS = 1_000_000_000
QUERY_PERIOD_S = 0.2


def child(rate_hz: float, params_file: str, seconds: float) -> None:
    """The launcher, as `pose_launcher --source vtest.avi --device cpu` runs it, at `rate_hz`, until a line on
    stdin (or `seconds`); then prints its counters as one `CHILD {json}` line."""
    import select

    from pose_ros.ros.launcher import LaunchArguments, ros_arguments, start_nodes

    args = LaunchArguments(
        Path(params_file), device="cpu", source=str(assets.demo_data_dir() / "vtest.avi"),
        source_overrides={"rate": rate_hz, "loop": True},
    )  # fmt: skip
    rclpy.init(args=ros_arguments(args))
    nodes = start_nodes(args)
    end = time.monotonic() + seconds
    while time.monotonic() < end and not select.select([sys.stdin], [], [], 0)[0]:
        nodes.executor.spin_once(timeout_sec=0.1)
    worker = nodes.pose_node.mesh_worker
    stats = worker.stats if worker is not None else None
    print(
        "CHILD " + json.dumps({
            "counters": dict(nodes.pose_node.counters),
            "mesh_fits": stats.fits if stats else 0,
            "mesh_fit_s_mean": stats.fit_s_total / max(stats.fits, 1) if stats else 0.0,
            "mesh_people_fitted": stats.people_fitted if stats else 0,
        }),
        flush=True,
    )  # fmt: skip
    os._exit(0)  # the measurement is done; skip the slow teardown


class Subscriber(Node):
    """RViz-like consumer: people, markers and overlay; records what each PersonArray says and when it came."""

    def __init__(self, context: Context) -> None:
        super().__init__("bench_user_config", context=context)
        from sensor_msgs.msg import Image
        from visualization_msgs.msg import MarkerArray

        from pose_ros.msg import PersonArray

        qos = QoSProfile(depth=5, reliability=QoSReliabilityPolicy.RELIABLE)
        self.people: list[tuple[int, int, list[tuple[int, bool, int]]]] = []  # (received ns, stamp ns, persons)
        self.counts: dict[str, int] = defaultdict(int)
        self.create_subscription(PersonArray, "/people", self._on_people, qos)
        # markers taken serialized and decoded into arrays (what a C++ subscriber such as RViz pays); rclpy's own
        # deserialization would charge ~75 ms of Python objects per frame with meshes to these 2 shared cores
        self.create_subscription(MarkerArray, "/markers", self._on_markers, qos, raw=True)
        self.create_subscription(Image, "/overlay", lambda m: self._count("overlay"), qos)

    def _count(self, topic: str) -> None:
        self.counts[topic] += 1

    def _on_markers(self, data: bytes) -> None:
        decode_marker_array(data)
        self._count("markers")

    def _on_people(self, msg) -> None:
        received = self.get_clock().now().nanoseconds
        stamp = msg.header.stamp.sec * NS + msg.header.stamp.nanosec
        persons = [
            (p.id, p.tracked, p.body_model.stamp.sec * NS + p.body_model.stamp.nanosec if p.body_model.name else -1)
            for p in msg.people
        ]
        self.people.append((received, stamp, persons))


def query_latencies(node: Node, stop: threading.Event, out: list[float]) -> None:
    """Round trips of parameter get/describe and lifecycle get_state, every QUERY_PERIOD_S, until `stop`."""
    from lifecycle_msgs.srv import GetState
    from rcl_interfaces.srv import DescribeParameters, GetParameters

    clients = [
        (node.create_client(GetParameters, "/pose_node/get_parameters"), GetParameters.Request(names=["mode"])),
        (
            node.create_client(DescribeParameters, "/pose_node/describe_parameters"),
            DescribeParameters.Request(names=["mesh_rate_hz"]),
        ),
        (node.create_client(GetState, "/pose_node/get_state"), GetState.Request()),
    ]
    for client, _ in clients:
        client.wait_for_service(timeout_sec=30)
    index = 0
    while not stop.is_set():
        client, request = clients[index % len(clients)]
        index += 1
        started = time.monotonic()
        future = client.call_async(request)
        while not future.done() and time.monotonic() - started < 30:
            time.sleep(0.001)
        out.append(time.monotonic() - started)
        stop.wait(QUERY_PERIOD_S)


def summarise(records, start_ns: int, end_ns: int) -> dict[str, float]:
    window = [r for r in records if start_ns <= r[0] < end_ns]
    seconds = (end_ns - start_ns) / NS
    latency = np.array([(received - stamp) / 1e6 for received, stamp, _ in window]) if window else np.zeros(1)
    seen: dict[int, list[int]] = defaultdict(list)  # track id → stamps of frames it was published in
    fits: dict[int, set[int]] = defaultdict(set)  # track id → distinct mesh stamps
    ages, tracked, meshed = [], 0, 0
    for _, stamp, persons in window:
        for pid, is_tracked, mesh_stamp in persons:
            if not is_tracked:
                continue
            tracked += 1
            seen[pid].append(stamp)
            if mesh_stamp >= 0:
                meshed += 1
                fits[pid].add(mesh_stamp)
                ages.append((stamp - mesh_stamp) / NS)
    in_view_s = sum((max(s) - min(s)) / NS + 1e-9 for s in seen.values() if len(s) > 1)
    new_fits = sum(len({f for f in fits[pid] if f >= min(seen[pid])}) for pid in fits)  # fitted while in window
    return {
        "fps": len(window) / seconds,
        "latency_p50_ms": float(np.percentile(latency, 50)),
        "latency_p99_ms": float(np.percentile(latency, 99)),
        "people_per_frame": tracked / max(len(window), 1),
        "mesh_updates_per_person_s": new_fits / in_view_s if in_view_s else 0.0,
        "mesh_age_p50_s": float(np.percentile(ages, 50)) if ages else float("nan"),
        "meshed_share": meshed / max(tracked, 1),
    }


def run(rate_hz: float, params_file: Path, warmup_s: float, seconds: float, queries: bool) -> dict[str, float]:
    context = Context()
    rclpy.init(context=context)
    executor = SpinSafeExecutor(num_threads=2, context=context)
    subscriber = Subscriber(context)
    executor.add_node(subscriber)
    spinning = threading.Thread(target=executor.spin, daemon=True)
    spinning.start()
    command = [sys.executable, __file__, "--child", str(rate_hz), str(params_file), str(warmup_s + seconds + 300)]
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    deadline = time.monotonic() + 120
    while not subscriber.people and time.monotonic() < deadline:
        time.sleep(0.1)
    if not subscriber.people:
        raise RuntimeError("no /people within 120 s")
    time.sleep(warmup_s)
    latencies: list[float] = []
    stop = threading.Event()
    asker = threading.Thread(target=query_latencies, args=(subscriber, stop, latencies), daemon=True)
    if queries:
        asker.start()
    start_ns = subscriber.get_clock().now().nanoseconds
    time.sleep(seconds)
    end_ns = subscriber.get_clock().now().nanoseconds
    stop.set()
    if queries:
        asker.join(timeout=35)
    result = summarise(list(subscriber.people), start_ns, end_ns)
    result["markers_fps"] = subscriber.counts["markers"] / max(seconds + warmup_s, 1e-9)
    if latencies:
        result["query_p50_s"] = float(np.percentile(latencies, 50))
        result["query_p99_s"] = float(np.percentile(latencies, 99))
        result["queries"] = len(latencies)
    output, _ = process.communicate("stop\n", timeout=120)
    for line in output.splitlines():
        if line.startswith("CHILD "):
            result |= {f"node_{k}": v for k, v in json.loads(line[6:]).items() if k != "counters"}
    executor.shutdown()
    subscriber.destroy_node()
    rclpy.try_shutdown(context=context)
    return result


def mean_result(results: list[dict[str, float]]) -> dict[str, float]:
    """Per-key mean of the numeric figures of several runs of one configuration."""
    keys = set.intersection(*(set(r) for r in results))
    return {k: float(np.mean([r[k] for r in results])) for k in keys if isinstance(results[0][k], (int, float))}


def model_alone_ms(frames: int = 30) -> float:
    """Median wall time of the default 2D model on vtest.avi frames, in this process (no ROS)."""
    from pose_ros.core.pipeline import PipelineConfig, PosePipeline
    from pose_ros.core.sources import read_video_frames

    images = read_video_frames(assets.demo_data_dir() / "vtest.avi", range(100, 100 + frames))
    pipeline, config = PosePipeline(), PipelineConfig(device="cpu")
    pipeline(config, images[0])
    times = []
    for image in images:
        started = time.perf_counter()
        pipeline(config, image)
        times.append((time.perf_counter() - started) * 1e3)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[10.0, 30.0])
    parser.add_argument("--seconds", type=float, default=40.0, help="measurement window per run")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds after the first /people before it")
    parser.add_argument("--rounds", type=int, default=1,
                        help="runs per configuration, alternating (none, default, default, none, ...); means")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(float(args.child[0]), args.child[1], float(args.child[2]))
        return
    from pose_ros.ros.launcher import default_params_file

    defaults = default_params_file()
    no_mesh = Path(tempfile.mkdtemp(prefix="bench_user_config_")) / "pose_no_mesh.yaml"
    text = defaults.read_text()
    assert "mesh_model: auto" in text, "config/pose.yaml's mesh_model line changed"
    no_mesh.write_text(text.replace("mesh_model: auto", "mesh_model: none"))
    alone = model_alone_ms()
    print(
        f"pose_launcher --source vtest.avi --device cpu, {os.cpu_count()} CPU threads; subscribers on people, "
        f"markers, overlay; {args.warmup:.0f} s warm-up, {args.seconds:.0f} s window, {args.rounds} run(s) per "
        f"configuration. 2D model alone: {alone:.0f} ms"
    )
    print("| input Hz | meshes | FPS | vs no-mesh | latency p50 ms | p99 ms | people/frame | mesh updates/s/person "
          "| mesh age p50 s | meshed | query p50/p99 s | fits | fit s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    for rate in args.rates:
        runs: dict[str, list[dict[str, float]]] = {"none": [], "full": []}
        for round_index in range(args.rounds):  # none, full, then full, none, ...: drifts of the machine cancel
            order = ("none", "full") if round_index % 2 == 0 else ("full", "none")
            for name in order:
                params, queries = (no_mesh, False) if name == "none" else (defaults, True)
                runs[name].append(run(rate, params, args.warmup, args.seconds, queries=queries))
        base, full = mean_result(runs["none"]), mean_result(runs["full"])
        for name, r in (("default (anny_fit)", full), ("none", base)):
            ratio = r["fps"] / base["fps"] if base["fps"] else float("nan")
            query = f"{r['query_p50_s']:.3f} / {r['query_p99_s']:.3f}" if "query_p50_s" in r else "-"
            mesh = (
                f"{r['mesh_updates_per_person_s']:.2f} | {r['mesh_age_p50_s']:.2f} | {r['meshed_share']:.0%}"
                if name != "none" else "- | - | -"
            )  # fmt: skip
            print(
                f"| {rate:.0f} | {name} | {r['fps']:.2f} | {ratio:.0%} | {r['latency_p50_ms']:.0f} "
                f"| {r['latency_p99_ms']:.0f} | {r['people_per_frame']:.1f} | {mesh} | {query} "
                f"| {r.get('node_mesh_fits', 0):.0f} | {r.get('node_mesh_fit_s_mean', 0):.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
