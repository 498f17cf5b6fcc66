# reelfarm-worker on NVIDIA GPUs, built against a CUDA LibTorch instead of Debian's
# CPU one (the CMake option CMAKE_PREFIX_PATH picks it; see the top CMakeLists.txt).
# Build from the repository root (needs network access for the LibTorch archive):
#   docker build -f deploy/docker/worker-cuda.Dockerfile -t reelfarm/worker-cuda:0.1.0 .
# Run with the NVIDIA container toolkit (`--gpus all`, or nvidia.com/gpu on Kubernetes):
# it mounts the driver, including libnvidia-ml.so.1, which the worker loads for its
# reelfarm_gpu_* metrics.
ARG LIBTORCH_URL=https://download.pytorch.org/libtorch/cu121/libtorch-cxx11-abi-shared-with-deps-2.1.2%2Bcu121.zip

FROM debian:12 AS build
ARG LIBTORCH_URL
WORKDIR /src
COPY scripts/setup-deps.sh scripts/setup-deps.sh
RUN bash scripts/setup-deps.sh \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends curl unzip \
 && curl -fsSL -o /tmp/libtorch.zip "${LIBTORCH_URL}" \
 && unzip -q /tmp/libtorch.zip -d /opt && rm /tmp/libtorch.zip \
 && rm -rf /var/lib/apt/lists/*
COPY . .
RUN REELFARM_CMAKE_ARGS="-DCMAKE_PREFIX_PATH=/opt/libtorch -DREELFARM_BUILD_TESTS=OFF -DREELFARM_BUILD_BENCHMARKS=OFF" \
    REELFARM_JOBS="$(nproc)" bash scripts/build.sh reelfarm-worker reelctl

FROM debian:12-slim
COPY deploy/docker/runtime-packages.txt /tmp/
# Debian's CPU LibTorch is not needed: the CUDA one (with its CUDA and cuDNN
# libraries) is copied in below.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      $(grep -v '^libtorch' /tmp/runtime-packages.txt) libgomp1 \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt \
 && useradd --system --uid 10001 --home-dir /var/lib/reelfarm --create-home reelfarm
COPY --from=build /opt/libtorch/lib/ /opt/libtorch/lib/
COPY --from=build /src/build/worker/reelfarm-worker /src/build/cli/reelctl /usr/local/bin/
COPY models/ /opt/reelfarm/models/
# The shipped OCIO config where the binaries look for it (README "Colour management").
COPY media/ocio/reelfarm.ocio /usr/local/share/reelfarm/ocio/reelfarm.ocio
ENV LD_LIBRARY_PATH=/opt/libtorch/lib \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility,video
USER 10001:10001
EXPOSE 9771 9772
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
  CMD ["reelctl", "--server", "127.0.0.1:9772", "--insecure", "health"]
ENTRYPOINT ["reelfarm-worker", "--device", "cuda:0", "--storage-root", "/mnt/farm", \
            "--model-path", "/opt/reelfarm/models", \
            "--metrics-listen", "0.0.0.0:9771", "--health-listen", "0.0.0.0:9772", \
            "--log-format", "json"]
