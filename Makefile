.PHONY: test build sim-image ci

test:
	go test ./...

build:
	CGO_ENABLED=0 go build -o bin/vgrid ./cmd/vgrid
	CGO_ENABLED=0 go build -o bin/vllm-sim ./cmd/vllm-sim

# The vllm-sim binary and its Docker image, together.
sim-image:
	scripts/build-sim-image.sh vllm-sim:latest

ci:
	bash .ci/run
