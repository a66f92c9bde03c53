#!/usr/bin/env bash
# One command to run the proxy: installs what is missing (apt), builds, and
# starts gemini-key-manager in the current directory on ./key.txt with safe
# defaults (127.0.0.1:5000). Extra arguments go to the proxy, e.g.
#   ./scripts/run.sh --listen 0.0.0.0:5000 --token "$(cat token.txt)"
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$here/scripts/deps.sh"
cmake -S "$here" -B "$here/build" -DCMAKE_BUILD_TYPE=Release -DGKM_WERROR=OFF >/dev/null
cmake --build "$here/build" -j"$(nproc)" --target gemini-key-manager >/dev/null
exec "$here/build/gemini-key-manager" "$@"
