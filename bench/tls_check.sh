#!/usr/bin/env bash
# A focused measurement of the two upstream engines over TLS, which the
# main benchmark (plain HTTP to the fake) does not cover: nginx terminates
# TLS (with HTTP/2 offered in ALPN, as Google does) in front of the fake
# upstream, and two proxies reach it, one with the default HTTP/1.1 engine
# and one with --upstream-http 2 (libcurl's transfers, HTTP/2). Both trust
# a throwaway CA with --upstream-ca. Prints, per round, requests per second
# and the proxy's CPU time per request at 64 connections; then, for N
# concurrent slow streams through each, the proxy's peak RSS and CPU time
# and the number of TCP connections it held to the TLS front.
#
# usage: bench/tls_check.sh [rounds (default 3)] [seconds per run (default 5)] [streams (default 500)]
# Needs: wrk, nginx (scripts/deps.sh --bench installs them), openssl, curl,
# python3, ss.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROUNDS="${1:-3}"
DUR="${2:-5}"
NSTREAMS="${3:-500}"
. "$here/bench/common.sh"
bench_build gemini-key-manager fake-gemini
bench_workdir tls

KEY="AIzaSyBENCHxxxxxxxxxxxxxxxxxxxxxxxxx000"
TOKEN=PLACEHOLDER_GEMINI_TOKEN
MODEL=gemini-2.5-flash
GEN="/v1beta/models/$MODEL:generateContent"
STREAM="/v1beta/models/$MODEL:streamGenerateContent?alt=sse"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
  -keyout "$W/key.pem" -out "$W/cert.pem" 2>/dev/null

FPORT=$(freeport)
build-bench/fake-gemini --listen "127.0.0.1:$FPORT" --no-record --quiet > "$W/fake.out" 2>&1 &
PIDS+=($!)
sleep 0.3
curl -s -X POST "http://127.0.0.1:$FPORT/_fake/config" \
  -d '{"stream": {"chunks": 10, "chunk_delay_ms": 1000}}' >/dev/null

TPORT=$(freeport)
bench_nginx "$FPORT" "$TPORT" "" "ssl http2" "ssl_certificate $W/cert.pem;
    ssl_certificate_key $W/key.pem;
    keepalive_requests 100000;
    http2_max_concurrent_streams 1000;"

start() { # name extra-args... -> sets PORT_<name> PID_<name>
  local name=$1; shift
  local d="$W/$name" port; mkdir -p "$d"
  printf '%s\n' "${KEY%000}001" "${KEY%000}002" "${KEY%000}003" > "$d/key.txt"
  port=$(freeport)
  (cd "$d" && exec "$here/build-bench/gemini-key-manager" --listen "127.0.0.1:$port" \
      --upstream "https://127.0.0.1:$TPORT" --upstream-ca "$W/cert.pem" \
      --log-level warn "$@") > "$d/proxy.out" 2>&1 &
  local pid=$!; PIDS+=("$pid")
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  printf -v "PORT_$name" '%s' "$port"
  printf -v "PID_$name" '%s' "$pid"
}
start h1
start h2 --upstream-http 2

bench_wrk_scripts
hz=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
conns() { # pid -> its established connections to the TLS front
  ss -Htnp state established "( dport = :$TPORT )" 2>/dev/null | grep -c "pid=$1," || true
}

for name in h1 h2; do # warm-up, and a check that both answer
  port_var=PORT_$name
  out=$(curl -s -H "x-goog-api-key: $TOKEN" -d '{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}' "http://127.0.0.1:${!port_var}$GEN")
  grep -q candidates <<<"$out" || { echo "proxy $name does not answer over TLS: $out"; cat "$W/$name/proxy.out"; exit 1; }
  wrk -t1 -c64 -d1s -s "$W/post.lua" "http://127.0.0.1:${!port_var}$GEN" >/dev/null
done

echo "| 64 connections, over TLS | req/s | CPU us/request |"
echo "|---|---|---|"
for r in $(seq "$ROUNDS"); do
  for name in h1 h2; do
    port_var=PORT_$name; pid_var=PID_$name
    t0=$(ticks "${!pid_var}")
    out=$(wrk -t1 -c64 -d"${DUR}s" -s "$W/post.lua" "http://127.0.0.1:${!port_var}$GEN")
    t1=$(ticks "${!pid_var}")
    n=$(awk '/requests in/{print $1}' <<<"$out")
    rps=$(awk '/Requests\/sec/{printf "%d", $2}' <<<"$out")
    echo "| $name (round $r) | $rps | $(( (t1 - t0) * 1000000 / hz / (n > 0 ? n : 1) )) |"
  done
done

echo
echo "| $NSTREAMS slow streams, over TLS | completed | peak RSS (MiB) | CPU (s) | connections to the TLS front (during) |"
echo "|---|---|---|---|---|"
for name in h1 h2; do
  port_var=PORT_$name; pid_var=PID_$name
  python3 bench/streams.py "http://127.0.0.1:${!port_var}$STREAM" "$NSTREAMS" "$TOKEN" "${!pid_var}" > "$W/s.json" &
  sp=$!
  sleep 5
  c=$(conns "${!pid_var}")
  wait $sp
  python3 - "$name" "$c" "$W/s.json" <<'PY'
import json, sys
name, c, path = sys.argv[1], sys.argv[2], sys.argv[3]
s = json.load(open(path))
print("| %s | %d | %.1f | %.2f | %s |" % (name, s["ok"], s["peak_rss_kib"] / 1024, s["cpu_s"], c))
PY
done
