#!/usr/bin/env bash
# colcon build of the pose_ros package (messages + Python package) into ./install. Needs scripts/setup.sh first.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${POSE_ROS_CACHE:-$HOME/.cache/pose_ros}"
VENV="${POSE_ROS_VENV:-$CACHE/venv}"
# shellcheck disable=SC1091
source "$VENV/bin/activate"
export CMAKE_PREFIX_PATH="$VENV" AMENT_PREFIX_PATH="$VENV"
cd "$ROOT"
colcon --log-base build/log build --paths . --build-base build --install-base install \
  --event-handlers console_cohesion- status- \
  --cmake-args -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF
