# Gemini Key Manager: a small image that runs the proxy as a non-root user.
#
#   docker build -t gemini-key-manager .
#   docker run -d --name gkm -p 127.0.0.1:5000:5000 \
#     -e GKM_TOKEN="$(head -c 24 /dev/urandom | base64)" \
#     -v gkm-data:/data -v "$PWD/key.txt:/data/key.txt:ro" gemini-key-manager
#
# The proxy listens on 0.0.0.0:5000 inside the container and therefore
# refuses to start with the default token: set GKM_TOKEN (or GKM_TOKEN_FILE).
# See docs/deployment.md.

# ---- build stage --------------------------------------------------------
FROM debian:bookworm-slim AS build

# tests/CMakeLists.txt is part of the CMake project, so configuring needs
# cmocka and python3 even though only the proxy is built here.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      gcc libc6-dev make cmake pkg-config \
      libevent-dev libhttp-parser-dev libcurl4-openssl-dev zlib1g-dev libjansson-dev \
      libcmocka-dev python3-minimal \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DGKM_WERROR=OFF \
 && cmake --build build --target gemini-key-manager -j"$(nproc)" \
 && install -D -m 0755 build/gemini-key-manager /out/gemini-key-manager \
 && strip /out/gemini-key-manager

# ---- runtime stage ------------------------------------------------------
FROM debian:bookworm-slim

LABEL org.opencontainers.image.title="gemini-key-manager" \
      org.opencontainers.image.description="Use many Google Gemini API keys as one: rotation, usage tracking, 429 failover"

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libevent-2.1-7 libhttp-parser2.9 libcurl4 zlib1g libjansson4 ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /data \
      --no-create-home --shell /usr/sbin/nologin gkm \
 && install -d -m 0700 -o gkm -g gkm /data

COPY --from=build /out/gemini-key-manager /usr/local/bin/gemini-key-manager

# key.txt is read from, and key_usage.txt written to, the working directory
# (the defaults ./key.txt and ./key_usage.txt). Mount a directory here: the
# usage file is replaced by rename(2), which a single-file bind mount blocks.
WORKDIR /data
VOLUME ["/data"]

ENV GKM_LISTEN=0.0.0.0:5000
EXPOSE 5000
USER gkm

# The proxy is PID 1: SIGTERM (docker stop) starts its graceful drain.
ENTRYPOINT ["/usr/local/bin/gemini-key-manager"]
