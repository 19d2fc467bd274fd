# Source this to use pose_ros from a shell:  source scripts/env.sh
# Activates the set-up's virtual environment and the colcon install space, and keeps DDS on this machine.
_pose_ros_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_pose_ros_venv="${POSE_ROS_VENV:-${POSE_ROS_CACHE:-$HOME/.cache/pose_ros}/venv}"
if [[ ! -f "$_pose_ros_venv/bin/activate" || ! -f "$_pose_ros_root/install/setup.bash" ]]; then
  echo "pose_ros is not set up yet: run $_pose_ros_root/scripts/setup.sh" >&2
  return 1 2>/dev/null || exit 1
fi
# The activate and colcon setup scripts read unset variables: relax `set -u` while sourcing them.
case $- in *u*) _pose_ros_nounset=1; set +u ;; *) _pose_ros_nounset= ;; esac
# shellcheck disable=SC1091
source "$_pose_ros_venv/bin/activate"
export AMENT_PREFIX_PATH="$_pose_ros_venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
# shellcheck disable=SC1091
source "$_pose_ros_root/install/setup.bash"
# The package's executables (pose_node, image_source, pose_launcher) as plain commands, for machines
# without ros2cli (`ros2 run pose_ros X` is the same where it exists).
export PATH="$_pose_ros_root/install/pose_ros/lib/pose_ros:$PATH"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"  # idle OpenMP threads sleep (faster on a shared CPU)
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
export POSE_ROS_CACHE="${POSE_ROS_CACHE:-$HOME/.cache/pose_ros}"
[[ -n "$_pose_ros_nounset" ]] && set -u
unset _pose_ros_root _pose_ros_venv _pose_ros_nounset
