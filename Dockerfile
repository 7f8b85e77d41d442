# syntax=docker/dockerfile:1
#
# otelcol-oomkill container image. Used by examples/kubernetes/03-daemonset.yaml.
#
# Anywhere with docker (BuildKit, the default builder) or podman/buildah and network access to
# Docker Hub, the Go module proxy and Debian's mirrors:
#   docker build -t otelcol-oomkill:0.1.0 .
#   buildah bud -t otelcol-oomkill:0.1.0 .
#
# Without a registry (this project's CI): the base images are arguments, built locally from Debian
# packages by test/image/build.sh (debootstrap + the host's Go), which then runs
#   buildah bud --pull-never --network host --layers \
#     --build-arg BUILD_IMAGE=<local Go base> --build-arg RUNTIME_IMAGE=<local bookworm> ...
# and exports an OCI archive for `ctr -n k8s.io images import` (`make image`).
# Both bases must be the same Debian release: the binary links the glibc and libsystemd of the build
# stage, and runs on those of the runtime stage.
ARG BUILD_IMAGE=golang:1.26-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---- build: `make build` (ocb from builder-config.yaml) -> bin/otelcol-oomkill -------------------
FROM ${BUILD_IMAGE} AS build

# The oomkill receiver reads the journal through libsystemd: cgo against its headers.
# (gcc, make and pkg-config are already in the golang image.)
RUN apt-get update \
 && apt-get install -y --no-install-recommends libsystemd-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# Only what the build reads (the repository's bin/ and _build/ are never sent or used): the
# Makefile and the ocb manifest, and the local Go module that provides the receiver, the
# processor and the exporter (ocb replaces it with `path: ./`). test/harness/ too: the
# components' tests import it, and ocb's `go mod tidy` of the distribution resolves their imports.
COPY go.mod go.sum Makefile builder-config.yaml ./
COPY internal/ internal/
COPY receiver/ receiver/
COPY processor/ processor/
COPY exporter/ exporter/
COPY test/harness/ test/harness/

# The caches make rebuilds take minutes instead of about six (they are not part of the image);
# `RUN --mount=type=cache` works in BuildKit and in buildah.
RUN --mount=type=cache,target=/root/.cache/go-build \
    --mount=type=cache,target=/go/pkg/mod \
    make build \
 && ./bin/otelcol-oomkill --version

# ---- runtime ----------------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE}

# libsystemd0: the journal reader's library (same Debian release as the build stage, so the glibc
# and libsystemd the binary was built against). ca-certificates: public CAs for TLS to OTLP and log
# backends (the Kubernetes API is verified with the service account's own CA).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libsystemd0 ca-certificates \
 && rm -rf /var/lib/apt/lists/*

COPY --from=build /src/bin/otelcol-oomkill /otelcol-oomkill

# Non-root, uid and gid 10001 (a bare `USER 10001` would leave gid 0 wherever runAsGroup is unset).
# To read the node's journal the pod adds the journal's group (supplementalGroups) and the
# checkpoint directory is given to this uid: see examples/kubernetes/03-daemonset.yaml.
USER 10001:10001

# 9464: Prometheus exporter (container_oom_kill_count_total); 8888: the collector's own metrics.
EXPOSE 9464 8888

ENTRYPOINT ["/otelcol-oomkill"]
CMD ["--config", "/etc/otelcol-oomkill/config.yaml"]
