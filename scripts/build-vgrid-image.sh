#!/usr/bin/env bash
# Builds the static vgrid binary and its FROM-scratch daemon image.
#   scripts/build-vgrid-image.sh [IMAGE]      default IMAGE: vgrid:latest
set -euo pipefail
cd "$(dirname "$0")/.."
image=${1:-vgrid:latest}
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
version=$(git describe --always --dirty 2>/dev/null || echo dev)
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X github.com/vgrid/vgrid/internal/buildinfo.override=$version" -o "$ctx/vgrid" ./cmd/vgrid
cp Dockerfile "$ctx/Dockerfile"
DOCKER_BUILDKIT=0 docker build -q -t "$image" "$ctx" >/dev/null 2>"$ctx/build.log" || { cat "$ctx/build.log" >&2; exit 1; }
echo "built $image"
