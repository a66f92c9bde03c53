#!/usr/bin/env bash
# Documentation and deployment files are well formed:
#   1. every ```mermaid block in README.md and docs/ parses
#      (../shared/tools/check-mermaid; its first run installs npm packages);
#   2. the man page renders without a single groff warning
#      (groff -man -ww -z: groff-base, which man-db depends on, is what
#      `man -l` uses; mandoc is not needed);
#   3. the Dockerfile passes dockerfilelint (npx, from the npm registry).
# Prints one line per check and "N passed, M failed"; exits 1 on any failure.
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tools="${GKM_SHARED_TOOLS:-$repo/../shared/tools}"
cd "$repo"
passed=0 failed=0
result() { # name status
  if [ "$2" = 0 ]; then passed=$((passed + 1)); echo "PASS $1"
  else failed=$((failed + 1)); echo "FAIL $1"; fi
}

# 1. Mermaid
"$tools/check-mermaid" README.md docs/
result mermaid $?

# 2. Man page
if ! command -v groff >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q groff-base >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1; DEBIAN_FRONTEND=noninteractive apt-get install -y -q groff-base >/dev/null 2>&1; }
fi
warn="$(groff -man -Tutf8 -ww -z docs/gemini-key-manager.1 2>&1)"
st=$?
if [ $st = 0 ] && [ -n "$warn" ]; then st=1; fi
[ -z "$warn" ] || echo "$warn"
if [ $st = 0 ] && command -v man >/dev/null; then
  out="$(MANWIDTH=80 man -l docs/gemini-key-manager.1 2>&1)" || st=1
  grep -q '^NAME' <<<"$out" && grep -q -- '--max-attempts' <<<"$out" || st=1
fi
# Every option of the option table (src/config.c) is in the man page.
for flag in $(grep -oE '^\s*\{"--[a-z0-9-]+"' src/config.c | grep -oE -- '--[a-z0-9-]+'); do
  esc="${flag//-/\\-}"
  grep -qF -- "$esc" docs/gemini-key-manager.1 || { echo "man page lacks $flag"; st=1; }
done
result man-page $st

# 3. Dockerfile lint
npx --yes dockerfilelint Dockerfile
result dockerfilelint $?

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
