#!/usr/bin/env bash
# Builds the vllm-sim binary (static) and its Docker image in one go.
#   scripts/build-sim-image.sh [IMAGE]      default IMAGE: vllm-sim:latest
# Needs: Go, a Docker engine, static busybox and bash (Debian: busybox-static, bash-static).
set -euo pipefail
cd "$(dirname "$0")/.."
image=${1:-vllm-sim:latest}
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT

CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$ctx/vllm-sim" ./cmd/vllm-sim

busybox=${BUSYBOX:-/bin/busybox}
if [ ! -x "$busybox" ] || ldd "$busybox" >/dev/null 2>&1; then
  echo "build-sim-image: $busybox is missing or not static; install Debian's busybox-static (apt-get install busybox-static) or set BUSYBOX=/path/to/static/busybox" >&2
  exit 1
fi
cp "$busybox" "$ctx/busybox"
bash_static=${BASH_STATIC:-/bin/bash-static}
if [ ! -x "$bash_static" ]; then
  echo "build-sim-image: $bash_static is missing; install Debian's bash-static or set BASH_STATIC" >&2
  exit 1
fi
cp "$bash_static" "$ctx/bash"
cp cmd/vllm-sim/Dockerfile "$ctx/Dockerfile"
DOCKER_BUILDKIT=0 docker build -q -t "$image" "$ctx" >/dev/null 2>"$ctx/build.log" || { cat "$ctx/build.log" >&2; exit 1; }
echo "built $image"
