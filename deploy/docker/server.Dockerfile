# reelfarm-server (and reelctl) on Debian 12. Build from the repository root:
#   docker build -f deploy/docker/server.Dockerfile -t reelfarm/server:0.1.0 .
FROM debian:12 AS build
WORKDIR /src
COPY scripts/setup-deps.sh scripts/setup-deps.sh
RUN bash scripts/setup-deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
RUN REELFARM_CMAKE_ARGS="-DREELFARM_BUILD_TESTS=OFF -DREELFARM_BUILD_BENCHMARKS=OFF" \
    REELFARM_JOBS="$(nproc)" bash scripts/build.sh reelfarm-server reelfarm-worker reelctl

FROM debian:12-slim
COPY deploy/docker/runtime-packages.txt /tmp/
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      $(cat /tmp/runtime-packages.txt) \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt \
 && useradd --system --uid 10001 --home-dir /var/lib/reelfarm --create-home reelfarm
COPY --from=build /src/build/server/reelfarm-server /src/build/cli/reelctl /usr/local/bin/
# --local-workers needs the worker binary beside the server.
COPY --from=build /src/build/worker/reelfarm-worker /usr/local/bin/
# The model packages: the server checks a generate job's model (stride, frames, prompts)
# at submit; the workers' images carry the same folder.
COPY models/ /opt/reelfarm/models/
# The shipped OCIO config where the binaries look for it (README "Colour management").
COPY media/ocio/reelfarm.ocio /usr/local/share/reelfarm/ocio/reelfarm.ocio
USER 10001:10001
# /var/lib/reelfarm: SQLite state (state.db) and task logs; /mnt/farm: the storage root.
VOLUME ["/var/lib/reelfarm"]
EXPOSE 7700 9770
# Over TLS: give the container REELFARM_TLS_CA (and a certificate naming 127.0.0.1), or
# REELFARM_INSECURE=1 for a server run with --insecure.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["reelctl", "--server", "127.0.0.1:7700", "health"]
ENTRYPOINT ["reelfarm-server", "--listen", "0.0.0.0:7700", "--metrics-listen", "0.0.0.0:9770", \
            "--data-dir", "/var/lib/reelfarm", "--storage-root", "/mnt/farm", \
            "--model-path", "/opt/reelfarm/models", "--log-format", "json"]
