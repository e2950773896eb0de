package composedriver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/vgrid/vgrid/benchmark"
	"github.com/vgrid/vgrid/compose"
	"github.com/vgrid/vgrid/driver"
	"github.com/vgrid/vgrid/internal/diskwait"
	"github.com/vgrid/vgrid/orchestrator"
	"github.com/vgrid/vgrid/profiles"
)

// A slot's driver runs candidates in a copy of the service: the
// candidate's rendering and a generated override (the slot's GPUs, port,
// container name and project) are written beside the profile as
// NAME.vgrid-slotN.yml and NAME.vgrid-slotN.override.yml, and loaded in
// place of the profile file; the user's profile and service are not
// touched (the target's own driver crowns the champion at the end).

// NewComposeSlot connects to the Docker engine of slot i of a compose
// target and reads the original profile; nothing is changed.
func NewComposeSlot(ctx context.Context, t orchestrator.Target, i int, environ []string, log zerolog.Logger) (*Compose, error) {
	st, err := t.SlotTarget(i)
	if err != nil {
		return nil, err
	}
	own := t
	own.Slots, own.DockerHost, own.Endpoint = nil, st.DockerHost, st.Endpoint
	c, err := NewCompose(ctx, own, environ, log)
	if err != nil {
		return nil, fmt.Errorf("target.slots[%d]: %w", i, err)
	}
	def := t.Slots[i]
	c.slot = &compose.Slot{Index: i, GPUs: def.GPUs, Port: def.Port, Project: orchestrator.SlotProject(c.projectName, i)}
	return c, nil
}

// slotFiles are where a slot's rendering and override are written.
func (c *Compose) slotFiles() (rendering, override string) {
	ext := filepath.Ext(c.file)
	base := strings.TrimSuffix(c.file, ext)
	n := c.slot.Index + 1
	return fmt.Sprintf("%s.vgrid-slot%d%s", base, n, ext), fmt.Sprintf("%s.vgrid-slot%d.override%s", base, n, ext)
}

// slotProject is the project a slot loads: the user's files with the
// rendering in place of the profile file, then the slot's override.
func (c *Compose) slotProject(after []byte, loaded *profiles.Loaded) (profiles.Project, map[string][]byte, error) {
	ov, err := c.slot.Override(loaded.Project, c.service)
	if err != nil {
		return profiles.Project{}, nil, err
	}
	rendering, override := c.slotFiles()
	p := c.proj
	p.Files = nil
	for _, f := range c.proj.Files {
		if f == c.file {
			f = rendering
		}
		p.Files = append(p.Files, f)
	}
	p.Files = append(p.Files, override)
	p.Name = c.slot.Project
	files := map[string][]byte{rendering: after, override: ov}
	p.Content = files
	p.Before = nil
	return p, files, nil
}

// writeFiles writes the files of a trial (the profile's rendering, a
// slot's generated files) that differ from disk, each atomically. A
// directory that is read-only or full for a while is waited for (and
// logged), up to FileWait; the file on disk stays whole meanwhile.
func (c *Compose) writeFiles(ctx context.Context, files map[string][]byte) error {
	for f, b := range files {
		if cur, err := os.ReadFile(f); err == nil && string(cur) == string(b) {
			continue
		}
		err := diskwait.Retry(ctx, FileWait, func(err error) {
			c.log.Error().Err(err).Str("file", f).Stringer("retry_every", diskwait.Interval).Stringer("for_up_to", FileWait).
				Msg("the profile's directory refused the write (read-only or full); the trial waits and retries")
		}, func(waited time.Duration) {
			c.log.Warn().Str("file", f).Stringer("waited", waited.Round(time.Millisecond)).Msg("the profile was written; the trial goes on")
		}, func() error { return profiles.WriteFileAtomic(f, b, c.mode) })
		if err != nil {
			return err
		}
	}
	return nil
}

// FileWait bounds the wait for a profile directory that refuses writes.
var FileWait = time.Hour

// prepareSlot checks, on the slot's engine, that nothing else drives its
// container and that the host has what a trial needs.
func (c *Compose) prepareSlot(ctx context.Context) error {
	p, err := c.render(ctx, orchestrator.Candidate{})
	if err != nil {
		return err
	}
	if err := c.checkOwner(ctx, p.spec); err != nil {
		return err
	}
	return c.d.CheckHost(ctx, p.spec, c.local)
}

// releaseSlot removes the slot's container and network and its generated
// files: the slot's GPUs and port are free again.
func (c *Compose) releaseSlot(ctx context.Context) error {
	p, err := c.render(ctx, orchestrator.Candidate{})
	if err != nil {
		return err
	}
	err = c.d.Down(ctx, p.spec)
	rendering, override := c.slotFiles()
	for _, f := range []string{rendering, override} {
		if rerr := os.Remove(f); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
	}
	return err
}

// Slots builds one driver per slot of a compose target, each connected
// to its slot's engine, and says where each runs: this machine's name
// for the default engine, else the engine's address, and the models of its GPUs as that machine's
// nvidia-smi names them (on another host, in a helper container of the
// service's image; unknown with gpus: off or without nvidia-smi). The
// caller closes the drivers, also on error.
func Slots(ctx context.Context, t orchestrator.Target, environ []string, log zerolog.Logger) ([]orchestrator.Slot, []driver.Closer, error) {
	var slots []orchestrator.Slot
	var closers []driver.Closer
	hostname, _ := os.Hostname()
	var localNames map[int]string
	for i, def := range t.Slots {
		slog := log.With().Str("slot", def.Name()).Logger()
		c, err := NewComposeSlot(ctx, t, i, environ, slog)
		if err != nil {
			return nil, closers, err
		}
		closers = append(closers, c)
		st, _ := t.SlotTarget(i) // NewComposeSlot checked it
		s := orchestrator.Slot{Name: def.Name(), Host: c.d.Host(), Key: st.Key(), Driver: c}
		if c.local && def.DockerHost == "" {
			s.Host = hostname // the default engine: this machine
		}
		if t.GPUs != "off" {
			var names map[int]string
			var err error
			if c.local {
				if localNames == nil {
					localNames, err = benchmark.LocalGPUNames(ctx)
				}
				names = localNames
			} else {
				var out string
				if out, err = c.d.GPUQuery(ctx, c.image, "--query-gpu=index,name", "--format=csv,noheader"); err == nil {
					names, err = benchmark.ParseGPUNames(strings.NewReader(out))
				}
			}
			if err != nil {
				slog.Warn().Err(err).Msg("the slot's GPU models are unknown; trials on it are compared only with trials of unknown hardware")
			}
			devs, _ := def.Devices() // checked with the grid
			s.Hardware = benchmark.Hardware(names, devs)
			s.GPUs = driver.SlotGPUs(c.gpuSamples(ctx, slog), devs)
		}
		slots = append(slots, s)
	}
	return slots, closers, nil
}

// gpuSamples are the GPUs of the slot's host now (memory, for the
// feasibility check): this machine's nvidia-smi, or, on another host,
// nvidia-smi in a helper container there; none when unknown.
func (c *Compose) gpuSamples(ctx context.Context, log zerolog.Logger) []benchmark.GPUSample {
	if c.local {
		return driver.LocalGPUs()
	}
	out, err := c.d.GPUQuery(ctx, c.image, "--query-gpu="+benchmark.GPUQuery, "--format=csv,noheader,nounits")
	if err == nil {
		var ss []benchmark.GPUSample
		if ss, err = benchmark.ParseGPUCSV(strings.NewReader(out), time.Now); err == nil {
			return ss
		}
	}
	log.Warn().Err(err).Msg("the slot's GPU memory is unknown; the feasibility check reads the grid's hardware, else this machine's GPUs")
	return nil
}
