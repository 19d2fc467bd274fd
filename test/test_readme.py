"""The README documents what the node really offers."""

from __future__ import annotations

from pathlib import Path

from pose_ros.ros.parameters import PARAMETERS

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_documents_every_parameter_with_its_default() -> None:
    for spec in PARAMETERS:
        default = str(spec.default).lower() if isinstance(spec.default, bool) else spec.default
        row = f"| `{spec.name}` | `{default if default != '' else chr(34) * 2}` |"
        assert row in README, f"README parameter table lacks or misstates {spec.name}"


def test_readme_documents_every_topic() -> None:
    for topic in ("image", "camera_info", "depth_image", "depth_camera_info", "people", "markers", "overlay"):
        assert f"| `{topic}` |" in README, topic
    assert "/diagnostics" in README


def test_viewer_page_documents_every_viewer_parameter_with_its_default() -> None:
    import yaml

    from pose_ros.ros.viewer import VIEWER_PARAMETERS

    repo = Path(__file__).resolve().parents[1]
    page = (repo / "docs" / "viewer.md").read_text()
    config = yaml.safe_load((repo / "config" / "pose.yaml").read_text())["pose_viewer"]["ros__parameters"]
    for spec in VIEWER_PARAMETERS:
        default = str(spec.default).lower() if isinstance(spec.default, bool) else spec.default
        assert f"| `{spec.name}` | `{default}` |" in page, f"docs/viewer.md lacks or misstates {spec.name}"
        assert config.get(spec.name, spec.default) == spec.default, f"config/pose.yaml sets {spec.name} otherwise"
