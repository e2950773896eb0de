.PHONY: test build sim-image vgrid-image ci

test:
	go test ./...

build:
	CGO_ENABLED=0 go build -o bin/vgrid ./cmd/vgrid
	CGO_ENABLED=0 go build -o bin/vllm-sim ./cmd/vllm-sim

# The vllm-sim binary and its Docker image, together.
sim-image:
	scripts/build-sim-image.sh vllm-sim:latest

# vgrid serve as a FROM-scratch image.
vgrid-image:
	scripts/build-vgrid-image.sh vgrid:latest

ci:
	bash .ci/run
