package sim

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vgrid/vgrid/vllm"
)

// Each release the simulator plays shows vLLM's own names on the wire: the
// reasoning field(s) and the metric names of that release.
func TestPersonalityOnTheWire(t *testing.T) {
	tests := []struct {
		version   string
		reasoning []string // keys of the non-streamed message holding the reasoning
		metrics   []string // present
		absent    []string
	}{
		{"0.9.2", []string{"reasoning_content"}, []string{"vllm:gpu_cache_usage_perc", "vllm:gpu_prefix_cache_queries_total"}, []string{"vllm:kv_cache_usage_perc", "vllm:prefix_cache_queries_total"}},
		{"0.10.1", []string{"reasoning_content"}, []string{"vllm:gpu_cache_usage_perc", "vllm:kv_cache_usage_perc", "vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total"}, nil},
		{"0.11.1", []string{"reasoning_content", "reasoning"}, []string{"vllm:kv_cache_usage_perc", "vllm:prefix_cache_queries_total"}, []string{"vllm:gpu_cache_usage_perc"}},
		{"0.27.0", []string{"reasoning"}, []string{"vllm:kv_cache_usage_perc"}, []string{"vllm:gpu_cache_usage_perc", "vllm:gpu_prefix_cache_queries_total"}},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			s := startSim(t, append(smallArgs, "--reasoning-parser", "qwen3"), map[string]string{"VLLM_SIM_VERSION": tt.version})
			body := chatBody("m", "What is 17 + 25?", 200)
			body["stream"] = false
			delete(body, "stream_options")
			b, _ := json.Marshal(body)
			resp, err := http.Post(s.url+"/v1/chat/completions", "application/json", bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			var doc struct {
				Choices []struct {
					Message map[string]any `json:"message"`
				} `json:"choices"`
			}
			json.NewDecoder(resp.Body).Decode(&doc)
			resp.Body.Close()
			var keys []string
			for _, k := range []string{"reasoning_content", "reasoning"} {
				if v, _ := doc.Choices[0].Message[k].(string); v != "" {
					keys = append(keys, k)
				}
			}
			if !slices.Equal(keys, tt.reasoning) {
				t.Errorf("reasoning in %v, want %v", keys, tt.reasoning)
			}
			// Streamed: the same keys in the deltas.
			r := post(t, s.url, "", chatBody("m", "What is 17 + 25?", 200))
			var rc, rs strings.Builder
			for _, c := range r.chunks {
				for _, ch := range c.Choices {
					rc.WriteString(ch.Delta.ReasoningContent)
					rs.WriteString(ch.Delta.Reasoning)
				}
			}
			var streamed []string
			if rc.Len() > 0 {
				streamed = append(streamed, "reasoning_content")
			}
			if rs.Len() > 0 {
				streamed = append(streamed, "reasoning")
			}
			if !slices.Equal(streamed, tt.reasoning) || r.reasoning == "" {
				t.Errorf("stream: reasoning in %v, want %v", streamed, tt.reasoning)
			}
			resp, err = http.Get(s.url + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			m, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, name := range tt.metrics {
				if !bytes.Contains(m, []byte("\n"+name+" ")) && !bytes.Contains(m, []byte("\n"+name+"{")) {
					t.Errorf("/metrics lacks %s", name)
				}
			}
			for _, name := range tt.absent {
				if bytes.Contains(m, []byte("\n"+name)) {
					t.Errorf("/metrics has %s, which %s does not expose", name, tt.version)
				}
			}
			// Readiness and config drift read every release's /metrics.
			if p := vllm.Probe(t.Context(), s.url, "m", "", 10*time.Second); !p.Ready {
				t.Errorf("probe: %+v", p)
			}
			eff, err := vllm.ScrapeEffective(t.Context(), s.url)
			if err != nil {
				t.Fatal(err)
			}
			if d := vllm.CheckDrift(vllm.ParseArgs(smallArgs), eff); d != "" {
				t.Errorf("drift: %s", d)
			}
		})
	}
}
