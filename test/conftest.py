"""Shared test fixtures: real data locations, skipping with a clear reason when absent.

In CI, ../shared (annotated samples) and the set-up's cache (models, demo video) are present and every
test runs. In a user's clone without ../shared, the tests that need it skip and say why.

No vacuous passes: with CI=true (set by CI services, and by `.ci/run`'s callers) a skip of any kind (a fixture
below, `pytest.skip`, `skipif`, `importorskip`) is reported as a failure, except for tests marked `gpu` on a
machine without CUDA — so `pytest -rs` lists nothing else there.
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


CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
GPU_MARKER = "gpu"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{GPU_MARKER}: needs a CUDA GPU; skipped without one (the only skip allowed under CI=true)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_items = [item for item in items if item.get_closest_marker(GPU_MARKER)]
    if not gpu_items:
        return
    import torch

    if not torch.cuda.is_available():
        for item in gpu_items:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Under CI=true, a skipped test (other than a `gpu` one) fails, naming the skip reason."""
    outcome = yield
    report = outcome.get_result()
    if not (CI and report.skipped) or hasattr(report, "wasxfail") or item.get_closest_marker(GPU_MARKER):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"skipped under CI=true, where only tests marked {GPU_MARKER!r} may skip: {reason}"


def missing(reason: str) -> None:
    """A test's prerequisite is absent: fail under CI=true, else skip with the reason."""
    if CI:
        pytest.fail(f"{reason} (CI=true: prerequisites must be present, nothing may skip)", pytrace=False)
    pytest.skip(reason)


def _require_dir(path: Path, reason: str) -> Path:
    if not path.is_dir():
        missing(f"{reason}: {path} is absent")
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
        missing(f"needs the default models from scripts/setup.sh: {path} is absent")
    return path


@pytest.fixture(scope="session")
def demo_data() -> Path:
    """vtest.avi and friends from Debian opencv-doc, installed by scripts/setup.sh."""
    path = assets.demo_data_dir()
    if not (path / "vtest.avi").is_file():
        missing(f"needs the demo data from scripts/setup.sh: {path} is absent")
    return path


@pytest.fixture(scope="session")
def vtest_frames(demo_data: Path):
    """Frames 0, 100 and 300 of vtest.avi (768×576, several walkers) as RGB arrays."""
    return read_video_frames(demo_data / "vtest.avi", [0, 100, 300])
