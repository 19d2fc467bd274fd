"""Build the Anny body model's data cache once, so that the anny_fit mesh model starts in about a second.

    python -m pose_ros.tools.prepare_anny            # builds into ~/.cache/pose_ros/anny (or $ANNY_CACHE_DIR)
    python -m pose_ros.tools.prepare_anny --check    # exit 1 when the cache is missing, build nothing

The first build takes minutes (~2-3 min on 2 CPU cores) and writes ~790 MB; it needs no network (Anny's data ships
in its wheel). Later runs find the cache and only load it. Progress: Anny's own log lines plus the elapsed time. It
also runs one skinning pass so that Warp (when installed) compiles its kernel here rather than on the first frame.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time

import torch

from pose_ros.core.body.anny_body import ANNY_VERSION, anny_cache_dir, anny_cache_ready, create_anny_model


def _tick(stop: threading.Event, start: float, every_s: float) -> None:
    while not stop.wait(every_s):
        print(f"  ... building Anny's model data, {time.perf_counter() - start:.0f} s so far", flush=True)


def build(every_s: float = 15.0) -> float:
    """Create Anny once (building the cache when missing), printing progress; returns the wall time in seconds."""
    logging.basicConfig(level=logging.INFO, format="  anny: %(message)s")
    logging.getLogger("anny").setLevel(logging.INFO)
    start = time.perf_counter()
    stop = threading.Event()
    ticker = threading.Thread(target=_tick, args=(stop, start, every_s), daemon=True)
    ticker.start()
    try:
        model = create_anny_model("cpu")
        with torch.no_grad():
            model()  # one skinning pass: compiles and caches Warp's kernel (~/.cache/warp) when Warp is present
    finally:
        stop.set()
    seconds = time.perf_counter() - start
    print(
        f"Anny {ANNY_VERSION} ready in {seconds:.0f} s: {model.template_vertices.shape[0]} vertices, "
        f"{model.bone_count} bones, cache {anny_cache_dir()}",
        flush=True,
    )
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report whether the cache is built")
    args = parser.parse_args(argv)
    ready = anny_cache_ready()
    if args.check:
        print(f"Anny cache {'ready' if ready else 'missing'}: {anny_cache_dir()}")
        return 0 if ready else 1
    if not ready:
        print(f"Building Anny's model data into {anny_cache_dir()} (first time only: minutes, ~790 MB)", flush=True)
    try:
        build()
    except ImportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
