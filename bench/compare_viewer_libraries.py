"""Which browser-viewer library for pose_viewer: viser or rerun-sdk, side by side on the viewer's workload.

Per library, in a fresh child process: import time, server start time, then the process CPU time per frame
of logging what pose_viewer shows each frame (a 768x576 overlay image, 3 skeletons of 16 limbs, 2 body
meshes of 2000 triangles), with no browser attached (the server-side cost only). Install sizes are the
installed package folders.

    python bench/compare_viewer_libraries.py                         # viser (installed by the set-up)
    python bench/compare_viewer_libraries.py --rerun-path /tmp/rr    # also rerun-sdk, installed with
                                                                     # `pip install --target /tmp/rr rerun-sdk`

rerun-sdk is not a dependency of pose_ros; install it into a scratch folder only for this comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, socket, sys, time
t0 = time.perf_counter()
library = sys.argv[1]
frames = int(sys.argv[2])
import numpy as np
t_numpy = time.perf_counter()
if library == "viser":
    import viser
else:
    import rerun as rr
t_import = time.perf_counter()
sock = socket.socket(); sock.bind(("127.0.0.1", 0)); port = sock.getsockname()[1]; sock.close()
if library == "viser":
    server = viser.ViserServer(host="127.0.0.1", port=port, verbose=False)
    image_handle = server.gui.add_image(np.zeros((576, 768, 3), np.uint8), label="overlay", format="jpeg")
else:
    rr.init("pose_viewer_compare")
    uri = rr.serve_grpc(grpc_port=port)
    rr.serve_web_viewer(web_port=port + 1, open_browser=False, connect_to=uri)
t_start = time.perf_counter()
rng = np.random.default_rng(0)
image = rng.integers(0, 255, (576, 768, 3), np.uint8)
faces = rng.integers(0, 1000, (2000, 3)).astype(np.uint32)
cpu0 = time.process_time()
for frame in range(frames):
    image[frame % 576] = 255
    skeletons = rng.normal(0, 0.3, (3, 16, 2, 3)).astype(np.float32) + (0, 0, 2)
    meshes = rng.normal(0, 0.3, (2, 1000, 3)).astype(np.float32) + (0, 0, 2)
    if library == "viser":
        with server.atomic():
            image_handle.image = image
            for i, lines in enumerate(skeletons):
                server.scene.add_line_segments(f"/people/{i}/skeleton", lines, colors=(255, 0, 0), line_width=3)
            for i, vertices in enumerate(meshes):
                server.scene.add_mesh_simple(f"/people/{i}/mesh", vertices, faces, color=(255, 0, 0))
        server.flush()
    else:
        rr.set_time("frame", sequence=frame)
        rr.log("overlay", rr.Image(image).compress(jpeg_quality=80))
        for i, lines in enumerate(skeletons):
            rr.log(f"people/{i}/skeleton", rr.LineStrips3D(lines, colors=(255, 0, 0)))
        for i, vertices in enumerate(meshes):
            rr.log(f"people/{i}/mesh", rr.Mesh3D(vertex_positions=vertices, triangle_indices=faces))
if library != "viser":
    rr.get_global_data_recording().flush()
cpu = time.process_time() - cpu0
result = {"import_s": t_import - t_numpy, "start_s": t_start - t_import, "cpu_ms_per_frame": 1e3 * cpu / frames}
print(json.dumps(result))
"""


def folder_mb(paths: list[Path]) -> float:
    return sum(f.stat().st_size for p in paths if p.exists() for f in p.rglob("*") if f.is_file()) / 1e6


def run(library: str, frames: int, extra_path: str | None) -> dict:
    env = dict(os.environ)
    if extra_path:
        env["PYTHONPATH"] = extra_path + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", CHILD, library, str(frames)], env=env, capture_output=True, text=True,
                         timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"{library} failed:\n{out.stderr[-2000:]}")
    return json.loads(next(line for line in out.stdout.splitlines() if line.startswith("{")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--rerun-path", help="folder where rerun-sdk was installed with pip --target")
    args = parser.parse_args()
    import viser

    site = Path(viser.__file__).resolve().parents[1]
    rows = {"viser": (run("viser", args.frames, None),
                      folder_mb([site / n for n in ("viser", "msgspec", "websockets", "zstandard", "imageio")]))}
    if args.rerun_path:
        root = Path(args.rerun_path)
        rows["rerun-sdk"] = (run("rerun", args.frames, args.rerun_path),
                             folder_mb([root / n for n in ("rerun", "rerun_bindings", "rerun_cli", "pyarrow")]))
    print("| library | installed MB (package + deps new to this venv) | import s | server start s | CPU ms/frame |")
    print("|---|---|---|---|---|")
    for name, (result, size_mb) in rows.items():
        print(f"| {name} | {size_mb:.0f} | {result['import_s']:.2f} | {result['start_s']:.2f} | "
              f"{result['cpu_ms_per_frame']:.1f} |")


if __name__ == "__main__":
    main()
