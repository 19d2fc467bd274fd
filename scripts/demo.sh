#!/usr/bin/env bash
# The demo (sets pose_ros up first if needed): vtest.avi -> image_source -> pose_node over DDS on this
# machine; writes output/demo/{overlay.mp4, overlay_*.png, pose_bag/} and prints FPS and latency.
#   scripts/demo.sh [--frames N] [--device cpu|cuda] [--output-dir DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if ! source scripts/env.sh 2>/dev/null; then
  bash scripts/setup.sh
  source scripts/env.sh
fi
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( RANDOM % 100 + 1 ))}"
exec python -m pose_ros.tools.demo "$@"
