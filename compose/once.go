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
			return "", fmt.Errorf("image %s is not on the engine at %s: %w", image, d.cli.DaemonHost(), err)
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
	cfg := &container.Config{Image: image, Cmd: cmd, Entrypoint: entrypoint, NetworkDisabled: true,
		Labels: map[string]string{"io.vgrid.role": "help"}}
	cr, err := d.cli.ContainerCreate(ctx, client.ContainerCreateOptions{Config: cfg, HostConfig: &container.HostConfig{NetworkMode: "none"}})
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
