"""Mesh stage cost on CPU: HMR + SMPL time per person, and mesh-marker size per person for decimation budgets.

Without arguments it builds a synthetic SMPL-format model and a random-weight HMR checkpoint in SPIN's layout (the
network cost does not depend on the weights); pass --smpl/--checkpoint to time real files. When ROS 2 messages are
importable it also builds a visualization_msgs/Marker TRIANGLE_LIST per budget and reports its serialized size and
the time to fill and serialize it.

Usage (from the repository root): python -m bench.bench_smpl_mesh [--people 1 2 4] [--repeats R]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.fixtures.meshes import triangle_list_bytes, triangle_list_points
from bench.fixtures.smpl_synthetic import make_synthetic_smpl
from pose_ros.core.body.hmr import Hmr
from pose_ros.core.body.smpl_files import save_smpl_npz
from pose_ros.core.meshing.smpl_hmr import SmplHmrMeshStage
from pose_ros.core.person import Person

BUDGETS = (None, 5000, 2000, 1000)


def synthetic_files(folder: Path) -> tuple[Path, Path]:
    save_smpl_npz(make_synthetic_smpl(seed=0), folder / "smpl_synthetic.npz")
    torch.manual_seed(0)
    torch.save({"model": Hmr().state_dict()}, folder / "hmr_random.pt")
    return folder / "smpl_synthetic.npz", folder / "hmr_random.pt"


def people_in_a_row(count: int, width: int, height: int) -> list[Person]:
    step = width / count
    boxes = [[i * step + 0.1 * step, 0.1 * height, 0.8 * step, 0.8 * height] for i in range(count)]
    return [
        Person(np.zeros((17, 2), np.float32), np.zeros(17, np.float32), 1.0, np.array(b, np.float32), "coco17")
        for b in boxes
    ]


def time_stage(stage: SmplHmrMeshStage, image: np.ndarray, counts: list[int], repeats: int) -> None:
    print("| people | crops (ms) | HMR (ms) | SMPL + conversions (ms) | total (ms) | per person (ms) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for count in counts:
        people = people_in_a_row(count, image.shape[1], image.shape[0])
        stage(image, people)  # warm-up
        runs = []
        for _ in range(repeats):
            stage(image, people)
            runs.append(stage.timing)
        crop, hmr, smpl = (
            statistics.median(getattr(t, name) for t in runs) for name in ("crop_ms", "hmr_ms", "smpl_ms")
        )
        total = crop + hmr + smpl
        print(f"| {count} | {crop:.1f} | {hmr:.1f} | {smpl:.1f} | {total:.1f} | {total / count:.1f} |")


def marker_size(vertices: np.ndarray, faces: np.ndarray, repeats: int = 5) -> tuple[int, float] | None:
    """Serialized bytes of a TRIANGLE_LIST Marker and the median ms to fill + serialize it, or None without ROS 2."""
    try:
        from geometry_msgs.msg import Point
        from rclpy.serialization import serialize_message
        from visualization_msgs.msg import Marker
    except ImportError:
        return None
    times, size = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        marker = Marker(type=Marker.TRIANGLE_LIST)
        marker.points = [Point(x=x, y=y, z=z) for x, y, z in triangle_list_points(vertices, faces).tolist()]
        size = len(serialize_message(marker))
        times.append((time.perf_counter() - start) * 1e3)
    return size, statistics.median(times)


def mesh_sizes(stage: SmplHmrMeshStage, image: np.ndarray) -> None:
    person = people_in_a_row(1, image.shape[1], image.shape[0])
    stage(image, person)
    body = person[0].body_model
    assert body is not None and body.vertices is not None
    print(
        "| budget (faces) | faces | vertices | points payload (B) | serialized Marker (B) | decimate/frame (ms) "
        "| fill + serialize Marker (ms) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for budget in BUDGETS:
        if budget is None:
            vertices, faces, decimate_ms = body.vertices, stage.faces, 0.0
        else:
            decimator = stage.decimator(budget)  # planned once per budget, on the rest template
            start = time.perf_counter()
            vertices, faces = decimator(body.vertices)
            decimate_ms = (time.perf_counter() - start) * 1e3
        measured = marker_size(vertices, faces)
        serialized, fill_ms = (f"{measured[0]:,}", f"{measured[1]:.1f}") if measured else ("n/a", "n/a")
        print(
            f"| {budget or 'full'} | {len(faces)} | {len(vertices)} | {triangle_list_bytes(len(faces)):,} "
            f"| {serialized} | {decimate_ms:.2f} | {fill_ms} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smpl", type=Path, help="SMPL .pkl/.npz (default: a synthetic SMPL-format model)")
    parser.add_argument("--checkpoint", type=Path, help="SPIN model_checkpoint.pt (default: random weights)")
    parser.add_argument("--people", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    image = np.random.default_rng(0).integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as folder:
        smpl_path, checkpoint_path = synthetic_files(Path(folder))
        stage = SmplHmrMeshStage(args.smpl or smpl_path, args.checkpoint or checkpoint_path, device="cpu")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU, float32, 640x480 image")
    time_stage(stage, image, args.people, args.repeats)
    print()
    mesh_sizes(stage, image)


if __name__ == "__main__":
    main()
