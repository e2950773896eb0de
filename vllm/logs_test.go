package vllm

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestClassifyLine(t *testing.T) {
	tests := []struct {
		line string
		want Cause
	}{
		{"ValueError: Free memory on device cuda:0 (22.52/23.99 GiB) on startup is less than desired GPU memory utilization (0.95, 22.79 GiB).", CauseFreeMemory},
		{"ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization`", CauseNoKVMemory},
		{"ValueError: To serve at least one request with the models's max seq len (131072), (8.00 GiB KV cache is needed", CauseKVTooSmall},
		{"ValueError: To serve at least one request with the model's max seq len (131072)", CauseKVTooSmall},
		{"ValueError: The model's max seq len (131072) is larger than the maximum number of tokens that can be stored in KV cache (98304).", CauseKVTooSmall},
		{"torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 686.00 MiB.", CauseOOM},
		{"vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue.", CauseEngineDead},
		{"vllm serve: error: unrecognized arguments: --bogus", CauseBadArgs},
		{"api_server.py: error: argument --gpu-memory-utilization: invalid float value: 'x'", CauseBadArgs},
		{"INFO 10-20 Available KV cache memory: 9.86 GiB", ""},
		{"WARNING the unhealthy neighbour", ""},
	}
	for _, tt := range tests {
		got, ok := ClassifyLine(tt.line)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("ClassifyLine(%q) = %q, %v; want %q", tt.line, got, ok, tt.want)
		}
	}
}

// TestRealLogs reads every log of testdata/logs/INDEX.md and checks the
// cause vgrid reads from it against the table: real failures of every
// reason vgrid knows, and no failure in the successful startups.
func TestRealLogs(t *testing.T) {
	index, err := os.ReadFile("testdata/logs/INDEX.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile(`(?m)^\| ([\w.-]+\.log) \| [^|]*(?:\\\|[^|]*)* \| (\w+) \| (\S+) \|$`)
	rows := row.FindAllStringSubmatch(string(index), -1)
	if len(rows) < 30 {
		t.Fatalf("INDEX.md lists %d logs, want at least 30", len(rows))
	}
	files, _ := filepath.Glob("testdata/logs/*.log")
	if len(files) != len(rows) {
		t.Errorf("%d log files but %d rows in INDEX.md", len(files), len(rows))
	}
	seen := map[Cause]bool{}
	successes := 0
	for _, r := range rows {
		file, want := r[1], Cause(r[2])
		if want == "none" {
			want = ""
			successes++
		}
		t.Run(file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata/logs", file))
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(string(b), "\n")
			f, ok := Classify(lines)
			if f.Cause != want || ok != (want != "") {
				t.Errorf("cause %q (line %q), want %q", f.Cause, f.Line, want)
			}
			seen[f.Cause] = true
			// Streaming: the same cause, on its proving line or at the end.
			var c Classifier
			var got Cause
			for _, l := range lines {
				if f, ok := c.Line(l); ok {
					got = f.Cause
					break
				}
			}
			if got == "" {
				if f, ok := c.Result(); ok {
					got = f.Cause
				}
			}
			if got != want {
				t.Errorf("streaming: %q, want %q", got, want)
			}
		})
	}
	for _, c := range []Cause{CauseFreeMemory, CauseNoKVMemory, CauseKVTooSmall, CauseOOM, CauseEngineDead, CauseBadArgs, CauseNCCL, CauseModelNotFound, CauseGraphOOM, CauseQuantization} {
		if !seen[c] {
			t.Errorf("no real log of %s", c)
		}
	}
	if successes < 3 {
		t.Errorf("%d successful startups, want at least 3", successes)
	}
}

// A root cause printed after EngineDeadError (the engine core's traceback
// comes after the API server's) wins; alone, EngineDeadError is engine_dead.
func TestEngineDeadYieldsToRootCause(t *testing.T) {
	lines := []string{
		"(APIServer pid=697224) ERROR 01-08 17:16:15 [serving_chat.py:1278] vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue. See stack trace (above) for the root cause.",
		"(EngineCore_DP0 pid=697344) Traceback (most recent call last):",
		"(EngineCore_DP0 pid=697344) torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.",
	}
	if f, _ := Classify(lines); f.Cause != CauseOOM {
		t.Errorf("got %q, want oom", f.Cause)
	}
	if f, _ := Classify(lines[:2]); f.Cause != CauseEngineDead {
		t.Errorf("alone: got %q, want engine_dead", f.Cause)
	}
}

func TestClean(t *testing.T) {
	for in, want := range map[string]string{
		"> [2026-01-26T17:25:37Z] ^[[0;36m(EngineCore_DP0 pid=738)^[[0;0m ^[[31mERROR^[[0m x": "ERROR x",
		"vllm-1  | ERROR 11-18 18:07:28 engine.py:366] y":                                     "ERROR 11-18 18:07:28 engine.py:366] y",
		"(Worker pid=2291010) [Stage-0] ERROR 03-12 z":                                        "ERROR 03-12 z",
		"[rank0]: RuntimeError: CUDA error: out of memory":                                    "RuntimeError: CUDA error: out of memory",
		"│ INFO 03-21 20:15:44 [monitor.py:33] torch.compile      │":                          "INFO 03-21 20:15:44 [monitor.py:33] torch.compile",
		"(VllmWorker rank=1 pid=2699412) ERROR 08-11":                                         "ERROR 08-11",
		"\x1b[0;36m(APIServer pid=1)\x1b[0;0m INFO:     Started":                              "INFO:     Started",
	} {
		if got := Clean(in); got != want {
			t.Errorf("Clean(%q) = %q, want %q", in, got, want)
		}
	}
}

// The boot breakdown reads every version's wording.
func TestParseBootRealWordings(t *testing.T) {
	b := ParseBoot([]string{
		"(EngineCore_DP0 pid=441) INFO 11-24 11:43:54 [gpu_model_runner.py:3341] Model loading took 2.0513 GiB memory and 27.200487 seconds",
		"(EngineCore_DP0 pid=441) INFO 11-24 11:44:16 [monitor.py:34] torch.compile takes 19.69 s in total",
		"(EngineCore_DP0 pid=188893) INFO 10-21 09:12:04 [gpu_model_runner.py:3480] Graph capturing finished in 7 secs, took 0.95 GiB",
		"(EngineCore_DP0 pid=188893) INFO 10-21 09:12:04 [core.py:210] init engine (profile, create kv cache, warmup model) took 25.99 seconds",
	})
	if b.Weights != 27.200487 || b.Compile != 19.69 || b.Graphs != 7 || b.InitEngine != 25.99 {
		t.Errorf("%+v", b)
	}
	for _, l := range []string{
		"(EngineCore_DP0 pid=66914) INFO 09-21 12:30:37 [gpu_model_runner.py:2581] Model loading took 2.2845 GiB and 74.270197 seconds",
		"(EngineCore pid=1623438) INFO 04-13 22:09:34 [monitor.py:48] torch.compile took 1.61 s in total",
	} {
		if b := ParseBoot([]string{l}); b == (Boot{}) {
			t.Errorf("nothing read from %q", l)
		}
	}
	if p, ok := PhaseOf("INFO 06-26 07:48:15 model_runner.py:160] Loading model weights took 15.2075 GB"); !ok || p != "compiling and profiling" {
		t.Errorf("V0's weights line: phase %q", p)
	}
}
