#!/usr/bin/env bash
# Mutation testing of one module with mutmut (not part of CI: slow). See docs/testing.md.
#   scripts/mutate.sh MODULE [TEST_FILE ...]
#     MODULE: a short name (decode, grouping, metrics, tracking, image_conversion) or a path pose_ros/....py
#     TEST_FILE: the tests that guard it (default: the known ones for the short names)
#   MUTATE_TIME_S=600 scripts/mutate.sh grouping   # time box (default 900 s); results so far are reported
#   MUTATE_MAX_CHILDREN=1 (default)                # parallel mutant runs (the CPU is usually shared)
#   MUTATE_SAMPLE='*__mutmut_*[05]'                # only mutants whose name matches (here: every 5th, a sample);
#                                                  # several globs or names: space-separated (re-checks survivors)
# Works in a scratch copy (build/mutate/<name>/, git-ignored): your checkout is never modified. Re-running
# continues where the last run stopped (mutmut keeps its results there); MUTATE_FRESH=1 starts over.
# Output: score = killed / (killed + survived), and the surviving mutants; inspect one with
#   (cd build/mutate/<name> && mutmut show <mutant name>)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[[ $# -ge 1 ]] || { sed -n '2,12p' "$0" >&2; exit 2; }
declare -A MODULES=(
  [decode]="pose_ros/core/decode.py"
  [grouping]="pose_ros/core/openpose/grouping.py"
  [metrics]="pose_ros/core/metrics.py"
  [tracking]="pose_ros/core/tracking.py"
  [image_conversion]="pose_ros/ros/image_conversion.py"
)
declare -A TESTS=(
  [decode]="test/test_openpose_decode.py test/test_guard_openpose_grouping.py"
  [grouping]="test/test_openpose_decode.py test/test_guard_openpose_grouping.py"
  [metrics]="test/test_metrics_coco.py test/test_metrics_pck.py test/test_property_geometry_metrics.py"
  [tracking]="test/test_tracking.py test/test_guard_tracking.py"
  [image_conversion]="test/test_image_conversion.py test/test_property_image_conversion.py"
)
name="$1"; shift
module="${MODULES[$name]:-$name}"
[[ -f "$module" ]] || { echo "no module $module (short names: ${!MODULES[*]})" >&2; exit 2; }
tests=("$@")
[[ ${#tests[@]} -gt 0 ]] || read -r -a tests <<< "${TESTS[$name]:-}"
[[ ${#tests[@]} -gt 0 ]] || { echo "name the test files that guard $module" >&2; exit 2; }
short="$(basename "$module" .py)"
work="$ROOT/build/mutate/$short"

# shellcheck disable=SC1091
source scripts/env.sh
python -c "import mutmut" 2>/dev/null || { echo "mutmut is not installed: pip install mutmut==3.8.1" >&2; exit 1; }
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$((101 + RANDOM % 100))}" ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
# The scratch copy is not beside ../shared: point the tests at it. CI=true makes a skipped test fail (test/conftest.py),
# so a prerequisite missing in the copy stops the run instead of letting mutants "survive" untested tests.
export POSE_ROS_SHARED="${POSE_ROS_SHARED:-$ROOT/../shared}" CI=true

[[ "${MUTATE_FRESH:-0}" == 1 ]] && rm -rf "$work"
mkdir -p "$work"
# The scratch copy: library, tests, benchmarks (tests use their helpers) and pytest settings (mutmut builds its mutants/ inside it).
rm -rf "$work/pose_ros" "$work/test" "$work/bench"
cp -r pose_ros test bench pytest.ini "$work/"
find "$work/pose_ros" "$work/test" "$work/bench" -name __pycache__ -prune -exec rm -rf {} +
{
  echo "[mutmut]"
  echo "source_paths = pose_ros"
  echo "only_mutate = $module"
  printf 'also_copy =\n    pytest.ini\n    bench\n'   # tests import test/bench helpers
  echo "process_isolation = forkserver"   # torch is not fork-safe after the test collection
  echo "pytest_add_cli_args = -p no:cacheprovider -x -q"
  printf 'pytest_add_cli_args_test_selection =\n'
  printf '    %s\n' "${tests[@]}"
} > "$work/setup.cfg"

cd "$work"
echo "mutating $module with ${tests[*]} (time box ${MUTATE_TIME_S:-900} s, work dir $work)"
sample=()
[[ -n "${MUTATE_SAMPLE:-}" ]] && read -r -a sample <<< "$MUTATE_SAMPLE"  # space-separated globs
# mutmut's progress display goes to run.log (its last line is the final count)
if ! timeout --signal=INT "${MUTATE_TIME_S:-900}" mutmut run --max-children "${MUTATE_MAX_CHILDREN:-1}" \
    "${sample[@]}" > run.log 2>&1; then
  echo "(mutmut stopped: time box reached or an error, see $work/run.log; results so far below)"
fi
tr '\r' '\n' < run.log | grep -E "mutations/second|done in" | tail -2 || true
mutmut results --all true > results.txt 2>&1 || true
python - "$module" <<'PY'
import re, sys, collections
counts = collections.Counter()
survivors = []
for line in open("results.txt"):
    m = re.match(r"\s*(\S+): (\w[\w ]*)$", line.rstrip())
    if m:
        counts[m.group(2)] += 1
        if m.group(2) == "survived":
            survivors.append(m.group(1))
killed, survived = counts["killed"], counts["survived"]
tested = killed + survived
print(f"{sys.argv[1]}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
if tested:
    print(f"score {killed}/{tested} = {100.0 * killed / tested:.1f}% of the mutants tested")
print("survivors:" if survivors else "no survivors", *survivors, sep="\n  ")
PY
