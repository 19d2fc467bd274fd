"""Shared test fixtures: real data locations, skipping with a clear reason when absent.

In CI, ../shared (annotated samples) and the set-up's cache (models, demo video) are present and every
test runs. In a user's clone without ../shared, the tests that need it skip and say why.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Before anything imports rclpy: keep DDS on this machine and give this test process its own domain,
# so parallel test runs (and other developers' nodes) never see each other's topics.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))

from pose_ros.core import assets
from pose_ros.core.sources import read_video_frames

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("POSE_ROS_SHARED", REPO_ROOT.parent / "shared"))


def _require_dir(path: Path, reason: str) -> Path:
    if not path.is_dir():
        pytest.skip(f"{reason}: {path} is absent")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data: real annotated COCO and MPII samples (present in CI)."""
    return _require_dir(SHARED_DIR / "data", "needs the project's shared data (../shared/data beside the clone)")


@pytest.fixture(scope="session")
def human_models() -> Path:
    """TF.js models installed by scripts/setup.sh."""
    path = assets.human_models_dir()
    if not (path / "movenet-multipose.json").is_file():
        pytest.skip(f"needs the default models from scripts/setup.sh: {path} is absent")
    return path


@pytest.fixture(scope="session")
def demo_data() -> Path:
    """vtest.avi and friends from Debian opencv-doc, installed by scripts/setup.sh."""
    path = assets.demo_data_dir()
    if not (path / "vtest.avi").is_file():
        pytest.skip(f"needs the demo data from scripts/setup.sh: {path} is absent")
    return path


@pytest.fixture(scope="session")
def vtest_frames(demo_data: Path):
    """Frames 0, 100 and 300 of vtest.avi (768×576, several walkers) as RGB arrays."""
    return read_video_frames(demo_data / "vtest.avi", [0, 100, 300])
