package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/vgrid/vgrid/benchmark"
	"github.com/vgrid/vgrid/orchestrator"
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

// openRun opens the store and loads a run with its trials and reports; the
// caller closes the store.
func (a *app) openRun(storePath, id string) (*store.Store, *orchestrator.Run, []*orchestrator.Trial, map[int][]*benchmark.Report, error) {
	st, err := a.openStore(storePath)
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
	var storePath, format, out string
	cmd := &cobra.Command{
		Use:   "report RUN [--format md|csv|html] [-o FILE]",
		Short: "The comparison of a run's candidates, computed from its stored samples (RUN may be latest)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if c, err := a.server(); err != nil || c != nil {
				if err != nil {
					return err
				}
				return a.remoteCopy(cmd.Context(), c, "/v1/runs/"+args[0]+"/report?format="+format)
			}
			st, run, trials, reports, err := a.openRun(storePath, args[0])
			if err != nil {
				return err
			}
			defer st.Close()
			d := orchestrator.BuildReport(run, trials, reports)
			w, closeFn, err := a.output(out)
			if err != nil {
				return err
			}
			switch format {
			case "md", "markdown":
				d.Markdown(w)
			case "csv":
				err = d.CSV(w)
			case "html":
				err = d.HTML(w)
			default:
				closeFn()
				return usagef("--format %q: want md, csv or html", format)
			}
			if err != nil {
				closeFn()
				return err
			}
			return closeFn()
		},
	}
	a.storeFlag(cmd, &storePath)
	cmd.Flags().StringVar(&format, "format", "md", "md, csv or html")
	cmd.Flags().StringVarP(&out, "output", "o", "", "write to FILE instead of stdout")
	return cmd
}

func (a *app) runsCommand() *cobra.Command {
	var storePath string
	cmd := &cobra.Command{Use: "runs", Short: "List, show and export stored runs"}
	list := &cobra.Command{
		Use: "list", Short: "List runs, newest first", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if c, err := a.server(); err != nil || c != nil {
				if err != nil {
					return err
				}
				return a.remoteList(cmd.Context(), c)
			}
			st, err := a.openStore(storePath)
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
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.ID, r.State, r.Grid.Name, r.Target, champ)
			}
			return tw.Flush()
		},
	}
	var asJSON bool
	show := &cobra.Command{
		Use: "show RUN [--json]", Short: "A run's trials with their phases, failures and the champion", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if c, err := a.server(); err != nil || c != nil {
				if err != nil {
					return err
				}
				return a.remoteCopy(cmd.Context(), c, "/v1/runs/"+args[0])
			}
			st, run, trials, _, err := a.openRun(storePath, args[0])
			if err != nil {
				return err
			}
			defer st.Close()
			if asJSON {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(map[string]any{"run": run, "trials": trials})
			}
			return a.printVerdict(st, run.ID)
		},
	}
	show.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	var format, out string
	export := &cobra.Command{
		Use: "export RUN --format json|csv [-o FILE]", Short: "Everything stored for a run: JSON (run, trials, raw reports) or CSV (one row per request)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, run, trials, reports, err := a.openRun(storePath, args[0])
			if err != nil {
				return err
			}
			defer st.Close()
			w, closeFn, err := a.output(out)
			if err != nil {
				return err
			}
			switch format {
			case "json":
				err = json.NewEncoder(w).Encode(map[string]any{"run": run, "trials": trials, "reports": reports})
			case "csv":
				err = exportCSV(w, trials, reports)
			default:
				closeFn()
				return usagef("--format %q: want json or csv", format)
			}
			if err != nil {
				closeFn()
				return err
			}
			return closeFn()
		},
	}
	export.Flags().StringVar(&format, "format", "json", "json or csv")
	export.Flags().StringVarP(&out, "output", "o", "", "write to FILE instead of stdout")
	cmd.AddCommand(list, show, export)
	cmd.PersistentFlags().StringVar(&storePath, "store", "", "bbolt store file (default $VGRID_STORE or ~/.local/share/vgrid/vgrid.db)")
	return cmd
}

// exportCSV writes one row per measured request.
func exportCSV(w io.Writer, trials []*orchestrator.Trial, reports map[int][]*benchmark.Report) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"trial", "candidate", "repetition", "scenario", "seq", "tag", "class", "warmup", "sent", "ttft_ms", "ttft_content_ms",
		"e2el_ms", "output_tokens", "prompt_tokens", "cached_tokens", "finish_reason", "status", "error"})
	ms := func(d int64) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 3, 64) }
	for _, t := range trials {
		for rep, r := range reports[t.Seq] {
			for _, s := range r.Scenarios {
				for _, x := range s.Results {
					cw.Write([]string{strconv.Itoa(t.Seq), t.Candidate.Name, strconv.Itoa(rep), s.Name, strconv.Itoa(x.Seq), x.Tag, x.Class,
						strconv.FormatBool(x.Warmup), x.Sent.Format("2006-01-02T15:04:05.000000Z07:00"), ms(int64(x.TTFT)), ms(int64(x.TTFC)),
						ms(int64(x.E2EL)), strconv.Itoa(x.OutputTokens), strconv.Itoa(x.PromptTokens), strconv.Itoa(x.CachedTokens),
						x.FinishReason, strconv.Itoa(x.Status), x.Err})
				}
			}
		}
	}
	cw.Flush()
	return cw.Error()
}
