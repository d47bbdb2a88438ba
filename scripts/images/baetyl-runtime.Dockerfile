# baetyl-runtime: what every module image shares, on top of debian:bookworm-slim: OpenSSL (each
# C++ module links libssl3; the Node runtime needs it as well) and the CA certificates.
# Built by scripts/build-images.sh before the module images; the C++ modules link the rest of
# their libraries statically (libstdc++, yaml-cpp, spdlog, fmt, SQLite).
ARG BASE=debian:bookworm-slim
FROM ${BASE}
LABEL org.opencontainers.image.title="baetyl-runtime"
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libssl3 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
