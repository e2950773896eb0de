package compose

import (
	"bytes"
	"context"
	"fmt"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// ImageID returns the ID of an image present on the engine
// ("sha256:..."), or an error that says it is not there.
func (d *Deployer) ImageID(ctx context.Context, image string) (string, error) {
	res, err := d.cli.ImageInspect(ctx, image)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return "", fmt.Errorf("image %s is not on the engine at %s: %w", image, d.addr, err)
		}
		return "", fmt.Errorf("inspect image %s: %w", image, err)
	}
	return res.ID, nil
}

// RunOnce runs a throwaway container of image with no network and returns
// what it printed (stdout then stderr, as written) and its exit status. A
// nil entrypoint keeps the image's. The container is removed in every
// case; past timeout it is killed and an error returned.
func (d *Deployer) RunOnce(ctx context.Context, image string, entrypoint, cmd []string, timeout time.Duration) (string, int, error) {
	return d.runOnce(ctx, image, entrypoint, cmd, nil, timeout)
}

// GPUQuery runs nvidia-smi with args on the engine's host, in a
// throwaway container of image given every GPU (the NVIDIA runtime
// mounts nvidia-smi in it), and returns what it printed: the GPUs of
// that host, wherever it is.
func (d *Deployer) GPUQuery(ctx context.Context, image string, args ...string) (string, error) {
	gpus := []container.DeviceRequest{{Driver: "nvidia", Count: -1, Capabilities: [][]string{{"gpu", "utility"}}}}
	out, code, err := d.runOnce(ctx, image, []string{"nvidia-smi"}, args, gpus, time.Minute)
	if err == nil && code != 0 {
		err = fmt.Errorf("nvidia-smi on %s exited with status %d: %s", d.addr, code, out)
	}
	return out, err
}

func (d *Deployer) runOnce(ctx context.Context, image string, entrypoint, cmd []string, devices []container.DeviceRequest, timeout time.Duration) (string, int, error) {
	cfg := &container.Config{Image: image, Cmd: cmd, Entrypoint: entrypoint, NetworkDisabled: true,
		Labels: map[string]string{"io.vgrid.role": "help"}}
	host := &container.HostConfig{NetworkMode: "none"}
	host.DeviceRequests = devices
	cr, err := d.cli.ContainerCreate(ctx, client.ContainerCreateOptions{Config: cfg, HostConfig: host})
	if err != nil {
		return "", 0, fmt.Errorf("create a container of %s: %w", image, err)
	}
	defer d.cli.ContainerRemove(context.WithoutCancel(ctx), cr.ID, client.ContainerRemoveOptions{Force: true})
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	wait := d.cli.ContainerWait(wctx, cr.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
	if _, err := d.cli.ContainerStart(ctx, cr.ID, client.ContainerStartOptions{}); err != nil {
		return "", 0, fmt.Errorf("start a container of %s: %w", image, err)
	}
	var code int
	select {
	case r := <-wait.Result:
		if r.Error != nil {
			return "", 0, fmt.Errorf("container of %s: %s", image, r.Error.Message)
		}
		code = int(r.StatusCode)
	case err := <-wait.Error:
		if wctx.Err() != nil {
			return "", 0, fmt.Errorf("%s %v did not finish within %s", image, append(entrypoint, cmd...), timeout)
		}
		return "", 0, fmt.Errorf("wait for the container of %s: %w", image, err)
	}
	rc, err := d.cli.ContainerLogs(ctx, cr.ID, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return "", code, fmt.Errorf("read the output of %s: %w", image, err)
	}
	defer rc.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, rc); err != nil {
		return out.String(), code, fmt.Errorf("read the output of %s: %w", image, err)
	}
	return out.String(), code, nil
}
