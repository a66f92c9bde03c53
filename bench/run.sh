#!/usr/bin/env bash
# Benchmark: native non-streaming passthrough through gemini-key-manager,
# directly against the fake upstream, and through nginx (worker_processes 1)
# configured as a plain header-swapping reverse proxy, all in one run on
# this machine. Also: RSS and CPU with N concurrent slow streams, idle RSS,
# and throughput with 10,000 keys of which 9,999 are benched. Added latency
# at one connection is measured between direct runs (see added_round), and
# once more with every process on one CPU (see pin_all).
#
# usage: bench/run.sh [seconds-per-run (default 10)] [streams (default 1000)]
# Environment: ROUNDS (default 3), STREAM_ROUNDS (3), LAT_SECS (3: seconds
# per latency run).
# Needs: wrk, nginx (scripts/deps.sh --bench installs them), python3.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DUR="${1:-10}"
NSTREAMS="${2:-1000}"
. "$here/bench/common.sh"
bench_build gemini-key-manager fake-gemini bench-evrelay bench-stackrelay bench-hprelay
# Each stream holds a client and an upstream socket: raise the soft limit
# to the hard one (no root needed) and check it is enough.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((2 * NSTREAMS + 256)) ]; then
  echo "bench/run.sh: open files limit $(ulimit -n) is too low for $NSTREAMS streams" >&2
  exit 1
fi

bench_workdir bench
KEY="AIzaSyBENCHxxxxxxxxxxxxxxxxxxxxxxxxx000"
TOKEN="PLACEHOLDER_GEMINI_TOKEN"
MODEL="gemini-2.5-flash"
GEN="/v1beta/models/$MODEL:generateContent"
STREAM="/v1beta/models/$MODEL:streamGenerateContent?alt=sse"

# --- fake upstream ---------------------------------------------------------
FPORT=$(freeport)
build-bench/fake-gemini --listen 127.0.0.1:$FPORT --no-record --quiet > "$W/fake.out" 2>&1 &
PIDS+=($!); FAKEPID=$!
sleep 0.3
fakecfg() { curl -s -X POST "http://127.0.0.1:$FPORT/_fake/config" -d "$1" >/dev/null; }

# --- our proxy (3 keys) ------------------------------------------------------
mkdir -p "$W/p3" "$W/p10k"
printf '%s\n' "${KEY%000}001" "${KEY%000}002" "${KEY%000}003" > "$W/p3/key.txt"
start_proxy() { # dir -> sets PXPORT PXPID
  local d="$1"; PXPORT=$(freeport)
  (cd "$d" && exec "$here/build-bench/gemini-key-manager" --listen 127.0.0.1:$PXPORT \
      --upstream http://127.0.0.1:$FPORT --log-level warn) > "$d/proxy.out" 2>&1 &
  PXPID=$!; PIDS+=($PXPID)
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PXPORT/healthz" >/dev/null && return; sleep 0.1; done
  echo "proxy did not start"; cat "$d/proxy.out"; exit 1
}
start_proxy "$W/p3"; P3PORT=$PXPORT; P3PID=$PXPID
IDLE_RSS=$(awk '/VmRSS/{print $2}' /proc/$P3PID/status)

# --- 10,000 keys, 9,999 benched for the model ----------------------------------
python3 - "$W/p10k" "$MODEL" <<'PY'
import datetime, json, sys, zoneinfo
d, model = sys.argv[1], sys.argv[2]
keys = ["AIzaSyBENCH%028d" % i for i in range(10000)]
open(d + "/key.txt", "w").write("\n".join(keys) + "\n")
today = datetime.datetime.now(zoneinfo.ZoneInfo("America/Los_Angeles")).date().isoformat()
json.dump({"date": today, "counts": {}, "model_counts": {},
           "exhausted_keys": {k: [model] for k in keys[:9999]}}, open(d + "/key_usage.txt", "w"))
PY
start_proxy "$W/p10k"; P10PORT=$PXPORT; P10PID=$PXPID
IDLE_RSS_10K=$(awk '/VmRSS/{print $2}' /proc/$P10PID/status)

# --- nginx, one worker, swapping the header ------------------------------------
NPORT=$(freeport)
bench_nginx "$FPORT" "$NPORT" "$KEY"

# --- a bare libevent relay (bench/evrelay.c): the evhttp server and client
# doing the same header swap and nothing else, as a reference for what the
# proxy's HTTP server layer allows by itself.
EPORT=$(freeport)
build-bench/bench-evrelay "$EPORT" "$FPORT" "$KEY" > "$W/evrelay.out" 2>&1 &
PIDS+=($!); EVPID=$!
# --- a bare relay on the decided stack (bench/stackrelay.c): evhttp server,
# libcurl multi_socket client on the same loop, the same header swap and
# nothing else: the ceiling for any proxy built on the stack.
SPORT=$(freeport)
build-bench/bench-stackrelay "$SPORT" "$FPORT" "$KEY" > "$W/stackrelay.out" 2>&1 &
PIDS+=($!); SRPID=$!
# --- the same relay with evhttp's server replaced by a lean one on
# libhttp-parser (bench/hprelay.c), as gemini-key-manager's src/http.c is.
HPORT=$(freeport)
build-bench/bench-hprelay "$HPORT" "$FPORT" "$KEY" > "$W/hprelay.out" 2>&1 &
PIDS+=($!); HPPID=$!
sleep 0.3

# --- wrk helpers ---------------------------------------------------------------
bench_wrk_scripts
rps() { # url auth conns [script]
  BENCH_AUTH="$2" wrk -t1 -c"$3" -d"${DUR}s" -s "${4:-$W/post.lua}" "$1" | awk '/Requests\/sec/{print $2}'
}
# p50 latency (ms) at one connection; LAT_SECS per run (default 3).
# ${PIN:+...}: with PIN set, wrk runs on that CPU (see the one-CPU measure).
p50() { # url auth
  BENCH_AUTH="$2" ${PIN:+taskset -c "$PIN"} wrk -t1 -c1 -d"${LAT_SECS:-3}s" --latency -s "$W/post.lua" "$1" \
    | awk '$1=="50%"{v=$2; if (v ~ /us$/) {sub(/us/,"",v); print v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v); print v} else {sub(/s/,"",v); print v*1000}}'
}
# The added latency of each target is its p50 minus the mean of the direct
# p50s measured just before and just after it, so that a drift of the
# machine over a round (tens of microseconds here) does not land on one
# target only: D T1 D T2 D ... Prints "direct-p50 added1 added2 ...".
added_round() { # target urls (auth: the token)
  local d0 d1 x out="" first
  d0=$(p50 "http://127.0.0.1:$FPORT$GEN" "$KEY"); first=$d0
  for u in "$@"; do
    x=$(p50 "$u" "$TOKEN")
    d1=$(p50 "http://127.0.0.1:$FPORT$GEN" "$KEY")
    out+=" $(awk -v x="$x" -v a="$d0" -v b="$d1" 'BEGIN{printf "%.4f", x - (a + b) / 2}')"
    d0=$d1
  done
  echo "$first$out"
}
fakecfg '{}'
# warm up every path
for u in "http://127.0.0.1:$FPORT$GEN|$KEY" "http://127.0.0.1:$P3PORT$GEN|$TOKEN" "http://127.0.0.1:$NPORT$GEN|$TOKEN" "http://127.0.0.1:$EPORT$GEN|$TOKEN" "http://127.0.0.1:$SPORT$GEN|$TOKEN" "http://127.0.0.1:$HPORT$GEN|$TOKEN"; do
  BENCH_AUTH="${u#*|}" wrk -t1 -c8 -d1s -s "$W/post.lua" "${u%|*}" >/dev/null
done

ticks() { # pid list (comma-separated) -> utime+stime ticks summed
  local t=0 p
  for p in ${1//,/ }; do t=$((t + $(awk '{print $14 + $15}' /proc/$p/stat))); done
  echo $t
}
cpu_rps() { # url auth pids [script] -> "req/s cpu_us_per_request"
  local t0 t1 out
  t0=$(ticks "$3")
  out=$(BENCH_AUTH="$2" wrk -t1 -c64 -d"${DUR}s" -s "${4:-$W/post.lua}" "$1")
  t1=$(ticks "$3")
  local r n
  r=$(awk '/Requests\/sec/{print $2}' <<<"$out")
  n=$(awk '/requests in/{print $1}' <<<"$out")
  echo "$r $(( (t1 - t0) * 10000 * 1000 / (n > 0 ? n : 1) / 1000 ))"
}
ROUNDS="${ROUNDS:-3}"
echo "running: ${DUR}s per throughput run, $ROUNDS rounds, $NSTREAMS streams" >&2
R_DIRECT=""; R_PROXY=""; R_NGINX=""; R_10K=""; R_OAI=""; C_PROXY=""; C_NGINX=""; C_OAI=""
L_DIRECT=""; L_PROXY=""; L_NGINX=""; R_EV=""; C_EV=""; L_EV=""; R_SR=""; C_SR=""; L_SR=""
R_HP=""; C_HP=""; L_HP=""
for round in $(seq "$ROUNDS"); do
  R_DIRECT+="$(rps "http://127.0.0.1:$FPORT$GEN" "$KEY" 64) "
  read -r r c <<<"$(cpu_rps "http://127.0.0.1:$P3PORT$GEN" "$TOKEN" "$P3PID")"; R_PROXY+="$r "; C_PROXY+="$c "
  read -r r c <<<"$(cpu_rps "http://127.0.0.1:$NPORT$GEN" "$TOKEN" "$NGPIDS")"; R_NGINX+="$r "; C_NGINX+="$c "
  read -r r c <<<"$(cpu_rps "http://127.0.0.1:$EPORT$GEN" "$TOKEN" "$EVPID")"; R_EV+="$r "; C_EV+="$c "
  read -r r c <<<"$(cpu_rps "http://127.0.0.1:$SPORT$GEN" "$TOKEN" "$SRPID")"; R_SR+="$r "; C_SR+="$c "
  read -r r c <<<"$(cpu_rps "http://127.0.0.1:$HPORT$GEN" "$TOKEN" "$HPPID")"; R_HP+="$r "; C_HP+="$c "
  R_10K+="$(rps "http://127.0.0.1:$P10PORT$GEN" "$TOKEN" 64) "
  read -r r c <<<"$(cpu_rps "http://127.0.0.1:$P3PORT/v1/chat/completions" "$TOKEN" "$P3PID" "$W/chat.lua")"; R_OAI+="$r "; C_OAI+="$c "
  read -r d p n e sr hp <<<"$(added_round "http://127.0.0.1:$P3PORT$GEN" "http://127.0.0.1:$NPORT$GEN" \
    "http://127.0.0.1:$EPORT$GEN" "http://127.0.0.1:$SPORT$GEN" "http://127.0.0.1:$HPORT$GEN")"
  L_DIRECT+="$d "; L_PROXY+="$p "; L_NGINX+="$n "; L_EV+="$e "; L_SR+="$sr "; L_HP+="$hp "
done

# --- added latency with everything on one CPU ------------------------------------
# Across CPUs, a request's latency includes the wake-ups from one process
# to the next, which cost tens of microseconds on a virtual machine and
# vary with where the scheduler puts each process. With wrk, the fake and
# the server under test on one CPU, the added latency is mostly the
# server's own work per request. Shown beside the measure above, not
# instead of it.
allcpus="0-$(( $(nproc) - 1 ))"
pin_all() { for p in $FAKEPID $P3PID ${NGPIDS//,/ }; do taskset -pc "$1" "$p" >/dev/null; done; }
L1_PROXY=""; L1_NGINX=""
pin_all 0
for round in $(seq "$ROUNDS"); do
  read -r _ p n <<<"$(PIN=0 added_round "http://127.0.0.1:$P3PORT$GEN" "http://127.0.0.1:$NPORT$GEN")"
  L1_PROXY+="$p "; L1_NGINX+="$n "
done
pin_all "$allcpus"

# --- slow streams -----------------------------------------------------------------
fakecfg '{"stream": {"chunks": 10, "chunk_delay_ms": 1000}}'
# The proxy and nginx alternate STREAM_ROUNDS times (one sample each was
# too noisy to judge a 1.5x line); medians are reported, every round listed.
S_PROXY=""; S_NGINX=""
for round in $(seq "${STREAM_ROUNDS:-3}"); do
  S_PROXY+="$(python3 bench/streams.py "http://127.0.0.1:$P3PORT$STREAM" "$NSTREAMS" "$TOKEN" "$P3PID")"$'\n'
  S_NGINX+="$(python3 bench/streams.py "http://127.0.0.1:$NPORT$STREAM" "$NSTREAMS" "$TOKEN" "$NGPIDS")"$'\n'
done
S_SR=$(python3 bench/streams.py "http://127.0.0.1:$SPORT$STREAM" "$NSTREAMS" "$TOKEN" "$SRPID")
S_HP=$(python3 bench/streams.py "http://127.0.0.1:$HPORT$STREAM" "$NSTREAMS" "$TOKEN" "$HPPID")
S_OAI=$(python3 bench/streams.py "http://127.0.0.1:$P3PORT/v1/chat/completions" "$NSTREAMS" "$TOKEN" "$P3PID" openai)

python3 - "$R_DIRECT" "$R_PROXY" "$R_NGINX" "$R_10K" "$L_DIRECT" "$L_PROXY" "$L_NGINX" \
  "$S_PROXY" "$S_NGINX" "$IDLE_RSS" "$IDLE_RSS_10K" "$NSTREAMS" "$R_OAI" "$S_OAI" \
  "$C_PROXY" "$C_NGINX" "$C_OAI" "$R_EV" "$C_EV" "$L_EV" "$R_SR" "$C_SR" "$L_SR" "$S_SR" \
  "$R_HP" "$C_HP" "$L_HP" "$S_HP" "$L1_PROXY" "$L1_NGINX" <<'PY'
import json, statistics, sys
def med(s):
    v = [float(x) for x in s.split()]
    return statistics.median(v), v
(rd, vd), (rp, vp), (rn, vn), (r10, v10) = (med(a) for a in sys.argv[1:5])
# Latency: the direct p50 (first of each round) and the added latency per
# round (run.sh: p50 minus the mean of the direct runs around it).
(ld, vld), (ap, addp), (an, addn) = (med(a) for a in sys.argv[5:8])
lp, ln = ld + ap, ld + an
def streams(arg):
    # One JSON line per round: medians of the measures, all rounds kept.
    rs = [json.loads(l) for l in arg.splitlines() if l.strip()]
    out = dict(rs[0])
    for k in ("peak_rss_kib", "cpu_s", "first_chunk_ms_p50"):
        out[k] = statistics.median(r[k] for r in rs)
    out["ok"] = min(r["ok"] for r in rs)
    out["rounds"] = rs
    return out
sp, sn = streams(sys.argv[8]), streams(sys.argv[9])
ratios = lambda k: " / ".join("%.2fx" % (a[k] / b[k]) if b[k] else "n/a"
                              for a, b in zip(sp["rounds"], sn["rounds"]))
idle, idle10, n = int(sys.argv[10]), int(sys.argv[11]), int(sys.argv[12])
(ro, vo), so = med(sys.argv[13]), json.loads(sys.argv[14])
(cp, _), (cn, _), (co, _) = med(sys.argv[15]), med(sys.argv[16]), med(sys.argv[17])
(re_, vre), (ce, _), (le, vle) = med(sys.argv[18]), med(sys.argv[19]), med(sys.argv[20])
adde = le
(rs, vrs), (cs, _), (ls, vls) = med(sys.argv[21]), med(sys.argv[22]), med(sys.argv[23])
adds = ls
ss = json.loads(sys.argv[24])
(rh, vrh), (ch, _), (lh, vlh) = med(sys.argv[25]), med(sys.argv[26]), med(sys.argv[27])
addh = lh
(a1p, v1p), (a1n, v1n) = med(sys.argv[29]), med(sys.argv[30])
sh = json.loads(sys.argv[28])
runs = lambda v: " / ".join("%.0f" % x for x in v)
runs3 = lambda v: " / ".join("%.3f" % x for x in v)
print("Medians of %d rounds (each round runs every throughput measure once, interleaved)." % len(vp))
print()
print("| measure | direct to fake | gemini-key-manager | nginx (1 worker) | ratio (ours / nginx) |")
print("|---|---|---|---|---|")
print("| throughput, 64 connections (req/s) | %.0f | %.0f | %.0f | %.2fx |" % (rd, rp, rn, rp / rn))
print("| (all rounds) | %s | %s | %s | |" % (runs(vd), runs(vp), runs(vn)))
print("| CPU per request at 64 connections (us) | | %.0f | %.0f | %.2fx |" % (cp, cn, cp / cn))
print("| p50 latency, 1 connection (ms) (direct: median of rounds; the others: direct + added) | %.3f | %.3f | %.3f | |" % (ld, lp, ln))
print("| added p50 latency (ms), median of rounds | | %.3f | %.3f | %.2fx |" % (ap, an, ap / an if an > 0 else float("nan")))
print("| (added p50, all rounds) | | %s | %s | %s |" % (runs3(addp), runs3(addn), " / ".join("%.2fx" % (a / b) if b > 0 else "n/a" for a, b in zip(addp, addn))))
print("| added p50 latency, all on one CPU (ms), median of rounds | | %.3f | %.3f | %.2fx |" % (a1p, a1n, a1p / a1n if a1n > 0 else float("nan")))
print("| (one CPU, all rounds) | | %s | %s | %s |" % (runs3(v1p), runs3(v1n), " / ".join("%.2fx" % (a / b) if b > 0 else "n/a" for a, b in zip(v1p, v1n))))
print("| peak RSS, %d slow streams (MiB) | | %.1f | %.1f | %.2fx |" % (n, sp["peak_rss_kib"] / 1024, sn["peak_rss_kib"] / 1024, sp["peak_rss_kib"] / sn["peak_rss_kib"]))
print("| CPU time for those streams (s) | | %.2f | %.2f | %.2fx |" % (sp["cpu_s"], sn["cpu_s"], sp["cpu_s"] / sn["cpu_s"] if sn["cpu_s"] else float("nan")))
print("| (streams, all rounds: CPU s; RSS MiB) | | %s; %s | %s; %s | %s; %s |" % (
    " / ".join("%.2f" % r["cpu_s"] for r in sp["rounds"]),
    " / ".join("%.1f" % (r["peak_rss_kib"] / 1024) for r in sp["rounds"]),
    " / ".join("%.2f" % r["cpu_s"] for r in sn["rounds"]),
    " / ".join("%.1f" % (r["peak_rss_kib"] / 1024) for r in sn["rounds"]),
    ratios("cpu_s"), ratios("peak_rss_kib")))
print("| streams completed | | %d | %d | |" % (sp["ok"], sn["ok"]))
print("| first-chunk p50 (ms) | | %s | %s | |" % (sp["first_chunk_ms_p50"], sn["first_chunk_ms_p50"]))
print("| idle RSS, 3 keys / 10,000 keys (MiB) | | %.1f / %.1f | | |" % (idle / 1024, idle10 / 1024))
print("| throughput, 10,000 keys with 9,999 benched (req/s) | | %.0f (%.2fx of 3 keys; rounds %s) | | |" % (r10, r10 / rp, runs(v10)))
print()
print("| reference relays (same header swap, nothing else) | evhttp + evhttp (`bench/evrelay.c`) | evhttp + libcurl (`bench/stackrelay.c`) | libhttp-parser server + libcurl (`bench/hprelay.c`) |")
print("|---|---|---|---|")
print("| throughput, 64 connections (req/s) | %.0f (rounds %s) | %.0f (rounds %s) | %.0f (rounds %s) |" % (re_, runs(vre), rs, runs(vrs), rh, runs(vrh)))
print("| throughput / nginx | %.2fx | %.2fx | %.2fx |" % (re_ / rn, rs / rn, rh / rn))
print("| gemini-key-manager throughput / relay | %.2fx | %.2fx | %.2fx |" % (rp / re_, rp / rs, rp / rh))
print("| CPU per request at 64 connections (us) | %.0f | %.0f | %.0f |" % (ce, cs, ch))
print("| CPU per request / nginx | %.2fx | %.2fx | %.2fx |" % (ce / cn, cs / cn, ch / cn))
print("| gemini-key-manager CPU per request / relay | %.2fx | %.2fx | %.2fx |" % (cp / ce, cp / cs, cp / ch))
nz = lambda a, b: a / b if b > 0 else float("nan")
print("| added p50 latency (ms), median of rounds | %.3f | %.3f | %.3f |" % (adde, adds, addh))
print("| added p50 latency / nginx | %.2fx | %.2fx | %.2fx |" % (nz(adde, an), nz(adds, an), nz(addh, an)))
print("| gemini-key-manager added p50 latency / relay | %.2fx | %.2fx | %.2fx |" % (nz(ap, adde), nz(ap, adds), nz(ap, addh)))
print("| CPU time for %d slow streams (s) | | %.2f (completed %d) | %.2f (completed %d) |" % (n, ss["cpu_s"], ss["ok"], sh["cpu_s"], sh["ok"]))
print("| CPU for those streams / nginx | | %.2fx | %.2fx |" % (nz(ss["cpu_s"], sn["cpu_s"]), nz(sh["cpu_s"], sn["cpu_s"])))
print("| gemini-key-manager CPU for those streams / relay | | %.2fx | %.2fx |" % (nz(sp["cpu_s"], ss["cpu_s"]), nz(sp["cpu_s"], sh["cpu_s"])))
print("| peak RSS, %d slow streams (MiB) / nginx | | %.1f / %.2fx | %.1f / %.2fx |" % (n, ss["peak_rss_kib"] / 1024, ss["peak_rss_kib"] / sn["peak_rss_kib"], sh["peak_rss_kib"] / 1024, sh["peak_rss_kib"] / sn["peak_rss_kib"]))
print()
print("| OpenAI surface (translated) | gemini-key-manager | vs native passthrough |")
print("|---|---|---|")
print("| chat.completions throughput, 64 connections (req/s) | %.0f (rounds %s) | %.2fx |" % (ro, runs(vo), ro / rp))
print("| CPU per chat.completions request (us) | %.0f | %.2fx |" % (co, co / cp))
print("| %d translated streams: peak RSS (MiB) | %.1f | %.2fx |" % (n, so["peak_rss_kib"] / 1024, so["peak_rss_kib"] / sp["peak_rss_kib"]))
print("| %d translated streams: CPU time (s) | %.2f | %.2fx |" % (n, so["cpu_s"], so["cpu_s"] / sp["cpu_s"] if sp["cpu_s"] else float("nan")))
print("| %d translated streams: first-chunk p50 (ms) / completed | %s / %d | |" % (n, so["first_chunk_ms_p50"], so["ok"]))
PY
