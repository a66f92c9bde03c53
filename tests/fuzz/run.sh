#!/bin/sh
# run.sh - build the libFuzzer drivers with clang and run each for a bounded
# time.
#
#   tests/fuzz/run.sh [seconds-per-target] [target...]
#
# Defaults: 20 s each, all targets (fuzz_sse fuzz_jsonw fuzz_affinity
# fuzz_oai_req fuzz_oai_resp fuzz_http fuzz_tap fuzz_h1).
# Built directly with clang (the main CMake build uses gcc) with
# -fsanitize=fuzzer,address,undefined against the pure sources they need.
# Needs clang, libjansson-dev, and for fuzz_http libevent-dev and
# libhttp-parser-dev (fuzz_h1: also libcurl4-openssl-dev and zlib1g-dev);
# installs nothing.
#
# Output goes to $FUZZ_OUT (default <repo>/build-fuzz): the binaries, the
# growing corpus per target (seeds stay untouched in tests/fuzz/corpus/),
# crash artifacts and one log per target. Exit status is non-zero if any
# target found a crash, leak, timeout or sanitizer error.
set -eu

secs=${1:-20}
[ $# -gt 0 ] && shift
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${FUZZ_OUT:-$root/build-fuzz}
cc=${CC_FUZZ:-clang}
targets=${*:-fuzz_sse fuzz_jsonw fuzz_affinity fuzz_oai_req fuzz_oai_resp fuzz_http fuzz_tap fuzz_h1}

case $secs in
    ''|*[!0-9]*) echo "run.sh: seconds must be a number" >&2; exit 2 ;;
esac
command -v "$cc" >/dev/null 2>&1 || { echo "run.sh: $cc not found" >&2; exit 2; }

jcflags=$(pkg-config --cflags jansson 2>/dev/null || true)
jlibs=$(pkg-config --libs jansson 2>/dev/null || echo -ljansson)
evcflags=$(pkg-config --cflags libevent 2>/dev/null || true)
evlibs="$(pkg-config --libs libevent 2>/dev/null || echo -levent) -lhttp_parser"
cflags="-std=c17 -g -O1 -fno-omit-frame-pointer
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
        -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -I$root/src $jcflags"

core="util.c buf.c sse.c jsonw.c"
oai="$core oai_err.c oai_schema.c oai_media.c oai_msgs.c oai_req.c
     oai_resp.c oai_stream.c oai_misc.c"

srcs_for() {
    case $1 in
        fuzz_sse|fuzz_jsonw) echo "$core" ;;
        fuzz_affinity) echo "util.c affinity.c" ;;
        fuzz_http) echo "util.c buf.c log.c http.c http_reply.c" ;;
        fuzz_tap) echo "util.c buf.c gerror.c tap.c" ;;
        fuzz_h1) echo "util.c buf.c upstream_h1.c" ;;
        *) echo "$oai" ;;
    esac
}

mkdir -p "$out"
status=0
for t in $targets; do
    src=""
    for f in $(srcs_for "$t"); do src="$src $root/src/$f"; done
    echo "== building $t"
    libs=$jlibs
    [ "$t" = fuzz_http ] && libs="$jlibs $evcflags $evlibs"
    [ "$t" = fuzz_h1 ] && libs="$jlibs $evcflags $evlibs $(pkg-config --cflags --libs libcurl zlib 2>/dev/null || echo -lcurl -lz)"
    # shellcheck disable=SC2086
    "$cc" $cflags -o "$out/$t" "$here/$t.c" $src $libs
    dict=$here/json.dict
    [ -f "$here/$t.dict" ] && dict=$here/$t.dict
    mkdir -p "$out/corpus/$t" "$out/artifacts/$t"
    echo "== running $t for ${secs}s"
    if "$out/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -max_len=65536 -dict="$dict" -print_final_stats=1 \
        -artifact_prefix="$out/artifacts/$t/" \
        "$out/corpus/$t" "$here/corpus/$t" >"$out/$t.log" 2>&1; then
        echo "   ok: $(grep -E '^(#[0-9]+.*DONE|Done [0-9]+ runs)' "$out/$t.log" | tail -1)"
    else
        status=1
        echo "   FAILED: see $out/$t.log and $out/artifacts/$t/"
        tail -40 "$out/$t.log"
    fi
done
exit $status
