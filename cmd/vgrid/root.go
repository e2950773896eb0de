package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/vgrid/vgrid/internal/buildinfo"
)

// app carries what every command needs from the process.
type app struct {
	serverURL string        // --server: talk to a vgrid daemon
	tokenFile string        // --server-token-file for --server
	reconnect time.Duration // --reconnect: how long to try to reach a daemon that went away
	environ   []string
	stdin     io.Reader
	stdout    io.Writer
	stderr    io.Writer
}

func (a *app) getenv(k string) string {
	for _, kv := range a.environ {
		if name, v, ok := strings.Cut(kv, "="); ok && name == k {
			return v
		}
	}
	return ""
}

// isTerminal reports whether w is a terminal (a live view makes sense).
func (a *app) isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// errInterrupted ends a command stopped by Ctrl-C or SIGTERM (exit 130).
var errInterrupted = errors.New("interrupted")

// serverAnnotation marks the commands that have a daemon form: with
// --server they talk to the daemon instead of a local store.
const serverAnnotation = "vgrid/server"

func daemonForm(cmd *cobra.Command) *cobra.Command {
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[serverAnnotation] = "yes"
	return cmd
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "vgrid",
		Short:         "Grid-search orchestrator for vLLM servers run with Docker Compose",
		Version:       buildinfo.Read().String(),
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("server") && cmd.Annotations[serverAnnotation] == "" {
				return usagef("%s runs here, not on a daemon: drop --server (the commands with a daemon form are run, runs and report)", cmd.CommandPath())
			}
			return nil
		},
	}
	root.SetVersionTemplate("vgrid {{.Version}}\n")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see %s --help)", err, c.CommandPath())}
	})
	root.PersistentFlags().StringVar(&a.serverURL, "server", "", "a vgrid daemon's URL (or VGRID_SERVER): run, runs and report talk to it")
	root.PersistentFlags().StringVar(&a.tokenFile, "server-token-file", "", "the daemon's token file, with --server (default: VGRID_TOKEN, which holds the token itself, not a file; else the token file beside the default store)")
	root.PersistentFlags().DurationVar(&a.reconnect, "reconnect", 30*time.Second, "with --server: how long run and runs watch try to reach a daemon that went away (a restart) before saying how to re-attach")
	root.AddCommand(a.profileCommand(), a.deployCommand(), a.benchCommand(), daemonForm(a.runCommand()), a.simCommand(),
		daemonForm(a.reportCommand()), a.runsCommand(), a.gridCommand(), a.planCommand(), a.serveCommand(), a.versionCommand(), a.storeCommand())
	usageErrors(root)
	return root
}

// usageErrors makes every argument mistake a usage error (exit 2): a
// command's own argument check, an unknown command, or a group command
// (vgrid runs) given an unknown subcommand.
func usageErrors(c *cobra.Command) {
	c.SuggestionsMinimumDistance = 2
	if c.HasSubCommands() && c.RunE == nil && c.Run == nil {
		c.Args = func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			msg := fmt.Sprintf("unknown command %q for %s", args[0], cmd.CommandPath())
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(s, ", "))
			}
			var names []string
			for _, sub := range cmd.Commands() {
				if sub.IsAvailableCommand() {
					names = append(names, sub.Name())
				}
			}
			return usagef("%s; commands: %s", msg, strings.Join(names, ", "))
		}
		c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	} else if check := c.Args; check != nil {
		c.Args = func(cmd *cobra.Command, args []string) error {
			err := check(cmd, args)
			var u usageError
			if err == nil || errors.As(err, &u) {
				return err
			}
			return usagef("%s: %v; usage: %s", cmd.CommandPath(), err, cmd.UseLine())
		}
	}
	for _, sub := range c.Commands() {
		usageErrors(sub)
	}
}

func (a *app) versionCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version [--json]",
		Short: "Print vgrid's version: module version, VCS revision, Go version",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			i := buildinfo.Read()
			if asJSON {
				return json.NewEncoder(a.stdout).Encode(i)
			}
			_, err := fmt.Fprintf(a.stdout, "vgrid %s\n", i)
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// noArgs rejects positional arguments as a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("%s takes no arguments, got %q", cmd.CommandPath(), args)
	}
	return nil
}
