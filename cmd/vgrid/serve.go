package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"syscall"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/vgrid/vgrid/compose"
	"github.com/vgrid/vgrid/daemon"
	"github.com/vgrid/vgrid/driver"
	"github.com/vgrid/vgrid/driver/assemble"
	"github.com/vgrid/vgrid/internal/buildinfo"
	"github.com/vgrid/vgrid/orchestrator"
	"github.com/vgrid/vgrid/store"
)

func (a *app) serveCommand() *cobra.Command {
	var listen, storePath, tokenFile, logFormat, tlsCert, tlsKey string
	var insecure bool
	var hosts []string
	cmd := &cobra.Command{
		Use:   "serve [--listen 127.0.0.1:8321] [--store PATH] [--token-file F]",
		Short: "Run the vgrid daemon: an authenticated HTTP API, a persistent run queue, live events, Prometheus metrics",
		Long: `One process, one store. Runs submitted through the API (docs/api.md) are
queued persistently and run one at a time per target (compose project and
service, or endpoint); different targets run in parallel. Every API call
but /healthz needs "Authorization: Bearer <token>"; the token file is
created (mode 0600) on first start when absent.

On SIGTERM/SIGINT the daemon stops accepting runs, cancels the running
trials, persists them, and exits: the service under test is left on the
current candidate (compose), and the run resumes when the daemon starts
again. A second signal exits at once.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := a.logger(logFormat)
			if err != nil {
				return err
			}
			if storePath == "" {
				storePath = store.DefaultPath(a.getenv)
			}
			if tokenFile == "" {
				tokenFile = filepath.Join(filepath.Dir(storePath), "token")
			}
			// The address first: a busy port fails before anything is
			// written (the store, the token).
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				if errors.Is(err, syscall.EADDRINUSE) {
					return fmt.Errorf("listen %s: the address is in use: another vgrid serve may run there (vgrid runs list --server http://%s), or another program; pick another address with --listen; nothing was written", listen, listen)
				}
				return fmt.Errorf("listen %s: %w; nothing was written", listen, err)
			}
			defer ln.Close()
			st, err := store.Open(storePath)
			if err != nil {
				return err
			}
			defer st.Close()
			logStore(st, log)
			ctx := cmd.Context()
			d, created, err := daemon.New(daemon.Config{
				Listen: listen, TokenFile: tokenFile, TLSCert: tlsCert, TLSKey: tlsKey, InsecureListen: insecure, Hosts: hosts, Store: st, Log: log, Version: buildinfo.Read().String(),
				// The same assembly as vgrid run's, with the store's history
				// read again for each run.
				Assemble: func(ctx context.Context, g *orchestrator.Grid, runDir string) (*assemble.Parts, error) {
					return a.buildRun(ctx, st, g, runDir, log)
				},
				Target: func(ctx context.Context, g *orchestrator.Grid, runDir string) (driver.Closer, error) {
					opt, _, _ := a.assembleOptions(nil, storeHelpCache{st}, log)
					return assemble.Target(ctx, g, runDir, opt)
				},
				Engine: func(ctx context.Context) string {
					dep, err := compose.Connect(ctx, "", zerolog.Nop())
					if err != nil {
						return "unreachable: " + err.Error()
					}
					defer dep.Close()
					return dep.Describe(ctx)
				},
			})
			if err != nil {
				return usageError{err}
			}
			if created {
				fmt.Fprintf(a.stdout, "token written to %s (mode 0600)\n", tokenFile)
			}
			scheme := "http"
			if tlsCert != "" {
				scheme = "https"
			}
			fmt.Fprintf(a.stdout, "vgrid serve on %s://%s (store %s, token file %s)\n", scheme, ln.Addr(), storePath, tokenFile)
			return d.Serve(ctx, ln)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8321", "address to listen on (a non-loopback one needs --tls-cert/--tls-key, or --insecure-listen)")
	cmd.Flags().StringSliceVar(&hosts, "host", nil, "a name the dashboard answers for besides the machine's own (a reverse proxy's, a DNS alias); repeatable")
	cmd.Flags().BoolVar(&insecure, "insecure-listen", false, "allow plain HTTP on a non-loopback --listen: the token, which can run commands as this daemon's user, then crosses the network in clear text")
	a.storeFlag(cmd, &storePath)
	cmd.Flags().StringVar(&tokenFile, "token-file", "", "bearer token file (default: token next to the store; created when absent)")
	cmd.Flags().StringVar(&logFormat, "log-format", "console", "console or json")
	cmd.Flags().StringVar(&tlsCert, "tls-cert", "", "serve HTTPS with this PEM certificate (with --tls-key); the dashboard's cookie is then Secure")
	cmd.Flags().StringVar(&tlsKey, "tls-key", "", "the certificate's PEM private key")
	return cmd
}
