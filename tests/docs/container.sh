#!/usr/bin/env bash
# Build the Dockerfile offline and check the image as a user would run it:
#   1. ../shared/tools/container-smoke builds it (podman, debian:bookworm-slim
#      made locally) and probes GET /healthz on the published port 5000;
#   2. a second run with a host directory mounted at /data (key.txt in it)
#      checks that the proxy is PID 1, runs as the non-root user gkm,
#      answers /healthz, stops within a few seconds of SIGTERM (podman stop)
#      with status 0, and leaves key_usage.txt (mode 0600) in the volume.
# Needs root (rootful podman); container-smoke installs podman, runc and
# debootstrap with apt-get when they are missing. The first run also builds
# the base image (debootstrap, about a minute).
#
# usage: tests/docs/container.sh [CONTEXT_DIR]   (default: the repository)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
ctx="$(cd "${1:-$repo}" && pwd)"
tools="${GKM_SHARED_TOOLS:-$repo/../shared/tools}"
image=localhost/gemini-key-manager:smoke
token=smoke-test-token
t_start=$SECONDS

# --- 1. build + probe -------------------------------------------------------
# The image listens on 0.0.0.0:5000, so it needs a token other than the
# default (GKM_TOKEN). container-smoke cannot mount a key file, so the probe
# run points --keys at a one-line file every Debian image has: /healthz
# needs no key, and nothing is sent upstream.
"$tools/container-smoke" -t "$image" -e "GKM_TOKEN=$token" \
  -e GKM_KEYS=/etc/debian_version --probe 5000/healthz "$ctx"
echo "container.sh: build + probe OK ($((SECONDS - t_start)) s)"

# --- 2. volume, user, PID 1, SIGTERM ----------------------------------------
# Same podman settings as container-smoke (runc; ulimits within ours).
nofile=$(ulimit -Hn); [ "$nofile" = unlimited ] && nofile=1048576
nproc=$(ulimit -Hu); { [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; } && nproc=32768
rt=(--runtime runc --ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc")

data="$(mktemp -d /tmp/gkm-container.XXXXXX)"
cname="gkm-container-$$"
cleanup() {
  podman rm -f -t 1 "$cname" >/dev/null 2>&1 || true
  rm -rf "$data"
}
trap cleanup EXIT
printf 'AIzaSyD-container-smoke-key-0000000001\nAIzaSyD-container-smoke-key-0000000002 project=smoke\n' >"$data/key.txt"
chown -R 10001:10001 "$data"
chmod 0700 "$data"
chmod 0600 "$data/key.txt"
hport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

podman run -d --name "$cname" "${rt[@]}" -e "GKM_TOKEN=$token" \
  -p "127.0.0.1:$hport:5000" -v "$data:/data" "$image" >/dev/null
fail() { echo "container.sh: FAIL: $*" >&2; podman logs "$cname" >&2 || true; exit 1; }

ok=0
for _ in $(seq 1 50); do
  if curl -fsS -m 2 "http://127.0.0.1:$hport/healthz" >/dev/null 2>&1; then ok=1; break; fi
  [ "$(podman inspect -f '{{.State.Running}}' "$cname")" = true ] || fail "container exited"
  sleep 0.2
done
[ $ok = 1 ] || fail "/healthz did not answer"
# An authenticated request without the token is refused before any upstream.
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$hport/v1beta/models")
[ "$code" = 401 ] || fail "request without token: HTTP $code, expected 401"

pid1=$(podman exec "$cname" cat /proc/1/cmdline | tr '\0' ' ')
case "$pid1" in /usr/local/bin/gemini-key-manager*) ;; *) fail "PID 1 is '$pid1'" ;; esac
uid=$(podman exec "$cname" awk '/^Uid:/ {print $2}' /proc/1/status)
[ "$uid" = 10001 ] || fail "PID 1 runs as uid $uid, expected 10001 (gkm)"
echo "container.sh: PID 1 is the proxy, uid $uid; /healthz 200, no token 401"

t0=$(date +%s.%N)
podman stop -t 10 "$cname" >/dev/null
t1=$(date +%s.%N)
secs=$(python3 -c "print(round($t1 - $t0, 2))")
rc=$(podman inspect -f '{{.State.ExitCode}}' "$cname")
[ "$rc" = 0 ] || fail "exit status $rc after SIGTERM"
python3 -c "import sys; sys.exit(0 if $secs < 5 else 1)" || fail "took ${secs}s to stop"
# Read the whole log first: grep -q would close the pipe early and, with
# pipefail, turn podman's SIGPIPE into a failure.
logs="$(podman logs "$cname" 2>&1)"
grep -q "SIGTERM: no longer accepting connections" <<<"$logs" \
  || fail "no drain message in the log"
[ -f "$data/key_usage.txt" ] || fail "no key_usage.txt in the volume"
mode=$(stat -c %a "$data/key_usage.txt")
[ "$mode" = 600 ] || fail "key_usage.txt has mode $mode"
echo "container.sh: SIGTERM -> exit 0 in ${secs}s; key_usage.txt written (mode $mode)"
echo "container.sh: OK ($((SECONDS - t_start)) s)"
