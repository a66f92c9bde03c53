#!/usr/bin/env bash
# A focused check of the OpenAI target (issue 3): one proxy, one fake
# upstream, `wrk -t1 -c64` alternating native generateContent and
# chat.completions for ROUNDS rounds; prints throughput, CPU per request
# (user + system time of the proxy / requests) and the ratio per round.
#
# usage: bench/oai_check.sh [rounds (default 5)] [seconds per run (default 8)]
# Needs: wrk (scripts/deps.sh --bench installs it), curl, python3.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROUNDS="${1:-5}"
DUR="${2:-8}"
. "$here/bench/common.sh"
bench_build gemini-key-manager fake-gemini
bench_workdir oaicheck

FPORT=$(freeport)
build-bench/fake-gemini --listen 127.0.0.1:$FPORT --no-record --quiet > "$W/fake.out" 2>&1 &
PIDS+=($!)
PPORT=$(freeport)
printf '%s\n' AIzaSyBENCHxxxxxxxxxxxxxxxxxxxxxxxxx001 AIzaSyBENCHxxxxxxxxxxxxxxxxxxxxxxxxx002 \
    AIzaSyBENCHxxxxxxxxxxxxxxxxxxxxxxxxx003 > "$W/key.txt"
(cd "$W" && exec "$here/build-bench/gemini-key-manager" --listen 127.0.0.1:$PPORT \
    --upstream http://127.0.0.1:$FPORT --log-level warn) > "$W/proxy.out" 2>&1 &
PP=$!; PIDS+=($PP)
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PPORT/healthz" >/dev/null && break; sleep 0.1; done

bench_wrk_scripts
ticks() { awk '{print $14 + $15}' /proc/$PP/stat; }
hz=$(getconf CLK_TCK)
run() { # script path -> "req/s us-per-request"
    local t0 t1 out n
    t0=$(ticks)
    out=$(wrk -t1 -c64 -d"${DUR}s" -s "$1" "http://127.0.0.1:$PPORT$2")
    t1=$(ticks)
    n=$(echo "$out" | awk '/requests in/{print $1}')
    echo "$(echo "$out" | awk '/Requests\/sec/{print int($2)}') $(( (t1 - t0) * 1000000 / hz / n ))"
}
echo "| round | native | chat.completions | ratio |"
echo "|---|---|---|---|"
for i in $(seq "$ROUNDS"); do
    a=$(run "$W/post.lua" /v1beta/models/gemini-2.5-flash:generateContent)
    b=$(run "$W/chat.lua" /v1/chat/completions)
    echo "$i $a $b" | awk '{printf "| %d | %s req/s, %s us | %s req/s, %s us | %.2fx |\n", $1, $2, $3, $4, $5, $4 / $2}'
done
