"""Build the default estimators once so that the node starts (and switches modes) without waiting.

    python -m pose_ros.tools.prepare_models          # bottom_up and top_down defaults, CPU

On the CPU the default backend is onnxruntime, whose ONNX files are exported from the torch modules on first
use (tens of seconds each) and cached in ~/.cache/pose_ros/exported; doing it here keeps that out of the node's
start-up and out of the first `ros2 param set /pose_node mode top_down`.
"""

from __future__ import annotations

import sys
import time

from pose_ros.core.pipeline import PipelineConfig, create_estimator

DEFAULT_CONFIGS = (PipelineConfig(mode="bottom_up", device="cpu"), PipelineConfig(mode="top_down", device="cpu"))


def main() -> int:
    for config in DEFAULT_CONFIGS:
        start = time.perf_counter()
        print(f"  preparing {config.mode}: {config.model_name} ({config.backend} backend) ...", flush=True)
        try:
            create_estimator(config)
        except (ValueError, OSError, RuntimeError, ImportError) as error:
            print(f"  could not prepare {config.model_name}: {error}", file=sys.stderr)
            return 1
        print(f"  {config.model_name} ready in {time.perf_counter() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
