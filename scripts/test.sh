#!/usr/bin/env bash
# One command to run the whole test suite: installs what is missing (apt),
# builds twice (plain, and with AddressSanitizer + UndefinedBehaviorSanitizer)
# and runs every unit and integration test in both builds with ctest.
# Usage: ./scripts/test.sh [ctest -R regex]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
scripts/deps.sh --test
jobs="$(nproc)"
filter=()
if [[ $# -gt 0 ]]; then filter=(-R "$1"); fi

status=0
total_pass=${GKM_EXTRA_PASS:-0}   # checks run before this script (.ci/run)
total_fail=${GKM_EXTRA_FAIL:-0}
if [[ "$total_fail" != 0 ]]; then status=1; fi
run_build() {
  local dir="$1"; shift
  echo "== build $dir ($*)"
  cmake -S . -B "$dir" "$@" >/dev/null
  if ! cmake --build "$dir" -j"$jobs" >"$dir.build.log" 2>&1; then
    cat "$dir.build.log"; echo "build failed: $dir"; status=1; return
  fi
  echo "== test $dir"
  local log="$dir.ctest.log"
  (cd "$dir" && ctest --output-on-failure -j"$jobs" --timeout 600 "${filter[@]}") 2>&1 | tee "$log" || true
  # "100% tests passed, 0 tests failed out of 26"
  local line; line="$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -1)"
  if [[ -z "$line" ]]; then status=1; return; fi
  local failed total
  failed="$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")"
  total="$(sed -E 's/.* failed out of ([0-9]+).*/\1/' <<<"$line")"
  total_pass=$((total_pass + total - failed))
  total_fail=$((total_fail + failed))
  if [[ "$failed" != 0 ]]; then status=1; fi
}

run_build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:quarantine_size_mb=16" \
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
  run_build build-asan -DCMAKE_BUILD_TYPE=Debug -DGKM_SANITIZE=ON
if [[ -z "${GKM_SKIP_DOCS:-}" && $# -eq 0 ]]; then
  echo "== documentation and deployment checks"
  if bash tests/docs/check.sh; then total_pass=$((total_pass + 1)); else total_fail=$((total_fail + 1)); status=1; fi
fi
echo "== summary (ctest in both builds, the docs checks, and any checks .ci/run ran first)"
echo "$total_pass passed, $total_fail failed"
exit $status
