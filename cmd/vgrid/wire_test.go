package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// benchJSON runs vgrid bench --json against endpoint and decodes the report.
func benchJSON(t *testing.T, endpoint string, scenarios ...string) (stdout string, rep map[string]any) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "bench.json")
	args := []string{"bench", "--endpoint", endpoint, "--requests", "4", "--gpu", "off", "--json", out}
	for _, s := range scenarios {
		args = append(args, "--scenario", s)
	}
	var o, e bytes.Buffer
	if code := run(context.Background(), args, []string{"VLLM_API_KEY=unused"}, nil, &o, &e); code != 0 {
		t.Fatalf("vgrid bench: exit %d\n%s\n%s", code, o.String(), e.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("the JSON report was not written: %v\n%s", err, e.String())
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("the JSON report does not decode: %v", err)
	}
	return o.String(), rep
}

func server(rep map[string]any, scenario int) map[string]any {
	sc := rep["scenarios"].([]any)[scenario].(map[string]any)
	s, _ := sc["server"].(map[string]any)
	return s
}

// Issue 17 item 4: the benchmark reads both wire generations of vLLM: the
// reasoning field (reasoning_content up to 0.11.0, both until 0.16,
// reasoning after) is counted once, and the server metrics come under the
// names of each release.
func TestBenchOnBothWireGenerations(t *testing.T) {
	var reasoning []float64
	for _, version := range []string{"0.9.2", "0.11.1", "0.27.0"} {
		url := startSimVersion(t, version, "--model", "m", "--max-model-len", "8192", "--gpu-memory-utilization", "0.5", "--reasoning-parser", "qwen3")
		stdout, rep := benchJSON(t, url, "kv-cache", "reasoning")
		kv := server(rep, 0)
		if kv == nil || kv["prefix_cache_hit_rate"] == nil || kv["kv_cache_usage_peak"] == nil {
			t.Errorf("%s: server report %v", version, kv)
		}
		legacy, _ := kv["legacy_names"].([]any)
		if (version == "0.9.2") != (len(legacy) > 0) {
			t.Errorf("%s: legacy names %v", version, legacy)
		}
		if version == "0.9.2" && !strings.Contains(stdout, "read under an older vLLM's names: vllm:gpu_cache_usage_perc") {
			t.Errorf("%s: the summary does not say which names it read:\n%s", version, stdout)
		}
		// Reasoning chunks: the same answer, counted once whatever the field.
		var n float64
		for _, r := range rep["scenarios"].([]any)[1].(map[string]any)["results"].([]any) {
			n += r.(map[string]any)["reasoning_chunks"].(float64)
			text, _ := r.(map[string]any)["reasoning"].(string)
			n += float64(len(text)) // the text too: both fields must not be concatenated
		}
		reasoning = append(reasoning, n)
	}
	if reasoning[0] == 0 || reasoning[0] != reasoning[1] || reasoning[1] != reasoning[2] {
		t.Errorf("reasoning chunks per release %v: want the same count, not zero", reasoning)
	}
}

// metricsFilter proxies a server, serving its /metrics with only the
// families keep accepts.
func metricsFilter(t *testing.T, target string, keep func(name string) bool) string {
	t.Helper()
	u, _ := url.Parse(target)
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.FlushInterval = -1 // stream SSE as it comes
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			proxy.ServeHTTP(w, r)
			return
		}
		resp, err := http.Get(target + "/metrics")
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		var out strings.Builder
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			l := sc.Text()
			name := strings.TrimPrefix(strings.TrimPrefix(l, "# HELP "), "# TYPE ")
			name, _, _ = strings.Cut(name, " ")
			name, _, _ = strings.Cut(name, "{")
			if keep(name) {
				out.WriteString(l + "\n")
			}
		}
		io.WriteString(w, out.String())
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// Issue 17 item 4: a server that exposes no vLLM metrics at all, or only
// some under the newer names, gets its report written: what it does not
// expose is reported absent, never NaN, never zero.
func TestBenchKeepsTheReportWhenMetricsAreAbsent(t *testing.T) {
	url := startSim(t, "--model", "m", "--max-model-len", "8192", "--gpu-memory-utilization", "0.5")
	for _, tt := range []struct {
		name   string
		keep   func(string) bool
		absent []string
	}{
		{"no vLLM metrics", func(n string) bool { return !strings.HasPrefix(n, "vllm:") }, []string{"vllm:kv_cache_usage_perc", "vllm:num_requests_running", "vllm:num_preemptions_total", "vllm:prefix_cache_queries_total"}},
		{"newer names, some", func(n string) bool {
			return !strings.HasPrefix(n, "vllm:") || n == "vllm:kv_cache_usage_perc" || n == "vllm:num_requests_running"
		}, []string{"vllm:num_preemptions_total", "vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stdout, rep := benchJSON(t, metricsFilter(t, url, tt.keep), "kv-cache")
			s := server(rep, 0)
			var absent []string
			for _, a := range s["absent"].([]any) {
				absent = append(absent, a.(string))
			}
			for _, a := range tt.absent {
				if !slices.Contains(absent, a) {
					t.Errorf("absent %v lacks %s", absent, a)
				}
			}
			for _, k := range []string{"preemptions", "prefix_cache_queries", "prefix_cache_hit_rate"} {
				if _, ok := s[k]; ok {
					t.Errorf("%s reported (%v) though the server does not expose it", k, s[k])
				}
			}
			if !strings.Contains(stdout, "server metrics absent (this server does not expose them") {
				t.Errorf("the summary does not say what is absent:\n%s", stdout)
			}
		})
	}
}
