# Shared by the benchmark scripts (sourced, not run): set-up, the work
# directory, free ports and the nginx reference. Expects `here` (the
# repository) to be set and `set -euo pipefail` in the caller.

# Install what is missing and build the named targets in build-bench/
# (Release).
bench_build() { # target...
  cd "$here"
  scripts/deps.sh --bench
  cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build-bench -j"$(nproc)" --target "$@" >/dev/null
}

# A fresh work directory in W; every pid added to PIDS is killed on exit
# (and W removed unless BENCH_KEEP is set).
bench_workdir() { # name
  W="$(mktemp -d "/tmp/gkm-$1-XXXXXX")"
  PIDS=()
  trap bench_cleanup EXIT
}
bench_cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -z "${BENCH_KEEP:-}" ]; then rm -rf "$W"; fi
}

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# nginx with one worker in front of the fake, swapping the key header and
# nothing else; started in the background, its master's pid in NGMASTER
# and all its pids in NGPIDS (comma-separated). An empty key swaps no
# header; listen-options (e.g. "ssl http2") and server-lines (directives
# for the server block) are optional.
bench_nginx() { # fake-port nginx-port key [listen-options] [server-lines]
  local keyline=""
  [ -n "$3" ] && keyline="proxy_set_header x-goog-api-key \"$3\";"
  cat > "$W/nginx.conf" <<NG
worker_processes 1;
daemon off;
user root;
pid $W/nginx.pid;
error_log $W/nginx-error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $W/nginx-body;
  proxy_temp_path $W/nginx-proxy;
  upstream fake { server 127.0.0.1:$1; keepalive 256; }
  server {
    listen 127.0.0.1:$2 ${4:-};
    client_max_body_size 50m;
    ${5:-}
    location / {
      proxy_pass http://fake;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      $keyline
      proxy_buffering off;
    }
  }
}
NG
  nginx -c "$W/nginx.conf" -p "$W" &
  NGMASTER=$!
  PIDS+=($NGMASTER)
  sleep 0.5
  NGPIDS="$(pgrep -P "$NGMASTER" | tr '\n' ',')$NGMASTER"
}

# wrk scripts in W: post.lua (a small generateContent request) and chat.lua
# (the same as chat.completions), authenticated with $BENCH_AUTH (the
# proxy's default token when unset).
bench_wrk_scripts() {
  cat > "$W/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"contents":[{"role":"user","parts":[{"text":"hello benchmark"}]}]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["x-goog-api-key"] = os.getenv("BENCH_AUTH") or "PLACEHOLDER_GEMINI_TOKEN"
LUA
  cat > "$W/chat.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"hello benchmark"}]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_AUTH") or "PLACEHOLDER_GEMINI_TOKEN")
LUA
}
