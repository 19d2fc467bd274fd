"""How each pose_ros process stops: pose_node, image_source, pose_launcher and the demo, idle and with frames
flowing, on SIGINT, SIGTERM and two SIGINTs 5 ms apart (what Ctrl-C on `ros2 launch` delivers).

    source scripts/env.sh && python bench/stop_matrix.py                  # the whole matrix (~5 min)
    python bench/stop_matrix.py --only pose_node --signals SIGINT --repeat 3

Per case: exit code, stop time (first signal -> exit), failure markers found in the output (Traceback,
`terminate called`, RCLError, ExternalShutdownException), and when the last output message arrived relative
to the first signal. Pose nodes run on the CPU without the mesh stage (start-up in seconds) except in the
"Anny meshes" case (the default mesh model, fitted on pose_node's mesh worker thread); frames come from
vtest.avi at 10 Hz. Prints a Markdown table (docs/robot.md keeps the results).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test"))

from stop_harness import (
    SIGNALS,
    demo_command,
    image_source_command,
    launcher_command,
    pose_node_command,
    quick_params_file,
    stop_run,
)

from pose_ros.core import assets

PROCESSES = ("pose_node", "image_source", "pose_launcher", "demo")


def cases(video: Path, params_file: Path, output_dir: Path):
    """(process, state, command, run options) for every case of the matrix."""
    yield "pose_node", "idle", pose_node_command(), dict(flowing=None, ready_pattern="subscribed to")
    yield "pose_node", "frames flowing", pose_node_command(), dict(feeder=image_source_command(video))
    yield "pose_node", "frames flowing, Anny meshes", pose_node_command(mesh=True), dict(
        feeder=image_source_command(video))
    yield "image_source", "idle (no subscriber)", image_source_command(video), dict(
        flowing=None, ready_pattern="publishing")
    yield "image_source", "frames flowing", image_source_command(video), dict(flowing="image")
    yield "pose_launcher", "idle (no source)", launcher_command(params_file, None), dict(
        flowing=None, ready_pattern="subscribed to")
    yield "pose_launcher", "frames flowing", launcher_command(params_file, video), dict()
    yield "demo", "starting (model loading)", demo_command(params_file, output_dir), dict(
        flowing=None, ready_pattern="starting pose_node", settle_s=0.5)
    yield "demo", "frames flowing", demo_command(params_file, output_dir), dict()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", choices=PROCESSES, default=list(PROCESSES))
    parser.add_argument("--signals", nargs="*", choices=tuple(SIGNALS), default=list(SIGNALS))
    parser.add_argument("--repeat", type=int, default=1, help="runs per case")
    parser.add_argument("--deadline", type=float, default=10.0, help="seconds a process may take to stop")
    args = parser.parse_args()
    video = assets.demo_data_dir() / "vtest.avi"
    if not video.is_file():
        print(f"needs the demo video: {video} ({assets.SETUP_HINT})", file=sys.stderr)
        return 2
    domain_id = int(os.environ.get("ROS_DOMAIN_ID") or 150 + os.getpid() % 50)
    rows, failures = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        params_file = quick_params_file(Path(tmp))
        for process, state, command, options in cases(video, params_file, Path(tmp) / "demo"):
            if process not in args.only:
                continue
            for signal_name in args.signals:
                results = []
                for _ in range(args.repeat):
                    result = stop_run(process, command, signal_name, domain_id, deadline_s=args.deadline, **options)
                    results.append(result)
                    status = "clean" if result.clean else f"FAILED rc={result.returncode} {result.failures}"
                    print(f"{process:13s} {state:28s} {signal_name:8s} {status}  stop {result.stop_s * 1000:.0f} ms "
                          f"(outputs before: {result.messages_before}, last output "
                          f"{_ms(result.last_output_after_signal_ms)} after the signal)", flush=True)
                    if not result.clean:
                        failures += 1
                        print(result.output[-2000:])
                clean = sum(r.clean for r in results)
                stops = [r.stop_s * 1000 for r in results]
                lasts = [r.last_output_after_signal_ms for r in results if r.last_output_after_signal_ms is not None]
                rows.append(f"| {process} | {state} | {signal_name} | {clean}/{len(results)} | "
                            f"{statistics.median(stops):.0f} (max {max(stops):.0f}) | "
                            f"{_ms(max(lasts) if lasts else None)} |")
    print("\n| process | state | signal | exit 0, no traceback | stop time ms, median (max) | last output after "
          "the signal |\n|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 1 if failures else 0


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:+.0f} ms"


if __name__ == "__main__":
    sys.exit(main())
