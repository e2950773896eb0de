package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/vgrid/vgrid/failure"
	"os"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/vgrid/vgrid/compose"
	"github.com/vgrid/vgrid/driver/composedriver"
	"github.com/vgrid/vgrid/orchestrator"
	"github.com/vgrid/vgrid/vllm"
)

// logger builds the process logger: human-readable on stderr, or JSON.
func (a *app) logger(format string) (zerolog.Logger, error) {
	switch format {
	case "", "console":
		color := false
		if f, ok := a.stderr.(*os.File); ok {
			color = isatty.IsTerminal(f.Fd())
		}
		return zerolog.New(zerolog.ConsoleWriter{Out: a.stderr, TimeFormat: "15:04:05", NoColor: !color}).With().Timestamp().Logger(), nil
	case "json":
		return zerolog.New(a.stderr).With().Timestamp().Logger(), nil
	}
	return zerolog.Nop(), usagef("--log-format %q: want console or json", format)
}

type deployFlags struct {
	projectFlags
	gpusOff      bool
	gpus         string
	readyTimeout time.Duration
	endpoint     string
	dockerHost   string
	logFormat    string
	asJSON       bool
}

func (f *deployFlags) register(cmd *cobra.Command) {
	f.projectFlags.register(cmd, true)
	cmd.Flags().StringVar(&f.gpus, "gpus", "on", "off: strip GPU reservations and runtime: nvidia, for dry runs on hosts without GPUs")
	cmd.Flags().DurationVar(&f.readyTimeout, "ready-timeout", 30*time.Minute, "how long a boot may take (cold boots of real models take up to 30 min)")
	cmd.Flags().StringVar(&f.endpoint, "endpoint", "", "where vLLM answers from here (default: the published port on the Docker host)")
	cmd.Flags().StringVar(&f.dockerHost, "docker-host", "", "the Docker engine: unix://, npipe://, tcp://, ssh://user@host or a docker context name (default: DOCKER_HOST, the current context)")
	cmd.Flags().StringVar(&f.logFormat, "log-format", "console", "console or json")
	cmd.Flags().BoolVar(&f.asJSON, "json", false, "print the outcome as JSON")
}

// driver connects to the engine and reads the profile, as the grid
// search's compose driver does: vgrid deploy takes the same path.
func (f *deployFlags) driver(cmd *cobra.Command, a *app, log zerolog.Logger) (*composedriver.Compose, error) {
	switch f.gpus {
	case "on", "":
	case "off":
		f.gpusOff = true
	default:
		return nil, usagef("--gpus=%s: want on or off", f.gpus)
	}
	p, err := f.resolve(a)
	if err != nil {
		return nil, err
	}
	return composedriver.NewComposeProject(cmd.Context(), p, composedriver.ComposeOptions{Service: f.service, GPUsOff: f.gpusOff, Endpoint: f.endpoint, DockerHost: f.dockerHost}, log)
}

func (a *app) deployCommand() *cobra.Command {
	var f deployFlags
	cmd := &cobra.Command{
		Use:   "deploy -f FILE [-f FILE...] [--env-file F] [-p PROJECT] [--service S] [--gpus=off] [--ready-timeout D]",
		Short: "Recreate the vLLM service of a compose profile and wait until it really serves",
		Long: `Recreate only the chosen service (sidecars are left alone), with the labels
docker compose sets, then wait until vLLM answers /health, lists its model
and decodes a token. A failure ends with its reason and the log line that
proves it (free_memory, kv_cache_too_small, oom, crash_loop, unhealthy,
health_timeout, unreachable, ...), within a second of the fact.
Nothing is done when the running container already has this configuration.
It is the grid search's own deploy: the same rendering, checks and wait.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := a.logger(f.logFormat)
			if err != nil {
				return err
			}
			c, err := f.driver(cmd, a, log)
			if err != nil {
				return err
			}
			defer c.Close()
			plan, err := c.Plan(cmd.Context(), orchestrator.Candidate{})
			if err != nil {
				return err
			}
			s := plan.Spec()
			for _, w := range s.Warnings {
				log.Warn().Str("service", s.Service).Msg(w)
			}
			start := time.Now()
			c.OnPhase = func(p string) { fmt.Fprintf(a.stdout, "  %6.1fs  %s\n", time.Since(start).Seconds(), p) }
			fmt.Fprintf(a.stdout, "deploying %s (project %s, service config %s)\n", s.Service, s.Project, short(s.ServiceHash))
			dep, err := plan.Start(cmd.Context())
			if err != nil {
				return a.deployFailure(err, f.asJSON)
			}
			res := dep.Res
			fmt.Fprintf(a.stdout, "container %s %s\n", res.ContainerID[:12], res.Action)
			ready, err := dep.WaitReady(cmd.Context(), f.readyTimeout)
			if err != nil {
				if cmd.Context().Err() != nil {
					return fmt.Errorf("interrupted while waiting; container %s keeps running", res.ContainerID[:12])
				}
				return a.deployFailure(err, f.asJSON)
			}
			eff, err := dep.Verify(cmd.Context())
			if err != nil {
				return a.deployFailure(err, f.asJSON)
			}
			if f.asJSON {
				return json.NewEncoder(a.stdout).Encode(map[string]any{"service": s.Service, "container": res.ContainerID,
					"action": res.Action, "endpoint": ready.Endpoint, "boot": ready.Boot, "effective": eff})
			}
			fmt.Fprintf(a.stdout, "ready at %s after %.1fs\n", ready.Endpoint, time.Since(start).Seconds())
			if b := ready.Boot; b.Weights > 0 {
				fmt.Fprintf(a.stdout, "vLLM's boot log: weights %.0fs, torch.compile %.0fs, init engine %.0fs\n", b.Weights, b.Compile, b.InitEngine)
			}
			fmt.Fprintf(a.stdout, "effective: %s\n", vllm.DescribeEffective(eff))
			return nil
		},
	}
	f.register(cmd)
	cmd.AddCommand(a.deployStatus())
	return cmd
}

// deployFailure prints the evidence of a failed deploy and returns the error.
func (a *app) deployFailure(err error, asJSON bool) error {
	var f *failure.Failure
	if !errors.As(err, &f) {
		return err
	}
	if asJSON {
		json.NewEncoder(a.stdout).Encode(map[string]any{"reason": f.Reason.String(), "detail": f.Detail, "line": f.Line,
			"exit_code": f.ExitCode, "restarts": f.Restarts, "phase": f.Phase, "logs": f.Logs})
		return err
	}
	fmt.Fprintf(a.stdout, "FAILED %s: %s\n", f.Reason, f.Detail)
	if f.Line != "" {
		fmt.Fprintf(a.stdout, "  proof: %s\n", f.Line)
	}
	if n := len(f.Logs); n > 0 {
		tail := f.Logs[max(0, n-15):]
		fmt.Fprintf(a.stdout, "  last %d log lines:\n", len(tail))
		for _, l := range tail {
			fmt.Fprintf(a.stdout, "    %s\n", l)
		}
	}
	return err
}

func (a *app) deployStatus() *cobra.Command {
	var f deployFlags
	cmd := &cobra.Command{
		Use:   "status -f FILE [-f FILE...] [--env-file F] [-p PROJECT] [--service S]",
		Short: "Show the service's container, health, config hash and the configuration vLLM reports",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			drv, err := f.driver(cmd, a, zerolog.Nop())
			if err != nil {
				return err
			}
			defer drv.Close()
			plan, err := drv.Plan(cmd.Context(), orchestrator.Candidate{})
			if err != nil {
				return err
			}
			s, d := plan.Spec(), drv.Deployer()
			c, err := d.Find(cmd.Context(), s)
			if err != nil {
				return err
			}
			if c == nil {
				fmt.Fprintf(a.stdout, "service %s (project %s): no container\n", s.Service, s.Project)
				return nil
			}
			health := "none"
			if c.State.Health != nil {
				health = string(c.State.Health.Status)
			}
			hash := c.Config.Labels[compose.LabelConfigHash]
			match := "differs from the file's (a deploy would recreate it)"
			if hash == s.ServiceHash {
				match = "matches the file"
			}
			fmt.Fprintf(a.stdout, "service    %s (project %s)\ncontainer  %s %s\nstate      %s, health %s, restarts %d\nconfig     %s: %s\n",
				s.Service, s.Project, c.ID[:12], strings.TrimPrefix(c.Name, "/"), c.State.Status, health, c.RestartCount, short(hash), match)
			if ep, err := d.Endpoint(s, c.NetworkSettings); err == nil && c.State.Running {
				if eff, err := vllm.ScrapeEffective(cmd.Context(), ep); err == nil {
					fmt.Fprintf(a.stdout, "effective  %s (%s/metrics)\n", eff.Describe(), ep)
				} else {
					fmt.Fprintf(a.stdout, "effective  unknown: %v\n", err)
				}
			}
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
