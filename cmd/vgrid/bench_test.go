package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vgrid/vgrid/sim"
	"github.com/vgrid/vgrid/vllm"
)

func startSim(t *testing.T, args ...string) string {
	t.Helper()
	return startSimVersion(t, "", args...)
}

// startSimVersion starts the simulator playing a vLLM release ("" for the
// default).
func startSimVersion(t *testing.T, version string, args ...string) string {
	t.Helper()
	c, err := vllm.ParseServeArgs(args)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"VLLM_SIM_TIME_SCALE": "0.1", "VLLM_SIM_BOOT_SLOWDOWN": "0", "VLLM_SIM_VERSION": version}
	ev, err := sim.EnvFromGetenv(c, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	e, err := sim.Boot(context.Background(), c, ev, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return "http://" + ln.Addr().String()
}

func TestBenchCommand(t *testing.T) {
	url := startSim(t, "--model", "m", "--api-key", "k-123456", "--enable-prompt-tokens-details", "--max-model-len", "8192", "--gpu-memory-utilization", "0.5")
	out := filepath.Join(t.TempDir(), "bench.json")
	var stdout, stderr bytes.Buffer
	env := []string{"MY_KEY=k-123456"}
	code := run(context.Background(), []string{"bench", "--endpoint", url, "--api-key-env", "MY_KEY", "--scenario", "kv-cache", "--requests", "4", "--gpu", "off", "--json", out}, env, nil, &stdout, &stderr)
	if code != 0 || !strings.Contains(stdout.String(), "acceleration") {
		t.Fatalf("code %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("k-123456")) || bytes.Contains(stdout.Bytes(), []byte("k-123456")) || bytes.Contains(stderr.Bytes(), []byte("k-123456")) {
		t.Error("the API key was written out")
	}
	var rep struct {
		Model     string `json:"model"`
		Scenarios []map[string]json.RawMessage
	}
	if err := json.Unmarshal(b, &rep); err != nil || rep.Model != "m" || len(rep.Scenarios) != 1 {
		t.Fatalf("json: %v %+v", err, rep)
	}
	for _, k := range []string{"ttft_ms", "ttft_content_ms", "tpot_ms", "itl_ms", "e2el_ms", "output_throughput_tok_s", "request_throughput_rps", "errors", "acceleration", "results"} {
		if _, ok := rep.Scenarios[0][k]; !ok {
			t.Errorf("scenario JSON lacks %q", k)
		}
	}
	// Wrong key: the run stops with the variable named.
	code, _, errs := vgrid(t, "bench", "--endpoint", url, "--scenario", "kv-cache")
	if code != 1 || !strings.Contains(errs, "$VLLM_API_KEY is empty") {
		t.Errorf("no key: %d %s", code, errs)
	}
	for _, args := range [][]string{{"bench"}, {"bench", "--endpoint", url, "--scenario", "nope"}, {"bench", "--endpoint", url, "--concurrency", "0"}} {
		if code, _, _ := vgrid(t, args...); code != 2 {
			t.Errorf("%v: code %d, want 2", args, code)
		}
	}
}

// Issue 18 items 15 and 17: one summary row per load level, goodput beside
// the achieved rate; synthetic and ShareGPT workloads and the rate sweep
// from the command line.
func TestBenchLevelsWorkloadsAndSweep(t *testing.T) {
	url := startSim(t, "--model", "m", "--max-model-len", "8192")
	code, out, errs := vgrid(t, "bench", "--endpoint", url, "--scenario", "load", "--concurrency", "1,2", "--rates", "3", "--requests", "4",
		"--workload", "synthetic", "--input-tokens", "uniform:20:40", "--output-tokens", "8", "--seed", "5", "--gpu", "off")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	for _, want := range []string{"load c=1 ", "load c=2 ", "load 3 rps ", "rate 3 req/s asked, ", " achieved: goodput ", "% met the SLOs"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\n               load ") {
		t.Errorf("a row averages the load levels:\n%s", out)
	}
	code, out, errs = vgrid(t, "bench", "--endpoint", url, "--scenario", "sweep", "--requests", "6", "--workload", "sharegpt",
		"--dataset", "../../benchmark/testdata/sharegpt/real.json", "--slo", "ttft=5000", "--gpu", "off")
	if code != 0 || !strings.Contains(out, "capacity at concurrency 16") || !strings.Contains(out, "highest rate meeting TTFT <= 5000 ms") {
		t.Errorf("sweep: exit %d\n%s%s", code, out, errs)
	}
	for _, args := range [][]string{
		{"bench", "--endpoint", url, "--workload", "sharegpt"},
		{"bench", "--endpoint", url, "--workload", "synthetic", "--input-tokens", "gauss:1:2"},
		{"bench", "--endpoint", url, "--slo", "ttft=fast"},
	} {
		if code, _, errs := vgrid(t, args...); code != 2 {
			t.Errorf("%v: exit %d (%s), want 2", args, code, errs)
		}
	}
}
