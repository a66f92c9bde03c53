#!/usr/bin/env bash
# Install the Debian/Ubuntu packages needed to build gemini-key-manager, if
# any are missing. Safe to run repeatedly.
#   --test   also what the test suite needs (clang for the fuzzers, Node.js
#            and npm for the OpenAI SDK test)
#   --bench  also what bench/run.sh needs (nginx, wrk)
set -euo pipefail

PKGS=(build-essential cmake pkg-config libevent-dev libhttp-parser-dev libcurl4-openssl-dev
      zlib1g-dev libjansson-dev libcmocka-dev python3 curl ca-certificates tzdata openssl)
if [[ "${1:-}" == "--bench" ]]; then
  PKGS+=(nginx-light wrk)
fi
if [[ "${1:-}" == "--test" ]]; then
  PKGS+=(clang)
  # The OpenAI SDK test needs Node.js and npm; any installation will do.
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    PKGS+=(nodejs npm)
  fi
fi

missing=()
for p in "${PKGS[@]}"; do
  if [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" != "install ok installed" ]]; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  SUDO="sudo"
fi
echo "Installing: ${missing[*]}" >&2
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
