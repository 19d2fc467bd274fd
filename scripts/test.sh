#!/usr/bin/env bash
# Run the test suite: set-up first when it has not run (scripts/setup.sh --if-needed: 0.1 s when done),
# rebuild, lint, package.xml validation, pytest.
#   scripts/test.sh                 # everything
#   scripts/test.sh -k movenet      # extra arguments go to pytest
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh --if-needed
bash scripts/build.sh >/dev/null || { echo "colcon build failed (log in build/log)" >&2; exit 1; }
# shellcheck disable=SC1091
source scripts/env.sh
# DDS stays on this machine; each pytest process picks its own ROS_DOMAIN_ID (test/conftest.py).
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
echo "== ruff"
ruff check .
echo "== package.xml (catkin_pkg validation)"
python -c "from catkin_pkg.package import parse_package; p = parse_package('package.xml'); p.validate(); print(p.name, p.version, 'valid')"
echo "== pytest"
exec pytest "$@"
