package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/vgrid/vgrid/benchmark"
	"github.com/vgrid/vgrid/orchestrator"
	"github.com/vgrid/vgrid/report"
	"github.com/vgrid/vgrid/store"
)

// loadRun reads a run, its trials and every stored report.
func loadRun(st *store.Store, id string) (*orchestrator.Run, []*orchestrator.Trial, map[int][]*benchmark.Report, error) {
	run, err := st.GetRun(id)
	if err != nil {
		return nil, nil, nil, err
	}
	trials, err := st.Trials(run.ID)
	if err != nil {
		return nil, nil, nil, err
	}
	reports := map[int][]*benchmark.Report{}
	for _, t := range trials {
		if reports[t.Seq], err = st.Reports(run.ID, t.Seq); err != nil {
			return nil, nil, nil, err
		}
	}
	return run, trials, reports, nil
}

// openRun opens the store read-only and loads a run with its trials and
// reports; the caller closes the store.
func (a *app) openRun(storePath, id string) (*store.Store, *orchestrator.Run, []*orchestrator.Trial, map[int][]*benchmark.Report, error) {
	st, err := a.readStore(storePath)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	run, trials, reports, err := loadRun(st, id)
	if err != nil {
		st.Close()
		return nil, nil, nil, nil, err
	}
	return st, run, trials, reports, nil
}

// wrote closes -o FILE and says on stderr what was written there.
func (a *app) wrote(path string, closeFn func() error) error {
	if err := closeFn(); err != nil {
		return err
	}
	if path != "" && path != "-" {
		if fi, err := os.Stat(path); err == nil {
			fmt.Fprintf(a.stderr, "wrote %s (%d bytes)\n", path, fi.Size())
		}
	}
	return nil
}

// output opens -o FILE or stdout.
func (a *app) output(path string) (io.Writer, func() error, error) {
	if path == "" || path == "-" {
		return a.stdout, func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, nil, err
	}
	return f, f.Close, nil
}

func (a *app) reportCommand() *cobra.Command {
	var storePath, format, out, table string
	cmd := &cobra.Command{
		Use:   "report RUN [--format md|csv|html] [--table candidates|levels] [-o FILE]",
		Short: "The comparison of a run's candidates, computed from its stored samples (RUN may be latest)",
		Long: `The comparison of a run's candidates, computed from its stored samples.
--format csv writes one value per cell (medians and CI bounds in their own
columns, empty when not measured); --table levels writes one row per
candidate and load level instead. Works while the run is in progress.`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeRuns,
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := report.ParseOutput("report", format, table)
			if err != nil {
				return usagef("--%v", err)
			}
			if c, err := a.server(); err != nil || c != nil {
				if err != nil {
					return err
				}
				return a.remoteCopy(cmd.Context(), c, "/v1/runs/"+args[0]+"/report?format="+o.Format+"&table="+o.Table, out)
			}
			st, run, trials, reports, err := a.openRun(storePath, args[0])
			if err != nil {
				return err
			}
			defer st.Close()
			w, closeFn, err := a.output(out)
			if err != nil {
				return err
			}
			if err := report.Write(w, o, run, trials, reports); err != nil {
				closeFn()
				return err
			}
			return a.wrote(out, closeFn)
		},
	}
	a.storeFlag(cmd, &storePath)
	cmd.Flags().StringVar(&format, "format", "md", "md, csv or html")
	cmd.Flags().StringVar(&table, "table", "candidates", "with --format csv: candidates (one row each) or levels (one row per load level)")
	cmd.Flags().StringVarP(&out, "output", "o", "", "write to FILE instead of stdout")
	cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"md", "csv", "html"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.RegisterFlagCompletionFunc("table", cobra.FixedCompletions([]string{"candidates", "levels"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func (a *app) runsCommand() *cobra.Command {
	var storePath string
	cmd := &cobra.Command{Use: "runs", Short: "List, show, export, cancel and delete stored runs (they work while a run is in progress)"}
	list := &cobra.Command{
		Use: "list", Short: "List runs, newest first", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if c, err := a.server(); err != nil || c != nil {
				if err != nil {
					return err
				}
				return a.remoteList(cmd.Context(), c)
			}
			st, err := a.readStore(storePath)
			if err != nil {
				return err
			}
			defer st.Close()
			runs, err := st.Runs()
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "RUN\tSTATE\tGRID\tTARGET\tCHAMPION")
			for _, r := range runs {
				champ := "-"
				if r.Champion != nil && r.Champion.Champion >= 0 {
					champ = r.Champion.Name
				}
				state := r.StateText()
				if r.State == orchestrator.RunRunning && r.CancelRequested.IsZero() {
					if _, held := st.Held(r.Target); !held {
						state = "running, but no process holds its target (killed?): vgrid run --resume " + r.ID + a.where(storePath) + ", or start its daemon again"
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", termSafe(r.ID), state, termSafe(r.Grid.Name), termSafe(r.Target), termSafe(champ))
			}
			return tw.Flush()
		},
	}
	var asJSON bool
	show := &cobra.Command{
		Use: "show RUN [--json]", Short: "A run's trials with their phases, failures and the champion", Args: cobra.ExactArgs(1),
		ValidArgsFunction: a.completeRuns,
		RunE: func(cmd *cobra.Command, args []string) error {
			if c, err := a.server(); err != nil || c != nil {
				if err != nil {
					return err
				}
				if asJSON {
					return a.remoteCopy(cmd.Context(), c, "/v1/runs/"+args[0], "")
				}
				return a.remoteShow(cmd.Context(), c, args[0])
			}
			st, run, trials, reports, err := a.openRun(storePath, args[0])
			if err != nil {
				return err
			}
			defer st.Close()
			if asJSON {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(map[string]any{"run": run, "state": run.State.String(), "trials": trials})
			}
			a.runTable(run, trials, report.BuildReport(run, trials, reports), a.where(storePath))
			return nil
		},
	}
	show.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	var format, out string
	export := &cobra.Command{
		Use: "export RUN --format json|csv [-o FILE]", Short: "Everything stored for a run: JSON (run, trials, raw reports) or CSV (one row per request)", Args: cobra.ExactArgs(1),
		ValidArgsFunction: a.completeRuns,
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := report.ParseOutput("export", format, "")
			if err != nil {
				return usagef("--%v", err)
			}
			if c, err := a.server(); err != nil || c != nil {
				if err != nil {
					return err
				}
				return a.remoteCopy(cmd.Context(), c, "/v1/runs/"+args[0]+"/export?format="+o.Format, out)
			}
			st, run, trials, reports, err := a.openRun(storePath, args[0])
			if err != nil {
				return err
			}
			defer st.Close()
			w, closeFn, err := a.output(out)
			if err != nil {
				return err
			}
			if err := report.Write(w, o, run, trials, reports); err != nil {
				closeFn()
				return err
			}
			return a.wrote(out, closeFn)
		},
	}
	export.Flags().StringVar(&format, "format", "json", "json or csv")
	export.Flags().StringVarP(&out, "output", "o", "", "write to FILE instead of stdout")
	export.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"json", "csv"}, cobra.ShellCompDirectiveNoFileComp))
	var yes bool
	del := &cobra.Command{
		Use: "delete RUN...", Short: "Delete runs: their trials, samples, events and files (the process driver's logs)", Args: cobra.MinimumNArgs(1),
		ValidArgsFunction: a.completeRuns,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !yes && slices.Contains(args, "latest") {
				return usagef("runs delete latest deletes whichever run is newest: name the run (vgrid runs list shows them), or confirm with --yes")
			}
			if !yes && a.isTerminal(a.stdin) {
				fmt.Fprintf(a.stdout, "delete %s with its trials, samples, events and files? This cannot be undone. [y/N] ", strings.Join(args, ", "))
				answer, _ := bufio.NewReader(a.stdin).ReadString('\n')
				if ans := strings.ToLower(strings.TrimSpace(answer)); ans != "y" && ans != "yes" {
					fmt.Fprintln(a.stdout, "nothing was deleted")
					return nil
				}
			}
			if c, err := a.server(); err != nil || c != nil {
				if err != nil {
					return err
				}
				for _, id := range args {
					resp, err := c.do(cmd.Context(), "DELETE", "/v1/runs/"+id, nil)
					if err != nil {
						return err
					}
					resp.Body.Close()
					fmt.Fprintf(a.stdout, "deleted %s\n", id)
				}
				return nil
			}
			st, err := a.openStore(storePath)
			if err != nil {
				return err
			}
			defer st.Close()
			for _, id := range args {
				run, err := st.GetRun(id)
				if err != nil {
					return err
				}
				if err := st.DeleteRun(run.ID); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "deleted %s (and %s)\n", run.ID, st.RunDir(run.ID))
			}
			return nil
		},
	}
	del.Flags().BoolVarP(&yes, "yes", "y", false, "delete without asking (on a terminal, runs delete asks); needed for latest")
	cancel := &cobra.Command{
		Use: "cancel RUN --server URL", Short: "Cancel a daemon's run: a queued one never starts, a running one stops and the original is restored", Args: cobra.ExactArgs(1),
		ValidArgsFunction: a.completeRuns,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.server()
			if err != nil {
				return err
			}
			if c == nil {
				return usagef("runs cancel talks to a daemon (--server URL); a local vgrid run stops with Ctrl-C in its terminal")
			}
			resp, err := c.do(cmd.Context(), "POST", "/v1/runs/"+args[0]+"/cancel", nil)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			var got struct {
				ID        string `json:"id"`
				Cancelled bool   `json:"cancelled"`
			}
			if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&got); err != nil || got.ID == "" {
				return fmt.Errorf("the daemon's answer to the cancel of %s: %v", args[0], err)
			}
			if got.Cancelled {
				fmt.Fprintf(a.stdout, "run %s cancelled: it had not started\n", got.ID)
			} else {
				fmt.Fprintf(a.stdout, "run %s: cancel recorded (final); the daemon stops it and restores the original configuration (vgrid runs show %s --server ...)\n", got.ID, got.ID)
			}
			return nil
		},
	}
	watch := &cobra.Command{
		Use: "watch RUN", Short: "Follow a run live, from its store or a daemon (--server), until it ends; then print it as runs show does", Args: cobra.ExactArgs(1),
		ValidArgsFunction: a.completeRuns,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if c, err := a.server(); err != nil || c != nil {
				if err != nil {
					return err
				}
				if err := a.follow(ctx, c, args[0]); err != nil {
					return err
				}
				return a.remoteShow(ctx, c, args[0])
			}
			return a.watchLocal(ctx, storePath, args[0])
		},
	}
	for _, c := range []*cobra.Command{list, show, export, del, cancel, watch} {
		cmd.AddCommand(daemonForm(c))
	}
	cmd.PersistentFlags().StringVar(&storePath, "store", "", "bbolt store file (default $VGRID_STORE, else vgrid/vgrid.db in the user's data directory)")
	return cmd
}

// termSafe keeps what a terminal prints of a stored name (a grid's, a
// candidate's) to printable characters: no escape sequences, no line
// breaks or tabs that would break a table.
func termSafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			return ' '
		case unicode.IsControl(r) || r == unicode.ReplacementChar:
			return -1
		}
		return r
	}, s)
}

// watchLocal follows a run in a store (read-only, as another process
// writes it) until it is final, printing its events as they are stored.
func (a *app) watchLocal(ctx context.Context, storePath, id string) error {
	st, err := a.readStore(storePath)
	if err != nil {
		return err
	}
	defer st.Close()
	run, err := st.GetRun(id)
	if err != nil {
		return err
	}
	var since uint64
	for {
		seqs, evs, err := st.Events(run.ID, since)
		if err != nil {
			return err
		}
		for i, e := range evs {
			a.printEvent(e)
			since = seqs[i]
		}
		cur, err := st.GetRun(run.ID)
		if err != nil {
			return err
		}
		if cur.State.Final() && len(evs) == 0 {
			break
		}
		if cur.State == orchestrator.RunInterrupted && len(evs) == 0 {
			fmt.Fprintf(a.stdout, "run %s is interrupted: nothing runs it now; resume it with vgrid run --resume %s%s\n", run.ID, run.ID, a.where(storePath))
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	run, trials, reports, err := loadRun(st, run.ID)
	if err != nil {
		return err
	}
	a.runTable(run, trials, report.BuildReport(run, trials, reports), a.where(storePath))
	return endError(run)
}
