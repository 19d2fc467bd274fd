"""What the browser viewer costs pose_node: delivered FPS with the page open vs closed, in one run.

One pose_launcher process (pose_node + image_source looping a one-second clip of vtest.avi, faster than
pose_node can go, so pose_node runs flat out), one pose_viewer process, and for each page-open phase a headless
Chromium (Debian `chromium`, software WebGL) on the same machine, started for the phase and closed after it.
Phases alternate (every other round in reverse order), each `--phase-s` seconds after a settle time.

Why a clip: pose_node's speed differs between parts of vtest.avi (9 to 15 FPS over 30-frame segments in one
pass on a 2-core CPU; fewer people, faster, though content and the machine's drift were not told apart), and
windows of a whole loop (26.5 s) are long enough for a shared machine to drift by as much. A clip of
`--clip-frames` frames (6 people walking, from frame `--clip-start`) loops every second: short phases, many
rounds, the same content in every phase.

    closed       pose_viewer running, no browser on its page (it then takes only people and /diagnostics)
    as RViz      the same, plus a subscriber to markers and overlay that does nothing (pose_node's own cost of
                 building them, the same whoever listens)
    remote       the page open in a browser on another computer, by stand-in: `bench.remote_page`, a websocket
                 client that receives everything the page is sent without drawing it (the viewer takes markers
                 and overlay, pose_node builds them, the viewer sends the page its updates)
    remote-compressed  the same on a second pose_viewer with `overlay_transport: compressed` (it forwards
                 pose_node's JPEG overlay instead of taking the raw one and scaling and encoding it itself)
    open         Chromium on this machine shows the page (software WebGL: it draws on the same CPU cores)

and the first phase runs without pose_viewer at all. Per phase: pose_node's delivered FPS (PersonArrays
received by this script), the CPU time pose_launcher spends per delivered frame (pose_node's own work, less
sensitive than FPS to other load on the machine), and the CPU use (% of one core) of pose_viewer and Chromium.
The summary gives, per kind of open page, the FPS ratio to the closed page of the same round, as measured and
without the machine's drift: (pose_node's CPU share ratio) x (its time per frame with the work the page adds,
read from pose_node's /diagnostics: the publish stage and the markers and overlay CPU time).

    source scripts/env.sh && python bench/bench_viewer_cost.py                 # default config, CPU
    python bench/bench_viewer_cost.py --rounds 12 --mesh-model none --browsers remote remote-compressed
    python bench/bench_viewer_cost.py --rounds 1 --screenshot docs/images/viewer.jpg      # the README picture
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import NamedTuple

import rclpy
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import Image
from visualization_msgs.msg import MarkerArray

from pose_ros.core import assets
from pose_ros.msg import PersonArray
from pose_ros.ros.diagnostics import stage_times

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "test"))
from headless_browser import HeadlessChromium  # noqa: E402  (test helper: CDP client for Debian's chromium)

SOURCE_RATE_HZ = 30.0  # faster than pose_node goes: it runs flat out


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_clip(video: Path, start: int, count: int, folder: Path) -> Path:
    """Frames start..start+count-1 of `video` as PNG files in `folder` (an image_source folder source)."""
    import cv2

    folder.mkdir()
    capture = cv2.VideoCapture(str(video))
    capture.set(cv2.CAP_PROP_POS_FRAMES, start)
    for index in range(count):
        ok, frame = capture.read()
        if not ok:
            raise RuntimeError(f"{video} has no frame {start + index}")
        cv2.imwrite(str(folder / f"{index:04d}.png"), frame)
    capture.release()
    return folder


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime (s) of processes and all their descendants (whichever thread started them)."""
    ticks = os.sysconf("SC_CLK_TCK")
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks)  # ppid, cpu s
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, list(pids)
    while todo:
        pid = todo.pop()
        total += stats.get(pid, (0, 0.0))[1]
        todo += children.get(pid, [])
    return total


class Counter(Node):
    """Counts pose_node's PersonArrays and keeps its newest /diagnostics figures; `listen_like_rviz` subscribes to
    markers and overlay as RViz would."""

    def __init__(self) -> None:
        super().__init__("viewer_cost_counter")
        self.count = 0
        self.diagnostics: dict[str, str] = {}
        self.create_subscription(PersonArray, "people", self._on_people, 10)
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self._rviz_like: list = []

    def _on_people(self, _msg: PersonArray) -> None:
        self.count += 1

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.startswith("pose_node"):
                self.diagnostics = {kv.key: kv.value for kv in status.values}

    def listen_like_rviz(self, on: bool) -> None:
        if on and not self._rviz_like:
            qos = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.BEST_EFFORT)
            self._rviz_like = [self.create_subscription(t, n, lambda _m: None, qos, raw=True)
                               for n, t in (("markers", MarkerArray), ("overlay", Image))]
        elif not on:
            for subscription in self._rviz_like:
                self.destroy_subscription(subscription)
            self._rviz_like = []


def measure(counter: Counter, seconds: float, launcher_pid: int, pids: list[int]) -> tuple[float, float, list[float]]:
    """(people messages per second, pose_node CPU ms per message, CPU % of one core per pid) over `seconds`;
    afterwards `counter.diagnostics` holds pose_node's figures over its last 10 s."""
    start_count, start = counter.count, time.monotonic()
    start_launcher = cpu_seconds([launcher_pid])
    start_cpu = [cpu_seconds([p]) for p in pids]
    while time.monotonic() - start < seconds:
        rclpy.spin_once(counter, timeout_sec=0.1)
    elapsed, frames = time.monotonic() - start, counter.count - start_count
    ms_per_frame = 1e3 * (cpu_seconds([launcher_pid]) - start_launcher) / max(frames, 1)
    return frames / elapsed, ms_per_frame, [
        100 * (cpu_seconds([p]) - c) / elapsed for p, c in zip(pids, start_cpu, strict=True)
    ]


class Phase(NamedTuple):
    """What one phase measured."""

    name: str
    fps: float  # pose_node's delivered frames per second
    cpu_ms: float  # pose_launcher's CPU time per delivered frame
    viewer_cpu: float | None  # % of one core
    browser_cpu: float | None  # % of one core
    diagnostics: dict[str, str]  # pose_node's /diagnostics figures at the end of the phase (its last 10 s)
    listened: bool  # something subscribed to markers and overlay

    @property
    def cores(self) -> float:
        """pose_node's CPU share: the cores it got."""
        return self.fps * self.cpu_ms / 1e3

    @property
    def added_ms(self) -> float:
        """pose_node's median time (ms) per frame publishing people, plus, when markers and overlay were listened
        to, the median CPU time of building and publishing them (beside the frame path): the work a page adds.
        (Without listeners there are none: the 10 s window of the figures may still hold the previous phase's.)"""
        visuals = float(self.diagnostics.get("visuals_cpu_p50_ms", 0.0)) if self.listened else 0.0
        return float(self.diagnostics.get("stage_publish_p50_ms", "nan")) + visuals

    @property
    def stages(self) -> str:
        """pose_node's frame-path stage medians, e.g. "decode 1.5 · estimate 152.6 · … ms"."""
        times = stage_times(self.diagnostics)
        return " · ".join(f"{name} {ms:.1f}" for name, ms in times.items()) + " ms" if times else "–"


def settle(counter: Counter, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        rclpy.spin_once(counter, timeout_sec=0.1)


@contextlib.contextmanager
def remote_page(port: int, prefix: tuple[str, ...]):
    """bench.remote_page connected to the viewer on `port` (a browser on another computer) -> its process."""
    reader = subprocess.Popen([*prefix, sys.executable, "-m", "bench.remote_page", f"ws://127.0.0.1:{port}"],
                              cwd=REPO, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        yield reader
    finally:
        reader.terminate()
        received = reader.communicate(timeout=10)[0].strip()  # "remote_page: N messages, X MB"
        print(f"  {received}", flush=True)  # a stand-in that received nothing measured nothing


def save_screenshot(browser: HeadlessChromium, path: str) -> None:
    """The page as it is now (notices closed), as a JPEG for the docs."""
    import cv2

    browser.evaluate("document.querySelectorAll('.mantine-Notification-closeButton').forEach(b => b.click())")
    time.sleep(1.0)
    cv2.imwrite(path, browser.screenshot()[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(f"screenshot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phase-s", type=float, default=6.0, help="seconds measured per phase")
    parser.add_argument("--clip-start", type=int, default=600, help="first frame of vtest.avi in the looped clip")
    parser.add_argument("--clip-frames", type=int, default=30, help="frames in the clip (30: one second at 30 Hz)")
    parser.add_argument("--settle-s", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2, help="closed/open pairs after the no-viewer phase")
    parser.add_argument("--mesh-model", default="auto", help="pose_node mesh_model (auto: Anny meshes)")
    parser.add_argument("--overlay-transport", choices=("raw", "compressed", "both"),
                        help="pose_node overlay_transport (default: config/pose.yaml's)")
    parser.add_argument("--window", default="960x540", help="browser viewport WxH")
    parser.add_argument("--browser-priority", choices=("normal", "idle"), default="normal",
                        help="idle: Chromium runs under SCHED_IDLE (`chrt --idle 0`) and gets only CPU time nothing "
                             "else wants, standing in for a browser on another computer")
    parser.add_argument("--browsers", nargs="+", choices=("remote", "remote-compressed", "chromium"),
                        default=("remote", "chromium"),
                        help="page-open phases: remote (a browser on another computer, by stand-in) and/or chromium "
                             "(headless Chromium on this machine); remote-compressed: a remote page on a "
                             "second pose_viewer with overlay_transport compressed")
    parser.add_argument("--no-rviz-phase", action="store_true", help="skip the RViz-like subscriber's phase")
    parser.add_argument("--screenshot", help="save the open page at the end as this JPEG (docs/images/viewer.jpg)")
    args = parser.parse_args()
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    config = yaml.safe_load((REPO / "config" / "pose.yaml").read_text())
    port = free_port()
    node_parameters = config["/**/pose_node"]["ros__parameters"]
    node_parameters |= {"device": "cpu", "mesh_model": args.mesh_model,
                        "overlay_transport": args.overlay_transport or node_parameters["overlay_transport"]}
    config["/**/image_source"]["ros__parameters"] |= {"rate": SOURCE_RATE_HZ, "loop": True}
    config["pose_viewer"]["ros__parameters"]["port"] = port
    with tempfile.TemporaryDirectory() as tmp:
        params = Path(tmp) / "pose.yaml"
        params.write_text(yaml.safe_dump(config))
        clip = write_clip(assets.demo_data_dir() / "vtest.avi", args.clip_start, args.clip_frames, Path(tmp) / "clip")
        launcher = subprocess.Popen(["pose_launcher", "--source", str(clip), "--params-file", str(params)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        viewer = jpeg_viewer = None
        rclpy.init()
        counter = Counter()
        rows: list[Phase] = []
        try:
            settle(counter, 3.0)
            deadline = time.monotonic() + 120
            while counter.count < 5:  # models loaded, frames flowing
                if time.monotonic() > deadline or launcher.poll() is not None:
                    raise RuntimeError("pose_node produced no results within 120 s")
                settle(counter, 0.5)
            settle(counter, args.settle_s)
            fps, ms, _ = measure(counter, args.phase_s, launcher.pid, [])
            rows.append(Phase("no pose_viewer", fps, ms, None, None, counter.diagnostics, listened=False))
            viewer = subprocess.Popen(["pose_viewer", "--ros-args", "--params-file", str(params)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if "remote-compressed" in args.browsers:  # a second viewer, idle until its page opens
                jpeg_port = free_port()
                jpeg_viewer = subprocess.Popen(
                    ["pose_viewer", "--ros-args", "--params-file", str(params), "-r", "__node:=pose_viewer_compressed",
                     "-p", "overlay_transport:=compressed", "-p", f"port:={jpeg_port}"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
            width, height = (int(v) for v in args.window.split("x"))
            prefix = ("chrt", "--idle", "0") if args.browser_priority == "idle" else ()

            def closed() -> None:
                settle(counter, args.settle_s)
                fps, ms, (viewer_cpu,) = measure(counter, args.phase_s, launcher.pid, [viewer.pid])
                rows.append(Phase("pose_viewer, page closed", fps, ms, viewer_cpu, None, counter.diagnostics,
                                  listened=False))

            def as_rviz() -> None:
                counter.listen_like_rviz(True)  # what pose_node itself pays for markers + overlay (as for RViz)
                settle(counter, args.settle_s)
                fps, ms, (viewer_cpu,) = measure(counter, args.phase_s, launcher.pid, [viewer.pid])
                rows.append(Phase("page closed, markers + overlay subscribed (as RViz)", fps, ms, viewer_cpu, None,
                                  counter.diagnostics, listened=True))
                counter.listen_like_rviz(False)

            def remote(name: str, viewer_process: subprocess.Popen, viewer_port: int) -> None:
                with remote_page(viewer_port, ()) as reader:  # normal priority: its CPU counts here
                    settle(counter, args.settle_s)
                    fps, ms, (viewer_cpu, reader_cpu) = measure(counter, args.phase_s, launcher.pid,
                                                                [viewer_process.pid, reader.pid])  # fmt: skip
                rows.append(Phase(name, fps, ms, viewer_cpu, reader_cpu, counter.diagnostics, listened=True))

            def chromium(last_round: bool) -> None:
                # A browser of its own per phase, closed after it: a page navigated away from can stay in
                # Chromium's back/forward cache with its websocket open (the viewer would still count it).
                with HeadlessChromium(width, height, prefix=prefix) as browser:
                    browser.navigate(f"http://127.0.0.1:{port}/")
                    browser.wait_for("document.body && document.body.innerText.includes('pose_node running')",
                                     timeout=60)
                    settle(counter, args.settle_s)
                    fps, ms, (viewer_cpu, browser_cpu) = measure(counter, args.phase_s, launcher.pid,
                                                                 [viewer.pid, browser.process.pid])  # fmt: skip
                    rows.append(Phase("pose_viewer, page open in Chromium", fps, ms, viewer_cpu, browser_cpu,
                                      counter.diagnostics, listened=True))
                    if args.screenshot and last_round:
                        save_screenshot(browser, args.screenshot)

            for round_index in range(args.rounds):
                last_round = round_index == args.rounds - 1
                phases = [closed] if args.no_rviz_phase else [closed, as_rviz]
                if "remote" in args.browsers:
                    phases.append(partial(remote, "pose_viewer, page open in a remote browser (stand-in)", viewer,
                                          port))  # fmt: skip
                if jpeg_viewer is not None:
                    name = "pose_viewer with overlay_transport compressed, page open remotely (stand-in, compressed)"
                    phases.append(partial(remote, name, jpeg_viewer, jpeg_port))
                if "chromium" in args.browsers:
                    phases.append(partial(chromium, last_round))
                if round_index % 2:  # every other round in reverse: no phase always follows the same one
                    phases.reverse()
                for phase in phases:  # each settles after its set-up, then measures
                    phase()
        finally:
            for process in (viewer, jpeg_viewer, launcher):
                if process is not None:
                    process.terminate()
                    try:
                        process.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        process.kill()
            counter.destroy_node()
            rclpy.try_shutdown()
    print(f"pose_node: vtest.avi frames {args.clip_start}-{args.clip_start + args.clip_frames - 1} looped at "
          f"{SOURCE_RATE_HZ:.0f} Hz, device cpu, mesh_model {args.mesh_model}, "
          f"overlay_transport {node_parameters['overlay_transport']}, {args.phase_s:.1f} s per phase; "
          f"browser viewport {args.window}, browser priority {args.browser_priority}")
    print("| phase | pose_node FPS | pose_node CPU ms/frame | pose_node cores | publish + visuals ms/frame "
          "| pose_viewer CPU % | browser CPU % | pose_node stages p50 |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        cells = [f"{v:.0f}" if v is not None else "–" for v in (row.viewer_cpu, row.browser_cpu)]
        print(f"| {row.name} | {row.fps:.2f} | {row.cpu_ms:.0f} | {row.cores:.2f} | {row.added_ms:.1f} | {cells[0]} "
              f"| {cells[1]} | {row.stages} |")
    # Ratios within a round (phases a minute apart share the machine's state; a shared machine drifts 2x over
    # minutes), then the median over rounds. FPS = pose_node's CPU share (cores) / its CPU time per frame: the
    # share is steady, the time per frame drifts with the machine (the same frames took 200-400 ms on one day), so
    # the FPS ratio is also given as (share ratio) x (time-per-frame ratio from the work the page adds to
    # pose_node: publishing, and building markers and overlay, measured in pose_node), which leaves the drift out.
    closed = [r for r in rows if r.name.endswith("closed")]
    for where, suffix in (("in a remote browser", "(stand-in)"), ("remotely, viewer taking the JPEG overlay",
                           "(stand-in, compressed)"), ("in Chromium here", "Chromium"),
                          ("nowhere, markers + overlay subscribed", "(as RViz)")):  # fmt: skip
        opened = [r for r in rows if r.name.endswith(suffix)]
        if not closed or len(opened) != len(closed):
            continue
        pairs = list(zip(opened, closed, strict=True))  # one per round
        fps = [o.fps / c.fps for o, c in pairs]
        share = [o.cores / c.cores for o, c in pairs]
        work = [c.cpu_ms / (c.cpu_ms + o.added_ms - c.added_ms) for o, c in pairs]
        added = statistics.median(o.added_ms - c.added_ms for o, c in pairs)
        estimate = [a * b for a, b in zip(share, work, strict=True)]
        print(f"page open {where} / page closed, median over {len(fps)} rounds: FPS {statistics.median(fps):.3f} "
              f"({', '.join(f'{r:.2f}' for r in sorted(fps))}); without the drift: CPU share "
              f"{statistics.median(share):.3f} x time per frame {statistics.median(work):.3f} (+{added:.1f} ms of "
              f"work) = {statistics.median(estimate):.3f} ({', '.join(f'{r:.3f}' for r in sorted(estimate))})")


if __name__ == "__main__":
    main()
