#!/usr/bin/env bash
# A focused measurement for a design question (issue 2's CPU and latency
# lines): what does libcurl's transfer machinery cost per request, against
# framing HTTP/1.1 by hand over libcurl's connections? Side by side on one
# fake upstream: gemini-key-manager, nginx (worker_processes 1), and two
# bare relays on the same lean server (bench/hprelay.c: libcurl's
# multi_socket transfers, as the proxy uses libcurl with --upstream-http 2;
# bench/corelay.c: CURLOPT_CONNECT_ONLY, the request written in one piece,
# the answer parsed by libhttp-parser, which is the design of the proxy's
# default engine, without its checks and limits). Prints, per round, requests per second and user /
# system CPU time per request at 64 connections, then the added p50
# latency at one connection with everything on one CPU.
#
# usage: bench/framing_check.sh [rounds (default 3)] [seconds per run (default 5)]
# Needs: wrk, nginx (scripts/deps.sh --bench installs them), curl, python3,
# taskset.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROUNDS="${1:-3}"
DUR="${2:-5}"
. "$here/bench/common.sh"
bench_build gemini-key-manager fake-gemini bench-hprelay bench-corelay
bench_workdir framing
KEY="AIzaSyBENCHxxxxxxxxxxxxxxxxxxxxxxxxx000"
GEN="/v1beta/models/gemini-2.5-flash:generateContent"

FPORT=$(freeport)
build-bench/fake-gemini --listen 127.0.0.1:$FPORT --no-record --quiet > "$W/fake.out" 2>&1 &
FAKEPID=$!; PIDS+=($FAKEPID)
PPORT=$(freeport)
printf '%s\n' "${KEY%000}001" "${KEY%000}002" "${KEY%000}003" > "$W/key.txt"
(cd "$W" && exec "$here/build-bench/gemini-key-manager" --listen 127.0.0.1:$PPORT \
    --upstream http://127.0.0.1:$FPORT --log-level warn) > "$W/proxy.out" 2>&1 &
PXPID=$!; PIDS+=($PXPID)
HPORT=$(freeport)
build-bench/bench-hprelay "$HPORT" "$FPORT" "$KEY" > "$W/hprelay.out" 2>&1 &
HPPID=$!; PIDS+=($HPPID)
CPORT=$(freeport)
build-bench/bench-corelay "$CPORT" "$FPORT" "$KEY" > "$W/corelay.out" 2>&1 &
COPID=$!; PIDS+=($COPID)
NPORT=$(freeport)
bench_nginx "$FPORT" "$NPORT" "$KEY"
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PPORT/healthz" >/dev/null && break; sleep 0.1; done
NGPIDS="${NGPIDS//,/ }"

bench_wrk_scripts
hz=$(getconf CLK_TCK)
cpu() { # pids -> "user system" ticks
  local u=0 s=0 a b p
  for p in $1; do read -r a b <<<"$(awk '{print $14, $15}' "/proc/$p/stat")"; u=$((u + a)); s=$((s + b)); done
  echo "$u $s"
}
run() { # label port pids
  local u0 s0 u1 s1 out n
  read -r u0 s0 <<<"$(cpu "$3")"
  out=$(wrk -t1 -c64 -d"${DUR}s" -s "$W/post.lua" "http://127.0.0.1:$2$GEN")
  read -r u1 s1 <<<"$(cpu "$3")"
  n=$(awk '/requests in/{print $1}' <<<"$out")
  printf '| %s | %s | %s | %s |\n' "$1" "$(awk '/Requests\/sec/{print int($2)}' <<<"$out")" \
    "$(( (u1 - u0) * 1000000 / hz / n ))" "$(( (s1 - s0) * 1000000 / hz / n ))"
}
for p in $PPORT $NPORT $HPORT $CPORT; do
  wrk -t1 -c64 -d1s -s "$W/post.lua" "http://127.0.0.1:$p$GEN" >/dev/null
done
echo "| 64 connections | req/s | user us/request | system us/request |"
echo "|---|---|---|---|"
for _ in $(seq "$ROUNDS"); do
  run gemini-key-manager "$PPORT" "$PXPID"
  run nginx "$NPORT" "$NGPIDS"
  run hprelay "$HPORT" "$HPPID"
  run corelay "$CPORT" "$COPID"
done

# Added p50 latency at one connection, every process on CPU 0 (the wake-ups
# between processes, which vary with where the scheduler puts them, do not
# count): direct, target, direct, next target, ...
for p in $FAKEPID $PXPID $HPPID $COPID $NGPIDS; do taskset -pc 0 "$p" >/dev/null; done
p50() { taskset -c 0 wrk -t1 -c1 -d3s --latency -s "$W/post.lua" "http://127.0.0.1:$1$GEN" \
  | awk '$1=="50%"{v=$2; if (v ~ /us$/) {sub(/us/,"",v); print v} else if (v ~ /ms$/) {sub(/ms/,"",v); print v*1000} else {sub(/s/,"",v); print v*1000000}}'; }
echo
echo "| one CPU, 1 connection | gemini-key-manager | nginx | hprelay | corelay |"
echo "|---|---|---|---|---|"
for _ in $(seq "$ROUNDS"); do
  d0=$(p50 "$FPORT"); row=""
  for port in $PPORT $NPORT $HPORT $CPORT; do
    x=$(p50 "$port"); d1=$(p50 "$FPORT")
    row+=" $(awk -v x="$x" -v a="$d0" -v b="$d1" 'BEGIN{printf "%.0f", x - (a + b) / 2}') us |"
    d0=$d1
  done
  echo "| added p50 |$row"
done
