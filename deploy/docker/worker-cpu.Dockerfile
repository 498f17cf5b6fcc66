# reelfarm-worker on CPU (Debian 12's LibTorch). Build from the repository root:
#   docker build -f deploy/docker/worker-cpu.Dockerfile -t reelfarm/worker-cpu:0.1.0 .
FROM debian:12 AS build
WORKDIR /src
COPY scripts/setup-deps.sh scripts/setup-deps.sh
RUN bash scripts/setup-deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
RUN REELFARM_CMAKE_ARGS="-DREELFARM_BUILD_TESTS=OFF -DREELFARM_BUILD_BENCHMARKS=OFF" \
    REELFARM_JOBS="$(nproc)" bash scripts/build.sh reelfarm-worker reelctl

FROM debian:12-slim
COPY deploy/docker/runtime-packages.txt /tmp/
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      $(cat /tmp/runtime-packages.txt) \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt \
 && useradd --system --uid 10001 --home-dir /var/lib/reelfarm --create-home reelfarm
COPY --from=build /src/build/worker/reelfarm-worker /src/build/cli/reelctl /usr/local/bin/
COPY models/ /opt/reelfarm/models/
# The shipped OCIO config where the binaries look for it (README "Colour management").
COPY media/ocio/reelfarm.ocio /usr/local/share/reelfarm/ocio/reelfarm.ocio
USER 10001:10001
EXPOSE 9771 9772
# Ready (SERVING) once the models are warm; see deploy/README.md.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["reelctl", "--server", "127.0.0.1:9772", "--insecure", "health"]
# The server address and the storage root come from the environment / arguments:
#   docker run ... reelfarm/worker-cpu --server farm:7700
ENTRYPOINT ["reelfarm-worker", "--storage-root", "/mnt/farm", \
            "--model-path", "/opt/reelfarm/models", \
            "--metrics-listen", "0.0.0.0:9771", "--health-listen", "0.0.0.0:9772", \
            "--log-format", "json"]
