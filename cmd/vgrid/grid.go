package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vgrid/vgrid/benchmark"
	"github.com/vgrid/vgrid/orchestrator"
	"github.com/vgrid/vgrid/store"
	"github.com/vgrid/vgrid/vllm"
)

// userGrid is the user's grid_search_configs*.json.
type userGrid struct {
	Configs []struct {
		Name                string   `json:"name"`
		Description         string   `json:"description"`
		GPUMemory           *float64 `json:"gpu_memory"`
		PrefixCaching       *bool    `json:"prefix_caching"`
		ChunkedPrefill      *bool    `json:"chunked_prefill"`
		MaxNumSeqs          *int     `json:"max_num_seqs"`
		MaxNumBatchedTokens *int     `json:"max_num_batched_tokens"`
	} `json:"configs"`
}

// importGrid converts the user's JSON grid to a grid file. null means
// "leave the flag as the profile has it"; false is the explicit --no-
// negation, never an omission.
func importGrid(src []byte, source, name, profile, envFile, project, service string) (string, []string, error) {
	var ug userGrid
	if err := json.Unmarshal(src, &ug); err != nil {
		return "", nil, fmt.Errorf("not a grid_search_configs JSON: %w", err)
	}
	if len(ug.Configs) == 0 {
		return "", nil, fmt.Errorf("no configs in the file")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Imported by `vgrid grid import` from %s.\n", source)
	b.WriteString("# null in their file = the flag is left as the profile has it (not listed);\n")
	b.WriteString("# false = the explicit --no- negation, never an omission (vLLM V1 enables\n")
	b.WriteString("# prefix caching and chunked prefill by default).\n")
	fmt.Fprintf(&b, "name: %s\ntarget:\n  driver: compose\n  files: [%s]\n", name, profile)
	if envFile != "" {
		fmt.Fprintf(&b, "  env_file: %s\n", envFile)
	}
	fmt.Fprintf(&b, "  project: %s\n  service: %s\n  api_key_env: VLLM_API_KEY_MEDIUM\nspace:\n  candidates:\n", project, service)
	var warnings []string
	seen := map[string]string{}
	for _, c := range ug.Configs {
		flags := map[string]string{}
		if c.GPUMemory != nil {
			flags["gpu-memory-utilization"] = strconv.FormatFloat(*c.GPUMemory, 'f', -1, 64)
		}
		if c.PrefixCaching != nil {
			flags["enable-prefix-caching"] = strconv.FormatBool(*c.PrefixCaching)
		}
		if c.ChunkedPrefill != nil {
			flags["enable-chunked-prefill"] = strconv.FormatBool(*c.ChunkedPrefill)
		}
		if c.MaxNumSeqs != nil {
			flags["max-num-seqs"] = strconv.Itoa(*c.MaxNumSeqs)
		}
		if c.MaxNumBatchedTokens != nil {
			flags["max-num-batched-tokens"] = strconv.Itoa(*c.MaxNumBatchedTokens)
		}
		keys := make([]string, 0, len(flags))
		for k := range flags {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s: %q", k, flags[k]))
		}
		sig := strings.Join(parts, ", ")
		if other, ok := seen[sig]; ok {
			warnings = append(warnings, fmt.Sprintf("%s is identical to %s (same flags; the differences its name suggests are null in the file): both are kept, the pair shows run-to-run spread", c.Name, other))
		} else {
			seen[sig] = c.Name
		}
		if c.Description != "" {
			fmt.Fprintf(&b, "    # %s\n", strings.ReplaceAll(c.Description, "\n", " "))
		}
		fmt.Fprintf(&b, "    - name: %s\n      flags: {%s}\n", c.Name, sig)
	}
	b.WriteString(`benchmark:
  scenarios: [kv-cache, long-conversation, reasoning, tool-calling, stability]
  repetitions: 1
constraints:
  - errors == 0
objective:
  maximize: kv-cache.acceleration
tie: prefer lower gpu-memory-utilization
timeouts:
  ready: 30m
end: crown
hardware:               # for vgrid plan: 2x RTX 4090, GPU 0 shared with the desktop
  gpu_memory_mib: 24564
  gpu_used_mib: [1500, 0]
`)
	return b.String(), warnings, nil
}

func (a *app) gridCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "grid", Short: "Grid files: import the user's JSON grids"}
	var out, profile, envFile, project, service, name string
	imp := &cobra.Command{
		Use:   "import FILE.json [-o GRID.yaml] [--profile medium.yml] [--env-file .env] [-p PROJECT] [--service S]",
		Short: "Convert grid_search_configs*.json into a grid file",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			if name == "" {
				name = strings.TrimSuffix(strings.TrimSuffix(args[0][strings.LastIndex(args[0], "/")+1:], ".json"), "grid_search_configs")
				name = "mission14" + strings.ReplaceAll(name, "_", "-")
			}
			text, warnings, err := importGrid(src, filepath.Base(args[0]), name, profile, envFile, project, service)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if _, err := orchestrator.ParseGrid(name, []byte(text)); err != nil {
				return fmt.Errorf("the imported grid does not parse: %w", err)
			}
			for _, w := range warnings {
				fmt.Fprintln(a.stderr, "warning:", w)
			}
			w, closeFn, err := a.output(out)
			if err != nil {
				return err
			}
			fmt.Fprint(w, text)
			return closeFn()
		},
	}
	imp.Flags().StringVarP(&out, "output", "o", "", "write the grid file here (default stdout)")
	imp.Flags().StringVar(&profile, "profile", "myia_vllm/configs/docker/profiles/medium.yml", "the profile the grid targets (relative to the grid file)")
	imp.Flags().StringVar(&envFile, "env-file", "myia_vllm/.env", "the env file (relative to the grid file)")
	imp.Flags().StringVarP(&project, "project-name", "p", "myia_vllm", "compose project name")
	imp.Flags().StringVar(&service, "service", "vllm-medium-qwen3", "the vLLM service")
	imp.Flags().StringVar(&name, "name", "", "grid name (default from the file name)")
	cmd.AddCommand(imp)
	return cmd
}

func (a *app) planCommand() *cobra.Command {
	var storePath string
	cmd := &cobra.Command{
		Use:   "plan GRID.yaml",
		Short: "Expand and render every candidate (dry), predict whether it can boot, and estimate the run's duration",
		Long: `Renders every candidate without writing anything, predicts with the memory
model whether it can boot, flags candidates with identical flags, and
estimates the run's duration: from the store's history of trials of the
same image, model and tensor-parallel size (medians), else from the boot
and benchmark model, scaled by the target's VLLM_SIM_TIME_SCALE when it
runs the simulator.`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeFiles("yaml", "yml", "json"),
		RunE: func(cmd *cobra.Command, args []string) error {
			g, err := loadGrid(args[0])
			if err != nil {
				return usageError{err}
			}
			log, _ := a.logger("console")
			drv, err := a.driver(cmd.Context(), g, filepath.Join(os.TempDir(), "vgrid-plan"), log)
			if err != nil {
				return err
			}
			defer drv.Close()
			hist := orchestrator.NewHistory()
			histNote := "no store yet"
			if st, err := a.readStore(storePath); err == nil {
				n, err := learn(st, hist)
				histNote = fmt.Sprintf("%d past trial(s) in %s", n, st.Path())
				st.Close()
				if err != nil {
					return err
				}
			}
			env := serverEnv(drv)
			feasible := feasibility(g, renderWords(cmd.Context(), drv))
			cands := g.Expand()
			tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "#\tCANDIDATE\tRENDER\tPREDICTION\tESTIMATE")
			runnable := 0
			var total time.Duration
			sources := map[string]int{}
			for i, c := range cands {
				render, est := "ok", "-"
				r, err := drv.Render(cmd.Context(), c)
				if err != nil {
					render = "error: " + err.Error()
				}
				ok, why := feasible(c)
				pred := "boots: " + why
				if !ok {
					pred = "FAILS: " + why
				} else {
					runnable++
				}
				if r != nil {
					d, src := hist.Estimate(orchestrator.ClassOf(r.Image, r.Words), !ok, modelDurations(g, r.Words, env))
					sources[src]++
					total += d.Total(g.Benchmark.Repetitions)
					est = d.Total(g.Benchmark.Repetitions).Round(time.Second).String() + " (" + src + ")"
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", i, c.Name, render, pred, est)
			}
			tw.Flush()
			for _, dup := range orchestrator.Duplicates(cands) {
				var names []string
				for _, i := range dup {
					names = append(names, fmt.Sprintf("%d (%s)", i, cands[i].Name))
				}
				fmt.Fprintf(a.stdout, "warning: candidates %s have identical flags: each will run, and their difference is run-to-run noise\n", strings.Join(names, ", "))
			}
			var srcs []string
			for s, n := range sources {
				srcs = append(srcs, fmt.Sprintf("%d from %s", n, s))
			}
			sort.Strings(srcs)
			scale := ""
			if v := env["VLLM_SIM_TIME_SCALE"]; v != "" {
				scale = ", simulator time scale " + v
			}
			fmt.Fprintf(a.stdout, "%d candidates, %d predicted to boot; estimated %s (%s; history: %s%s)\n",
				len(cands), runnable, total.Round(time.Second), strings.Join(srcs, ", "), histNote, scale)
			return nil
		},
	}
	a.storeFlag(cmd, &storePath)
	return cmd
}

// learn feeds every stored run's trials to the history; it returns how
// many trials it read.
func learn(st *store.Store, h *orchestrator.History) (int, error) {
	runs, err := st.Runs()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range runs {
		trials, err := st.Trials(r.ID)
		if err != nil {
			return n, err
		}
		h.Add(r, trials)
		n += len(trials)
	}
	return n, nil
}

// serverEnv is the environment the target's server runs with, when the
// driver knows it.
func serverEnv(d orchestrator.Driver) map[string]string {
	if e, ok := d.(interface{ ServerEnv() map[string]string }); ok {
		return e.ServerEnv()
	}
	return nil
}

// modelDurations is the model's estimate of a trial when the store has no
// history: the simulator's boot model (docs/sim.md) and a token-rate model
// of the benchmark, scaled by VLLM_SIM_TIME_SCALE (and the boot by
// VLLM_SIM_BOOT_SLOWDOWN) when the server is the simulator.
func modelDurations(g *orchestrator.Grid, words []string, env map[string]string) orchestrator.Durations {
	scale, boot := 1.0, 1.0
	if v, err := strconv.ParseFloat(env["VLLM_SIM_TIME_SCALE"], 64); err == nil && v > 0 {
		scale = v
	}
	if v, err := strconv.ParseFloat(env["VLLM_SIM_BOOT_SLOWDOWN"], 64); err == nil {
		boot = v
	}
	seconds := 165.0 // a 32B AWQ model on TP 2, when the words do not parse
	cfg, arch, gpus, err := simSetup(g, words)
	if err == nil {
		seconds = vllm.BootSeconds(cfg, arch, gpus)
	}
	names, _ := benchmark.CheckNames(g.Benchmark.Scenarios)
	bench := g.Benchmark.Resolve().Estimate(names, benchmark.Timing{BaseMs: 20, PrefillMsPerToken: 0.15, ITLMs: 25})
	return orchestrator.Durations{Boot: time.Duration(seconds * scale * boot * float64(time.Second)), Bench: time.Duration(float64(bench) * scale)}
}
