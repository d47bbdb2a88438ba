# baetyl-runtime-grpc: baetyl-runtime plus gRPC and Protobuf for the function manager and the
# SQL runtime (libgrpc++1.51 brings libgrpc29, libprotobuf32, Abseil, RE2 and c-ares); the Python
# runtime starts from it as well, since python3-grpcio shares Abseil, RE2, c-ares and Protobuf.
ARG TAG=latest
FROM baetyl-runtime:${TAG}
LABEL org.opencontainers.image.title="baetyl-runtime-grpc"
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libgrpc++1.51 \
 && rm -rf /var/lib/apt/lists/*
