"""The two README commands set pose_ros up first when needed, and the set-up log drops exactly the known notices."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
SETUP = REPO / "scripts" / "setup.sh"


def test_readme_first_screen_shows_the_two_commands() -> None:
    first_block = re.search(r"```bash\n(.*?)```", README, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.splitlines() if line.strip()]
    assert commands == ["scripts/demo.sh", "scripts/test.sh"]
    assert README.index("```bash") < README.index("## "), "on the first screen"


def test_demo_and_test_scripts_set_up_first_when_needed() -> None:
    for script in ("demo.sh", "test.sh"):
        lines = [line for line in (REPO / "scripts" / script).read_text().splitlines() if not line.startswith("#")]
        setup = next(i for i, line in enumerate(lines) if line == "bash scripts/setup.sh --if-needed")
        needs_setup = next(i for i, line in enumerate(lines) if "env.sh" in line or "build.sh" in line)
        assert setup < needs_setup, script


def filtered(text: str) -> str:
    """`text` through setup.sh's notice filter (its NOTICES and `quiet`, taken from the script itself)."""
    script = SETUP.read_text()
    definitions = script[script.index("NOTICES=(") : script.index("pip_install()")]
    result = subprocess.run(["bash", "-c", definitions + "\nquiet cat"], input=text, capture_output=True, text=True,
                            check=True)
    return result.stdout


def test_setup_log_filter_drops_the_known_notices_and_keeps_real_problems() -> None:
    notices = [
        "WARNING: Location 'file:///opt/wheels' is ignored: it is neither a file nor a directory.",
        "[0.153s] WARNING:colcon.colcon_ros.prefix_path.ament:The path '/root/.cache/pose_ros/venv' in the "
        "environment variable AMENT_PREFIX_PATH doesn't contain any 'local_setup.*' files.",
        "W1201 02:32:58.822000 3274 torch/onnx/_internal/exporter/_registration.py:107] torchvision is not "
        "installed. Skipping torchvision::nms",
        "Warp CUDA warning: Could not find or load the NVIDIA CUDA driver. GPU execution will not be available.",
        "  anny: No cached model data found at /root/.cache/pose_ros/anny/v14/x.safetensors, building model data...",
        "  anny: len(universal_blend_shapes)=90, len(race_blend_shapes)=30",
        "  anny: Reducing the number of influencing bones to 11",
        "  anny: Compacted 624 phenotype blendshapes into 136 (numerical rank 136).",
    ]
    kept = [
        "[setup 6/9] colcon build (messages + Python package)",
        "  movenet_multipose ready in 7 s",
        "  ... building Anny's model data, 15 s so far",
        "ERROR: Could not find a version that satisfies the requirement foo==1.0",
        "[0.2s] WARNING:colcon.colcon_core.package_selection:Some selected packages are not in the workspace",
        "RuntimeError: torchvision is not installed and something needs it",
        "  anny: ValueError: bad blend shape file",
    ]
    out = filtered("\n".join(notices + kept) + "\n").splitlines()
    assert out == kept


def test_setup_notice_list_in_the_comment_names_every_filtered_notice() -> None:
    comment = SETUP.read_text().split("set -euo pipefail")[0]
    for source in ("pip", "colcon", "torch", "warp", "anny", "apt"):
        assert re.search(rf"^#\s+{source}\s", comment, re.M), source
