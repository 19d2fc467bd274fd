#!/usr/bin/env bash
# The demo: vtest.avi -> image_source -> pose_node over DDS on this machine; writes
# output/demo/{overlay.mp4, overlay_*.png, pose_bag/} and prints FPS and latency. Sets pose_ros up first when
# that has not run (scripts/setup.sh --if-needed: 0.1 s when done). Ctrl-C stops it cleanly, with a report.
#   scripts/demo.sh [--frames N] [--device cpu|cuda] [--output-dir DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh --if-needed
# shellcheck disable=SC1091
source scripts/env.sh
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( RANDOM % 100 + 1 ))}"
exec python -m pose_ros.tools.demo "$@"
