package report

import (
	"encoding/csv"
	"encoding/json"
	"github.com/vgrid/vgrid/orchestrator"
	"io"
	"strconv"

	"github.com/vgrid/vgrid/benchmark"
)

// ExportJSON writes everything stored for a run: the run (with its grid as
// written), its trials and every raw report, by trial seq.
func ExportJSON(w io.Writer, run *orchestrator.Run, trials []*orchestrator.Trial, reports map[int][]*benchmark.Report) error {
	return json.NewEncoder(w).Encode(map[string]any{"run": run, "trials": trials, "reports": reports})
}

// ExportCSV writes one row per measured request, one value per cell.
func ExportCSV(w io.Writer, trials []*orchestrator.Trial, reports map[int][]*benchmark.Report) error {
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
