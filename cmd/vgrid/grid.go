package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/vgrid/vgrid/driver"
	"github.com/vgrid/vgrid/driver/assemble"
	"github.com/vgrid/vgrid/orchestrator"
	"github.com/vgrid/vgrid/store"
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

// importOptions are what the JSON grid does not say: where the profile
// is, the benchmark's API key variable, and the GPUs for plan's estimates
// (from flags, else nvidia-smi here, else left out).
type importOptions struct {
	name, profile, envFile, project, service, apiKeyEnv string
	gpuMemoryMiB                                        float64
	gpuUsedMiB                                          []float64
	hardwareFrom                                        string // "the command line", "nvidia-smi on this host", or "" (none)
	command                                             string // how it was imported, for the file's header
}

// importGrid converts the user's JSON grid to a grid file. null means
// "leave the flag as the profile has it"; false is the explicit --no-
// negation, never an omission.
func importGrid(src []byte, source string, o importOptions) (string, []string, error) {
	var ug userGrid
	if err := json.Unmarshal(src, &ug); err != nil {
		return "", nil, fmt.Errorf("not a grid_search_configs JSON: %w", err)
	}
	if len(ug.Configs) == 0 {
		return "", nil, fmt.Errorf("no configs in the file")
	}
	// The grid is built as YAML nodes and written by the YAML library: names,
	// paths and descriptions are quoted as YAML needs, comments kept.
	str := func(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: v} }
	quoted := func(v string) *yaml.Node {
		return &yaml.Node{Kind: yaml.ScalarNode, Value: v, Style: yaml.DoubleQuotedStyle}
	}
	num := func(v float64) *yaml.Node { return str(strconv.FormatFloat(v, 'f', -1, 64)) }
	mapping := func(flow bool, kv ...*yaml.Node) *yaml.Node {
		n := &yaml.Node{Kind: yaml.MappingNode, Content: kv}
		if flow {
			n.Style = yaml.FlowStyle
		}
		return n
	}
	seq := func(flow bool, items ...*yaml.Node) *yaml.Node {
		n := &yaml.Node{Kind: yaml.SequenceNode, Content: items}
		if flow {
			n.Style = yaml.FlowStyle
		}
		return n
	}
	target := mapping(false, str("driver"), str("compose"), str("files"), seq(true, str(o.profile)))
	if o.envFile != "" {
		target.Content = append(target.Content, str("env_file"), str(o.envFile))
	}
	target.Content = append(target.Content, str("project"), str(o.project))
	if o.service != "" {
		target.Content = append(target.Content, str("service"), str(o.service))
	}
	if o.apiKeyEnv != "" {
		target.Content = append(target.Content, str("api_key_env"), str(o.apiKeyEnv))
	}
	cands := seq(false)
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
		fm := mapping(true)
		var sig []string
		for _, k := range slices.Sorted(maps.Keys(flags)) {
			fm.Content = append(fm.Content, str(k), quoted(flags[k])) // a string, as vLLM reads it
			sig = append(sig, k+"="+flags[k])
		}
		if other, ok := seen[strings.Join(sig, " ")]; ok {
			warnings = append(warnings, fmt.Sprintf("%s is identical to %s (same flags; the differences its name suggests are null in the file): both are kept, the pair shows run-to-run spread", c.Name, other))
		} else {
			seen[strings.Join(sig, " ")] = c.Name
		}
		item := mapping(false, str("name"), str(c.Name), str("flags"), fm)
		item.HeadComment = strings.Join(strings.Fields(c.Description), " ")
		cands.Content = append(cands.Content, item)
	}
	root := mapping(false,
		str("name"), str(o.name),
		str("target"), target,
		str("space"), mapping(false, str("candidates"), cands),
		str("benchmark"), mapping(false,
			str("scenarios"), seq(true, str("kv-cache"), str("long-conversation"), str("reasoning"), str("tool-calling"), str("stability")),
			str("repetitions"), str("1")),
		str("constraints"), seq(false, str("errors == 0")),
		str("objective"), mapping(false, str("maximize"), str("kv-cache.acceleration")),
		str("tie"), str("prefer lower gpu-memory-utilization"),
		str("timeouts"), mapping(false, str("ready"), str("30m")),
		str("end"), str("crown"))
	if o.hardwareFrom != "" {
		hw := mapping(false, str("gpu_memory_mib"), num(o.gpuMemoryMiB))
		if len(o.gpuUsedMiB) > 0 {
			used := seq(true)
			for _, u := range o.gpuUsedMiB {
				used.Content = append(used.Content, num(u))
			}
			hw.Content = append(hw.Content, str("gpu_used_mib"), used)
		}
		key := str("hardware")
		key.LineComment = "for vgrid plan, from " + o.hardwareFrom
		root.Content = append(root.Content, key, hw)
	} else {
		warnings = append(warnings, "no hardware section: no --gpu-memory-mib was given and nvidia-smi does not answer here; vgrid plan and run will read nvidia-smi on the host that runs them")
	}
	doc := &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{root}, HeadComment: fmt.Sprintf(`Imported from %s by:
  %s
null in their file = the flag is left as the profile has it (not listed);
false = the explicit --no- negation, never an omission (vLLM V1 enables
prefix caching and chunked prefill by default).`, source, o.command)}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return "", nil, err
	}
	enc.Close()
	return b.String(), warnings, nil
}

func (a *app) gridCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "grid", Short: "Grid files: import the user's JSON grids"}
	var out string
	var o importOptions
	var gpuUsed []float64
	imp := &cobra.Command{
		Use:   "import FILE.json [-o GRID.yaml] [--profile medium.yml] [--env-file .env] [-p PROJECT] [--service S] [--api-key-env VAR] [--gpu-memory-mib N --gpu-used-mib A,B]",
		Short: "Convert grid_search_configs*.json into a grid file",
		Long: `Convert the user's grid_search_configs*.json into a grid file. What the JSON
does not say comes from the flags: the profile, env file, project and
service, the benchmark's API key variable (default: the profile's own
--api-key), and the GPUs for vgrid plan (--gpu-memory-mib, --gpu-used-mib;
default: nvidia-smi on this host, else none, and it says so).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			if o.name == "" {
				// grid_search_configs.json -> mission14, ..._validation.json -> mission14-validation
				o.name = strings.TrimPrefix(strings.TrimSuffix(filepath.Base(args[0]), ".json"), "grid_search_configs")
				o.name = "mission14" + strings.ReplaceAll(o.name, "_", "-")
			}
			o.gpuUsedMiB = gpuUsed
			switch {
			case o.gpuMemoryMiB > 0:
				o.hardwareFrom = "the command line"
			case len(gpuUsed) > 0:
				return usagef("--gpu-used-mib needs --gpu-memory-mib (each GPU's total)")
			default:
				if gpus := driver.LocalGPUs(); len(gpus) > 0 {
					o.gpuMemoryMiB, o.gpuUsedMiB = gpus[0].MemTotalMiB, nil
					for _, g := range gpus {
						o.gpuUsedMiB = append(o.gpuUsedMiB, g.MemUsedMiB)
					}
					o.hardwareFrom = fmt.Sprintf("nvidia-smi on this host (%d GPUs)", len(gpus))
				}
			}
			o.command = "vgrid grid import " + filepath.Base(args[0])
			cmd.Flags().Visit(func(f *pflag.Flag) {
				switch f.Name {
				case "output":
				case "gpu-used-mib":
					var used []string
					for _, u := range gpuUsed {
						used = append(used, strconv.FormatFloat(u, 'f', -1, 64))
					}
					o.command += " --gpu-used-mib " + strings.Join(used, ",")
				default:
					o.command += " --" + f.Name + " " + f.Value.String()
				}
			})
			text, warnings, err := importGrid(src, filepath.Base(args[0]), o)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if _, err := orchestrator.ParseGrid(o.name, []byte(text)); err != nil {
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
			return a.wrote(out, closeFn)
		},
	}
	imp.Flags().StringVarP(&out, "output", "o", "", "write the grid file here (default stdout)")
	imp.Flags().StringVar(&o.profile, "profile", "myia_vllm/configs/docker/profiles/medium.yml", "the profile the grid targets (relative to the grid file)")
	imp.Flags().StringVar(&o.envFile, "env-file", "myia_vllm/.env", "the env file (relative to the grid file)")
	imp.Flags().StringVarP(&o.project, "project-name", "p", "myia_vllm", "compose project name")
	imp.Flags().StringVar(&o.service, "service", "", "the vLLM service (default: the only service that runs vLLM)")
	imp.Flags().StringVar(&o.apiKeyEnv, "api-key-env", "", "the environment variable with the benchmark's API key (default: the profile's own --api-key)")
	imp.Flags().Float64Var(&o.gpuMemoryMiB, "gpu-memory-mib", 0, "each GPU's memory in MiB, for plan's estimates (default: nvidia-smi here)")
	imp.Flags().Float64SliceVar(&gpuUsed, "gpu-used-mib", nil, "MiB used by other processes on each GPU, e.g. 1500,0 (a desktop on GPU 0)")
	imp.Flags().StringVar(&o.name, "name", "", "grid name (default from the file name)")
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
			histNote := "no store yet"
			var st *store.Store
			if st, err = a.readStore(storePath); err == nil {
				defer st.Close()
			} else {
				st = nil
				var damaged *store.DamagedError
				if errors.As(err, &damaged) || !errors.Is(err, store.ErrNoStore) {
					histNote = "the store was not read: " + err.Error()
				}
			}
			// The same assembly as vgrid run's: the same feasibility (slots
			// included) and estimates.
			opt, n, err := a.assembleOptions(st, pathHelpCache{a.storePath(storePath)}, log)
			if err != nil {
				return err
			}
			parts, err := assemble.Build(cmd.Context(), g, filepath.Join(os.TempDir(), "vgrid-plan"), opt)
			if err != nil {
				return err
			}
			defer parts.Close()
			drv := parts.Driver
			if st != nil {
				histNote = fmt.Sprintf("%d past trial(s) in %s", n, st.Path())
			}
			env := driver.ServerEnv(drv)
			now := time.Now()
			deadline, _ := orchestrator.ParseDeadline(g.Deadline, now)
			cands := g.Expand()
			// The flags first, against the --help of the vLLM that will run
			// them: a refused candidate is said so in the table, once.
			flagErr := orchestrator.CheckFlags(cmd.Context(), drv, cands)
			var refused *orchestrator.FlagsRefusedError
			refusedAt := map[int]string{}
			if errors.As(flagErr, &refused) {
				refusedAt = refused.Refused()
			}
			// A prediction shared by several candidates, or a long one, is a
			// numbered note under the table instead of a repeated cell.
			var notes []string
			note := func(text string) string {
				if len(text) <= 48 {
					return text
				}
				i := slices.Index(notes, text)
				if i < 0 {
					notes = append(notes, text)
					i = len(notes) - 1
				}
				return fmt.Sprintf("note %d", i+1)
			}
			tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
			header := "#\tCANDIDATE\tRENDER\tPREDICTION\tESTIMATE"
			if !deadline.IsZero() && !g.Search.Adaptive() {
				header += "\tBY THE DEADLINE"
			}
			fmt.Fprintln(tw, header)
			runnable := 0
			var total time.Duration
			var perTrial []time.Duration
			sources := map[string]int{}
			fit := 0
			for i, c := range cands {
				render, estText := "ok", "-"
				d, src := parts.Estimate(cmd.Context(), c)
				estimated := src != ""
				if !estimated {
					if _, err := drv.Render(cmd.Context(), c); err != nil {
						render = "error: " + err.Error()
					}
				}
				var pred string
				switch ok, why := parts.Feasible(c); {
				case refusedAt[i] != "":
					pred, estimated = "REFUSED: "+note(refusedAt[i]), false // never booted: nothing to estimate
				case !ok:
					pred = "FAILS: " + note(why)
				default:
					pred = "boots: " + note(why)
					runnable++
				}
				if estimated {
					sources[src]++
					total += d
					perTrial = append(perTrial, d)
					estText = orchestrator.About(d) + " (" + src + ")"
				}
				line := fmt.Sprintf("%d\t%s\t%s\t%s\t%s", i, c.Name, render, pred, estText)
				if !deadline.IsZero() && !g.Search.Adaptive() {
					// As the run decides: this trial, and the time kept for
					// confirm's boots after it.
					kept := g.ConfirmReserve(d, len(g.Target.Slots))
					if now.Add(total + kept).After(deadline) {
						line += "\tno: would end at " + now.Add(total).Format("15:04")
					} else {
						line += "\tyes: ends by " + now.Add(total).Format("15:04")
						fit++
					}
				}
				fmt.Fprintln(tw, line)
			}
			tw.Flush()
			for i, n := range notes {
				fmt.Fprintf(a.stdout, "note %d: %s\n", i+1, n)
			}
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
			from := strings.Join(srcs, ", ")
			if from != "" {
				from += "; "
			}
			fmt.Fprintf(a.stdout, "%d candidates, %d predicted to boot; estimated %s (%shistory: %s%s)\n",
				len(cands), runnable, orchestrator.About(total), from, histNote, scale)
			fmt.Fprintln(a.stdout, searchSummary(g, deadline, now, perTrial, fit))
			if err := orchestrator.CheckSchedule(g, deadline, now, perTrial); err != nil {
				return usageError{err}
			}
			if err := orchestrator.CheckConfirm(g, deadline, now, orchestrator.MedianDuration(perTrial), max(1, len(g.Target.Slots))); err != nil {
				return usageError{err}
			}
			// Whether anything can start at all: vgrid run would fail every trial.
			if err := orchestrator.CheckTarget(cmd.Context(), drv); err != nil {
				return fmt.Errorf("no candidate can start on %s: %w", g.Target.Key(), err)
			}
			switch err := flagErr; {
			case err == nil:
				if _, ok := drv.(orchestrator.FlagChecker); ok {
					fmt.Fprintln(a.stdout, "flags: every candidate's flags are accepted by the server's own --help")
				}
			case errors.As(err, new(*orchestrator.FlagsRefusedError)):
				return err // vgrid run would refuse this grid before booting anything
			default:
				fmt.Fprintf(a.stdout, "note: flags not checked against the server's own --help: %v\n", err)
			}
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
