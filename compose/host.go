package compose

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"
)

// Host is the engine's address, for messages.
func (d *Deployer) Host() string { return d.addr }

// Alive reports whether the engine answers a ping within a few seconds;
// the error says how it did not.
func (d *Deployer) Alive(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := d.cli.Ping(pctx, client.PingOptions{})
	return err
}

// CheckHost checks on the engine's host, before anything runs there, what
// a trial needs: the image (and the NVIDIA runtime for a GPU service,
// Preflight), and every bind-mount source. The profile is read here, so
// its relative paths name folders of this machine: on another host they
// must exist too, or the engine would mount an empty folder it creates.
// local says the engine runs on this machine, where a missing source of
// a plain bind is created, as docker compose does.
func (d *Deployer) CheckHost(ctx context.Context, s *Spec, local bool) error {
	if err := d.Preflight(ctx, s); err != nil {
		return err
	}
	var sources []string
	for _, b := range s.Host.Binds {
		if src, _, ok := strings.Cut(b, ":"); ok && strings.HasPrefix(src, "/") && !local {
			sources = append(sources, src)
		}
	}
	for _, m := range s.Host.Mounts {
		if m.Type == mount.TypeBind {
			sources = append(sources, m.Source)
		}
	}
	if len(sources) == 0 {
		return nil
	}
	// A container created, never started, with each source bound: the
	// engine refuses a source that does not exist on its host.
	var mounts []mount.Mount
	for i, src := range sources {
		mounts = append(mounts, mount.Mount{Type: mount.TypeBind, Source: src, Target: fmt.Sprintf("/vgrid-check/%d", i), ReadOnly: true})
	}
	cr, err := d.cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config:     &container.Config{Image: s.Config.Image, Entrypoint: []string{"/vgrid-check"}, Labels: map[string]string{LabelManaged: "true"}},
		HostConfig: &container.HostConfig{Mounts: mounts},
	})
	if err != nil {
		return fmt.Errorf("service %s: a bind-mount source does not exist on the Docker host %s (%v); the profile's paths are resolved on this machine, so create them there too or use absolute paths that exist on that host; nothing was started",
			s.Service, d.addr, err)
	}
	_, err = d.cli.ContainerRemove(context.WithoutCancel(ctx), cr.ID, client.ContainerRemoveOptions{Force: true})
	return err
}

// Down removes the service's containers and, when nothing else uses it,
// the project's network (a slot's project, at the end of a run).
func (d *Deployer) Down(ctx context.Context, s *Spec) error {
	cs, err := d.existing(ctx, s)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range cs {
		timeout := int(s.StopTimeout.Seconds())
		if _, err := d.cli.ContainerStop(ctx, c.ID, client.ContainerStopOptions{Timeout: &timeout}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("stop %.12s: %w", c.ID, err))
		}
		if _, err := d.cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove %.12s: %w", c.ID, err))
		}
	}
	if s.Network != "" && len(errs) == 0 {
		if _, err := d.cli.NetworkRemove(ctx, s.Network, client.NetworkRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) && !cerrdefs.IsConflict(err) {
			d.log.Debug().Err(err).Str("network", s.Network).Msg("network kept")
		}
	}
	return errors.Join(errs...)
}

// Exec runs cmd in a running container through the engine's API (so on
// the engine's host, wherever that is) and streams its standard output
// until it ends or ctx does; its standard error is kept for the message.
// Close returns how it ended: an error for a non-zero exit status.
func (d *Deployer) Exec(ctx context.Context, containerID string, cmd []string) (io.ReadCloser, error) {
	ex, err := d.cli.ExecCreate(ctx, containerID, client.ExecCreateOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return nil, fmt.Errorf("exec %s in %.12s on %s: %w", cmd[0], containerID, d.addr, err)
	}
	att, err := d.cli.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{})
	if err != nil {
		return nil, fmt.Errorf("exec %s in %.12s on %s: %w", cmd[0], containerID, d.addr, err)
	}
	pr, pw := io.Pipe()
	s := &execStream{PipeReader: pr, d: d, id: ex.ID, name: cmd[0], done: make(chan struct{})}
	go func() {
		defer close(s.done)
		_, err := stdcopy.StdCopy(pw, &s.stderr, att.Reader)
		pw.CloseWithError(err)
	}()
	go func() {
		select {
		case <-ctx.Done():
			att.Close() // ends the copy; the command itself ends with its container or its next write
		case <-s.done:
			att.Close()
		}
	}()
	return s, nil
}

type execStream struct {
	*io.PipeReader
	d      *Deployer
	id     string
	name   string
	done   chan struct{}
	stderr bytes.Buffer
}

func (s *execStream) Close() error {
	s.PipeReader.Close()
	<-s.done
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := s.d.cli.ExecInspect(ctx, s.id, client.ExecInspectOptions{})
	if err != nil || r.Running {
		return err
	}
	if r.ExitCode != 0 {
		return fmt.Errorf("%s exited with status %d: %s", s.name, r.ExitCode, strings.TrimSpace(s.stderr.String()))
	}
	return nil
}
