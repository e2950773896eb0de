package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/vgrid/vgrid/benchmark"
	"github.com/vgrid/vgrid/orchestrator"
	"github.com/vgrid/vgrid/sim"
	"github.com/vgrid/vgrid/store"
)

// storeFlag registers --store (default $VGRID_STORE or the XDG data dir).
func (a *app) storeFlag(cmd *cobra.Command, path *string) {
	cmd.Flags().StringVar(path, "store", "", "bbolt store file (default $VGRID_STORE or ~/.local/share/vgrid/vgrid.db)")
}

func (a *app) openStore(path string) (*store.Store, error) {
	if path == "" {
		path = store.DefaultPath(a.getenv)
	}
	return store.Open(path)
}

// loadGrid parses a grid file and makes its paths absolute.
func loadGrid(path string) (*orchestrator.Grid, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read grid file: %w", err)
	}
	g, err := orchestrator.ParseGrid(path, src)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		a, _ := filepath.Abs(filepath.Join(dir, p))
		return a
	}
	for i, f := range g.Target.Files {
		g.Target.Files[i] = abs(f)
	}
	g.Target.EnvFile = abs(g.Target.EnvFile)
	return g, nil
}

// bencher runs the grid's benchmark scenarios against a ready trial.
type bencher struct {
	g      *orchestrator.Grid
	getenv func(string) string
	gpu    benchmark.GPUSource
}

func benchConfig(b orchestrator.BenchConfig) benchmark.Config {
	cfg := benchmark.Defaults()
	if b.Requests > 0 {
		cfg.KVCache.Pairs, cfg.Load.RequestsPerLevel, cfg.Load.RequestsPerRate = b.Requests, b.Requests, b.Requests
	}
	if len(b.Concurrency) > 0 {
		cfg.Load.Concurrency = b.Concurrency
	}
	if b.Rates != nil {
		cfg.Load.Rates = b.Rates
	}
	return cfg
}

func (b *bencher) Bench(ctx context.Context, ready *orchestrator.Ready) (*benchmark.Report, error) {
	c := benchmark.NewClient(ready.Endpoint, ready.Model, b.g.Target.APIKeyEnv, b.getenv)
	if b.getenv(b.g.Target.APIKeyEnv) == "" && ready.APIKey != "" {
		c.SetKey(ready.APIKey)
	}
	r := &benchmark.Runner{Client: c, Config: benchConfig(b.g.Benchmark), GPU: b.gpu}
	return r.Run(ctx, b.g.Benchmark.Scenarios)
}

// driverCloser is a Driver the command must close.
type driverCloser interface {
	orchestrator.Driver
	Close() error
}

func (a *app) driver(ctx context.Context, g *orchestrator.Grid, storePath string, log zerolog.Logger) (driverCloser, error) {
	switch g.Target.Driver {
	case "compose":
		return newComposeDriver(ctx, g.Target, a.environ, log)
	default:
		if storePath == "" {
			storePath = store.DefaultPath(a.getenv)
		}
		return newProcessDriver(g.Target, a.environ, filepath.Join(filepath.Dir(storePath), "logs"), log)
	}
}

// feasibility predicts, with the simulator's memory model (docs/sim.md),
// whether vLLM can boot a candidate on the grid's hardware.
func feasibility(g *orchestrator.Grid, render func(orchestrator.Candidate) ([]string, error)) func(orchestrator.Candidate) (bool, string) {
	return func(c orchestrator.Candidate) (bool, string) {
		words, err := render(c)
		if err != nil {
			return false, err.Error()
		}
		cfg, err := sim.ParseServeArgs(words)
		if err != nil {
			return false, err.Error()
		}
		model := cfg.Model
		if g.Feasibility.Model != "" {
			model = g.Feasibility.Model
		}
		arch, _ := sim.LookupArch(model, "")
		var used []string
		for _, u := range g.Feasibility.GPUUsedMiB {
			used = append(used, fmt.Sprint(u))
		}
		total := ""
		if g.Feasibility.GPUMemoryMiB > 0 {
			total = fmt.Sprint(g.Feasibility.GPUMemoryMiB)
		} else if gpus := localGPUs(); len(gpus) > 0 {
			// No hardware in the grid: this host's GPUs, as nvidia-smi sees them now.
			total = fmt.Sprint(gpus[0].MemTotalMiB)
			if len(used) == 0 {
				for _, g := range gpus {
					used = append(used, fmt.Sprint(g.MemUsedMiB))
				}
			}
		}
		gpus, err := sim.ParseGPUs(max(cfg.TP, 1), total, strings.Join(used, ","), "")
		if err != nil {
			return false, err.Error()
		}
		m, err := sim.PlanMemory(cfg, arch, gpus)
		if err != nil {
			return false, err.Error()
		}
		return true, fmt.Sprintf("%.2f GiB KV per GPU, %d tokens", m.KVGiB, m.KVTokens)
	}
}

// renderWords gives a candidate's vLLM words through the driver.
func renderWords(ctx context.Context, d orchestrator.Driver) func(orchestrator.Candidate) ([]string, error) {
	return func(c orchestrator.Candidate) ([]string, error) {
		r, err := d.Render(ctx, c)
		if err != nil {
			return nil, err
		}
		return r.Words, nil
	}
}

func (a *app) runCommand() *cobra.Command {
	var storePath, resume, logFormat string
	var skipInfeasible bool
	cmd := &cobra.Command{
		Use:   "run GRID.yaml | --resume RUN",
		Short: "Run a grid search: every candidate rendered, deployed, verified and benchmarked; a champion crowned",
		Long: `Run a grid file (docs/grid-file.md). Every phase change of every trial is
persisted in the store before the action that follows it, so a run killed at
any point continues with --resume RUN (latest: the most recent run): finished
trials are kept, the interrupted one is redone, no sample counts twice.
At the end the champion is deployed (end: crown) or the original restored
(end: restore); an interrupted or failed run restores the original. The
service is never left stopped.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if (len(args) == 1) == (resume != "") {
				return usagef("give a grid file or --resume RUN")
			}
			return nil
		},
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
			log, err := a.logger(logFormat)
			if err != nil {
				return err
			}
			st, err := a.openStore(storePath)
			if err != nil {
				return err
			}
			defer st.Close()
			var run *orchestrator.Run
			var g *orchestrator.Grid
			if resume != "" {
				if run, err = st.GetRun(resume); err != nil {
					return err
				}
				if run.State == orchestrator.RunDone {
					return fmt.Errorf("run %s is already done; see vgrid report %s", run.ID, run.ID)
				}
				g = &run.Grid
			} else {
				if g, err = loadGrid(args[0]); err != nil {
					return usageError{err}
				}
			}
			ctx := cmd.Context()
			drv, err := a.driver(ctx, g, st.Path(), log)
			if err != nil {
				return err
			}
			defer drv.Close()
			if run == nil {
				run = orchestrator.NewRun(g, args[0], time.Now(), drv.Key())
			}
			gpu := benchmark.GPUSource(benchmark.LocalNvidiaSMI)
			if g.Target.Driver == "compose" && g.Target.GPUs == "off" {
				gpu = nil
			}
			o := &orchestrator.Orchestrator{Store: st, Driver: drv, Bench: &bencher{g: g, getenv: a.getenv, gpu: gpu},
				Log: log.With().Str("run_id", run.ID).Logger(), Now: time.Now, SkipInfeasible: skipInfeasible,
				Feasible: feasibility(g, renderWords(ctx, drv)),
				Progress: func(p orchestrator.Progress) {
					eta := ""
					if p.ETA > 0 {
						eta = "  run ETA " + p.ETA.Round(time.Second).String()
					}
					fmt.Fprintf(a.stdout, "[%d/%d] %-16s %6.1fs  %s%s\n", p.Trial, p.Trials, p.Phase, p.Elapsed.Seconds(), p.Name, eta)
				}}
			fmt.Fprintf(a.stdout, "run %s on %s (store %s)\n", run.ID, run.Target, st.Path())
			err = o.Run(ctx, run)
			if errors.Is(err, context.Canceled) {
				fmt.Fprintf(a.stdout, "interrupted: the original configuration was restored; resume with: vgrid run --resume %s\n", run.ID)
				return fmt.Errorf("interrupted")
			}
			if err != nil {
				return err
			}
			return a.printVerdict(st, run.ID)
		},
	}
	a.storeFlag(cmd, &storePath)
	cmd.Flags().StringVar(&resume, "resume", "", "continue an interrupted run (an id, or latest)")
	cmd.Flags().BoolVar(&skipInfeasible, "skip-infeasible", false, "skip candidates the memory model predicts cannot boot, instead of running them to confirm")
	cmd.Flags().StringVar(&logFormat, "log-format", "console", "console or json (logs go to stderr)")
	return cmd
}

// printVerdict prints the champion, the trial outcomes and how to get the report.
func (a *app) printVerdict(st *store.Store, id string) error {
	run, err := st.GetRun(id)
	if err != nil {
		return err
	}
	trials, err := st.Trials(id)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "\nrun %s: %s, left running: %s\n", run.ID, run.State, run.EndAction)
	var sum time.Duration
	for _, t := range trials {
		out := t.Phase.String()
		if t.Failure != nil {
			out += " (" + t.Failure.Reason + ")"
		}
		tm := t.Timing()
		sum += tm.Deploy + tm.Boot + tm.Bench
		fmt.Fprintf(a.stdout, "  %2d  %-28s %6.1fs  %s\n", t.Seq, out, tm.Total.Seconds(), t.Candidate.Name)
	}
	if wall := orchestrator.RunWall(trials); wall > 0 {
		fmt.Fprintf(a.stdout, "time: %.1fs for the trials; recreate + boot + benchmark %.1fs; orchestrator overhead %.2f%%\n",
			wall.Seconds(), sum.Seconds(), 100*(wall-sum).Seconds()/wall.Seconds())
	}
	if v := run.Champion; v != nil {
		if v.Champion >= 0 {
			fmt.Fprintf(a.stdout, "champion: %s\n", v.Name)
		}
		fmt.Fprintf(a.stdout, "why: %s\n", v.Reason)
	}
	fmt.Fprintf(a.stdout, "report: vgrid report %s --format md|csv|html\n", run.ID)
	return nil
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

// localGPUs reads this host's GPUs from nvidia-smi (none without it).
func localGPUs() []benchmark.GPUSample {
	out, err := exec.Command("nvidia-smi", "--query-gpu="+benchmark.GPUQuery, "--format=csv,noheader,nounits").Output()
	if err != nil {
		return nil
	}
	ss, err := benchmark.ParseGPUCSV(strings.NewReader(string(out)), time.Now)
	if err != nil {
		return nil
	}
	return ss
}
