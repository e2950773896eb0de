package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/vgrid/vgrid/driver"
	"github.com/vgrid/vgrid/driver/assemble"
	"github.com/vgrid/vgrid/internal/buildinfo"
	"github.com/vgrid/vgrid/internal/diskwait"
	"github.com/vgrid/vgrid/orchestrator"
	"github.com/vgrid/vgrid/report"
	"github.com/vgrid/vgrid/sim"
	"github.com/vgrid/vgrid/store"
)

// storeFlag registers --store (default $VGRID_STORE or the platform's data dir).
func (a *app) storeFlag(cmd *cobra.Command, path *string) {
	cmd.Flags().StringVar(path, "store", "", "bbolt store file (default $VGRID_STORE, else vgrid/vgrid.db in the user's data directory)")
}

func (a *app) storePath(path string) string {
	if path == "" {
		return store.DefaultPath(a.getenv)
	}
	return path
}

// openStore opens the store for writing (vgrid run, serve): it is created
// when absent, and a second writer is refused at once.
func (a *app) openStore(path string) (*store.Store, error) {
	return store.Open(a.storePath(path))
}

// logStore logs a store write that the file system refuses for a while
// (disk full, read-only), which the store retries, and its end; and a
// backup the store could not keep when it closed.
func logStore(st *store.Store, log zerolog.Logger) {
	st.OnWait = func(err error) {
		log.Error().Err(err).Stringer("retry_every", diskwait.Interval).Stringer("for_up_to", st.FullWait).
			Msg("store: the file system refused a write (full or read-only); the run waits and retries instead of failing")
	}
	st.OnBack = func(waited time.Duration) {
		log.Warn().Stringer("waited", waited.Round(time.Millisecond)).Msg("store: the write went through; the run goes on")
	}
	backup := store.BackupPath(st.Path())
	st.OnBackupFailed = func(err error) {
		log.Warn().Err(err).Str("backup", backup).Msg("store: backup not taken; the last one stays")
	}
}

// readStore opens an existing store for reading: it works while a run
// writes to it, and changes nothing in the file.
func (a *app) readStore(path string) (*store.Store, error) {
	return store.OpenReadOnly(a.storePath(path))
}

// loadGrid reads a grid file; its relative paths are resolved against its
// directory (orchestrator.LoadGrid, which the daemon uses too).
func loadGrid(path string) (*orchestrator.Grid, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read grid file: %w", err)
	}
	return orchestrator.LoadGrid(path, src, filepath.Dir(path))
}

func (a *app) runCommand() *cobra.Command {
	var storePath, resume, logFormat string
	var skipInfeasible, quiet bool
	cmd := &cobra.Command{
		Use:   "run GRID.yaml | --resume RUN",
		Short: "Run a grid search: every candidate rendered, deployed, verified and benchmarked; a champion crowned",
		Long: `Run a grid file (docs/grid-file.md). Every phase change of every trial is
persisted in the store before the action that follows it, so a run killed at
any point continues with --resume RUN (latest: the most recent run): finished
trials are kept, the interrupted one is redone, no sample counts twice. The
grid is stored with the run exactly as written, and a resumed run uses it.
At the end the champion is deployed (end: crown) or the original restored
(end: restore); an interrupted or failed run restores the original. The
service is never left stopped.

On a terminal vgrid shows one live status line and writes its log to
vgrid.log in the run's directory; --log-format sends the log to stderr.
Exit status: 0 with a result, 1 when no candidate was measured or on an
error, 2 for a usage error, 130 when interrupted.`,
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case len(args) > 1:
				return usagef("vgrid run takes one grid file; %d were given (%s): run them one after the other, or queue each on a daemon (vgrid run GRID --server URL)", len(args), strings.Join(args, ", "))
			case len(args) == 1 && resume != "":
				return usagef("give a grid file or --resume RUN, not both: --resume continues a stored run with the grid it was started with")
			case len(args) == 0 && resume == "":
				return usagef("give a grid file (vgrid run GRID.yaml) or --resume RUN")
			}
			return nil
		},
		ValidArgsFunction: completeFiles("yaml", "yml", "json"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if c, err := a.server(); err != nil || c != nil {
				if err != nil {
					return err
				}
				if resume != "" {
					return usagef("--resume: the daemon resumes its runs by itself")
				}
				return a.remoteRun(cmd.Context(), c, args[0])
			}
			var run *orchestrator.Run
			var g *orchestrator.Grid
			if resume == "" {
				var err error
				if g, err = loadGrid(args[0]); err != nil {
					return usageError{err}
				}
			}
			st, err := a.openStore(storePath)
			if err != nil {
				return err
			}
			defer st.Close()
			if resume != "" {
				if run, err = st.GetRun(resume); err != nil {
					return err
				}
				switch run.State {
				case orchestrator.RunDone, orchestrator.RunCancelled:
					return fmt.Errorf("run %s is already %s; see vgrid report %s%s", run.ID, run.State, run.ID, a.where(storePath))
				}
				g = &run.Grid
			} else {
				run = orchestrator.NewRun(g, args[0], time.Now(), g.Target.Key(), buildinfo.Read().String())
			}
			ctx := cmd.Context()
			runDir := st.RunDir(run.ID)
			log, closeLog, err := a.runLogger(logFormat, runDir)
			if err != nil {
				return err
			}
			defer closeLog()
			logStore(st, log)
			parts, err := a.buildRun(ctx, st, g, runDir, log)
			if err != nil {
				return err
			}
			defer parts.Close()
			view := newLiveView(a.stdout, a.isTerminal(a.stdout), quiet)
			o := parts.Orchestrator(ctx, st, log.With().Str("run_id", run.ID).Logger(), time.Now)
			o.SkipInfeasible, o.Progress = skipInfeasible, view.update
			if !quiet {
				fmt.Fprintf(a.stdout, "run %s on %s (store %s)\n", run.ID, run.Target, st.Path())
				if logFormat == "" && a.isTerminal(a.stdout) {
					fmt.Fprintf(a.stdout, "log: %s\n", filepath.Join(runDir, "vgrid.log"))
				}
			}
			err = o.Run(ctx, run)
			view.close()
			if errors.Is(err, context.Canceled) && ctx.Err() != nil {
				fmt.Fprintf(a.stdout, "interrupted: the original configuration was restored; resume with: vgrid run --resume %s%s\n", run.ID, a.where(storePath))
				return errInterrupted
			}
			var nothing *orchestrator.NothingMeasuredError
			if err != nil && !errors.As(err, &nothing) {
				return err
			}
			if perr := a.printVerdict(st, run.ID, a.where(storePath)); perr != nil {
				return perr
			}
			if nothing != nil {
				return fmt.Errorf("run %s measured no candidate: %s; the table above has each trial's evidence (vgrid runs show %s%s)", nothing.RunID, nothing.Summary, nothing.RunID, a.where(storePath))
			}
			return err
		},
	}
	a.storeFlag(cmd, &storePath)
	cmd.Flags().StringVar(&resume, "resume", "", "continue an interrupted run (an id, or latest)")
	cmd.Flags().BoolVar(&skipInfeasible, "skip-infeasible", false, "skip candidates the memory model predicts cannot boot, instead of running them to confirm")
	cmd.Flags().StringVar(&logFormat, "log-format", "", "send the log to stderr as console or json (default: to stderr, or to the run's vgrid.log on a terminal)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the outcome")
	cmd.RegisterFlagCompletionFunc("resume", a.completeRuns)
	return cmd
}

// runLogger is the run's logger: stderr when --log-format is given or
// stdout is not a terminal; on a terminal, the run's vgrid.log, so the live
// view is the only thing on screen.
func (a *app) runLogger(format, runDir string) (zerolog.Logger, func(), error) {
	if format != "" || !a.isTerminal(a.stdout) {
		log, err := a.logger(format)
		return log, func() {}, err
	}
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return zerolog.Nop(), nil, fmt.Errorf("run directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(runDir, "vgrid.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return zerolog.Nop(), nil, fmt.Errorf("run log: %w", err)
	}
	log := zerolog.New(zerolog.ConsoleWriter{Out: f, TimeFormat: time.RFC3339, NoColor: true}).With().Timestamp().Logger()
	return log, func() { f.Close() }, nil
}

// printVerdict prints a stored run as runs show does, at the end of a run.
func (a *app) printVerdict(st *store.Store, id, where string) error {
	run, trials, reports, err := loadRun(st, id)
	if err != nil {
		return err
	}
	a.runTable(run, trials, report.BuildReport(run, trials, reports), where)
	return nil
}

// runTable prints a run as people read it: its state and error, the
// search, each trial's outcome, time, objective (with its 95% interval)
// and evidence, the verdict, and how to get the report. vgrid run's end
// and vgrid runs show, local or from a daemon, print it; where is the
// --store or --server the hints must carry.
func (a *app) runTable(run *orchestrator.Run, trials []*orchestrator.Trial, rep *report.ReportData, where string) {
	w := a.stdout
	fmt.Fprintf(w, "\nrun %s: %s, left running: %s\n", run.ID, run.StateText(), orDash(run.EndAction))
	if run.Error != "" {
		fmt.Fprintf(w, "error: %s\n", termSafe(run.Error))
	}
	fmt.Fprintf(w, "search: %s\n", run.SearchText(trials))
	objective := map[int]string{}
	for _, row := range rep.Rows {
		objective[row.Seq] = row.ObjectiveText()
	}
	metric := run.Grid.Objective.Maximize + run.Grid.Objective.Minimize
	fmt.Fprintf(w, "  %2s  %-28s %7s  %-26s %s\n", "#", "outcome", "time", metric+" [95% CI]", "candidate")
	var sum time.Duration
	slots := map[string]bool{}
	for _, t := range trials {
		tm := t.Timing()
		sum += tm.Deploy + tm.Boot + tm.Bench
		slots[t.Slot] = true
		fmt.Fprintf(w, "  %2d  %-28s %6.1fs  %-26s %s\n", t.Seq, t.Outcome(), tm.Total.Seconds(), orDash(objective[t.Seq]), termSafe(t.Candidate.Name))
		if f := t.Failure; f != nil && t.Phase != orchestrator.PhasePruned {
			ev := f.Detail
			if f.Line != "" {
				ev += ": " + f.Line
			}
			fmt.Fprintf(w, "      evidence: %s\n", oneLine(ev, 200))
		}
	}
	switch wall := orchestrator.RunWall(trials); {
	case wall > 0 && len(slots) > 1:
		// Trials overlapped: their sum is not comparable to the wall time.
		fmt.Fprintf(w, "time: %.1fs for the trials on %d slots; recreate + boot + benchmark %.1fs in all (%.1f× the wall time)\n",
			wall.Seconds(), len(slots), sum.Seconds(), sum.Seconds()/wall.Seconds())
	case wall > 0 && run.State.Final():
		fmt.Fprintf(w, "time: %.1fs for the trials; recreate + boot + benchmark %.1fs; orchestrator overhead %.2f%%\n",
			wall.Seconds(), sum.Seconds(), 100*(wall-sum).Seconds()/wall.Seconds())
	}
	if v := run.Champion; v != nil {
		if v.Champion >= 0 {
			fmt.Fprintln(w, verdictLine(v))
		}
		fmt.Fprintf(w, "why: %s\n", v.Reason)
	}
	fmt.Fprintf(w, "report: vgrid report %s --format md|csv|html%s\n", run.ID, where)
}

// oneLine is s on one line, at most n bytes, printable.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(termSafe(s)), " ")
	if len(s) > n {
		s = s[:n] + "..."
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// where is what a hint must add to a command so it reads the same runs:
// " --server URL" or " --store PATH" when not the default.
func (a *app) where(storePath string) string {
	if u := a.serverURL; u != "" {
		return " --server " + u
	}
	if storePath != "" {
		return " --store " + storePath
	}
	return ""
}

func (a *app) simCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "sim", Short: "The vLLM simulator (docs/sim.md), from this binary"}
	serve := &cobra.Command{
		Use:                "serve ARGS",
		Short:              "Run the simulator like `vllm serve ARGS`",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if code := sim.Main(cmd.Context(), append([]string{"serve"}, args...), a.getenv, a.stdout, a.stderr); code != 0 {
				return exitCode(code)
			}
			return nil
		},
	}
	cmd.AddCommand(serve)
	return cmd
}

// exitCode is an error that carries a process exit status.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// newDriver builds the driver of a grid's target: the compose driver, or
// the process driver. runDir is where the run keeps its files (the
// process driver's server logs go to runDir/logs).
// newSlots builds the target's slots (none when it declares none); close
// stops what they run.
// buildRun assembles what runs a grid on a store, for vgrid run and for
// every run of vgrid serve alike: the store's help cache and history
// (when its history cannot be read, the model's estimates, said in the log).
func (a *app) buildRun(ctx context.Context, st *store.Store, g *orchestrator.Grid, runDir string, log zerolog.Logger) (*assemble.Parts, error) {
	opt, _, err := a.assembleOptions(st, storeHelpCache{st}, log)
	if err != nil {
		log.Warn().Err(err).Msg("estimates from the store's history: not read; the model's are used")
		opt, _, _ = a.assembleOptions(nil, storeHelpCache{st}, log)
	}
	return assemble.Build(ctx, g, runDir, opt)
}

// assembleOptions are what this vgrid brings to the assembly of a run:
// its environment and log, a flag-help cache, and the store's history of
// trials for the estimates (nil store: none); n is how many trials it read.
func (a *app) assembleOptions(st *store.Store, help driver.HelpCache, log zerolog.Logger) (assemble.Options, int, error) {
	opt := assemble.Options{Environ: a.environ, Getenv: a.getenv, Log: log, Help: help, History: orchestrator.NewHistory()}
	if st == nil {
		return opt, 0, nil
	}
	n, err := learn(st, opt.History)
	return opt, n, err
}

// verdictLine is the verdict's title as the CLI prints it: "champion:
// NAME", "best so far (run cancelled): NAME".
func verdictLine(v *orchestrator.Verdict) string {
	t := v.Title()
	return strings.ToLower(t[:1]) + t[1:]
}
