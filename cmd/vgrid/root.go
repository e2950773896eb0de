package main

import (
	"io"
	"strings"

	"github.com/spf13/cobra"
)

// app carries what every command needs from the process.
type app struct {
	serverURL string // --server: talk to a vgrid daemon
	tokenFile string // --token-file for --server
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

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "vgrid",
		Short:         "Grid-search orchestrator for vLLM servers run with Docker Compose",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.PersistentFlags().StringVar(&a.serverURL, "server", "", "a vgrid daemon's URL (or VGRID_SERVER): run, runs and report talk to it")
	root.PersistentFlags().StringVar(&a.tokenFile, "server-token-file", "", "the daemon's token file, with --server (or VGRID_TOKEN)")
	root.AddCommand(a.profileCommand(), a.deployCommand(), a.benchCommand(), a.runCommand(), a.simCommand(), a.reportCommand(), a.runsCommand(), a.gridCommand(), a.planCommand(), a.serveCommand())
	return root
}

// noArgs rejects positional arguments as a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("%s takes no arguments, got %q", cmd.CommandPath(), args)
	}
	return nil
}
