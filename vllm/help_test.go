package vllm

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
)

func readHelp(t *testing.T, name string) *Help {
	t.Helper()
	b, err := os.ReadFile("testdata/help/" + name)
	if err != nil {
		t.Fatal(err)
	}
	h, err := ParseHelp(string(b))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return h
}

// TestParseRealHelp reads the help of real vLLM versions (testdata/help,
// INDEX.md says where each comes from) and checks what the parser found
// against the text.
func TestParseRealHelp(t *testing.T) {
	type want struct {
		prog      string
		detailed  bool
		atLeast   int               // options found
		aliases   map[string]string // alias -> option name
		negatable []string
		flags     []string // take no value
		nargs     map[string]string
		choices   map[string][]string // a subset of the choices
		open      []string            // choices extended by plugins
		absent    []string
		defaults  map[string]string
	}
	tests := map[string]want{
		"v0.9-serve-help.txt": {
			prog: "vllm serve", detailed: true, atLeast: 160,
			aliases:   map[string]string{"-tp": "--tensor-parallel-size", "-q": "--quantization", "-O": "--compilation-config", "-asc": "--api-server-count"},
			negatable: []string{"--enable-prefix-caching", "--enable-chunked-prefill", "--enforce-eager"},
			flags:     []string{"--disable-log-requests", "--enable-auto-tool-choice", "-h"},
			nargs:     map[string]string{"--served-model-name": "+", "--hf-token": "?", "--max-num-seqs": ""},
			choices:   map[string][]string{"--kv-cache-dtype": {"auto", "fp8", "fp8_e4m3", "fp8_e5m2"}, "--guided-decoding-backend": {"xgrammar", "outlines"}},
			open:      []string{"--tool-call-parser"},
			absent:    []string{"--port 8000 \\", "--kv-transfer-config '{"}, // notes pasted after the help
			defaults:  map[string]string{"--port": "8000", "--max-num-seqs": "None"},
		},
		"2026-serve-help-all.txt": {
			prog: "vllm serve", detailed: true, atLeast: 230,
			aliases:   map[string]string{"-tp": "--tensor-parallel-size", "-q": "--quantization", "-cc": "--compilation-config"},
			negatable: []string{"--enable-prefix-caching", "--enable-log-requests"},
			flags:     []string{"--disable-log-stats", "--headless"},
			nargs:     map[string]string{"--api-key": "+", "--hf-token": "?", "--collect-detailed-traces": "+"},
			choices:   map[string][]string{"--kv-cache-dtype": {"auto", "fp8_inc", "fp8_ds_mla"}, "--config-format": {"auto", "hf", "mistral"}, "--model-impl": {"terratorch", "vllm"}},
			open:      []string{"--tool-call-parser"},
			defaults:  map[string]string{"--port": "8000", "--model": "Qwen/Qwen3-0.6B"},
		},
		"2026-api-server-help.txt": {
			prog: "api_server.py", detailed: false, atLeast: 200,
			aliases:   map[string]string{"-dph": "--data-parallel-hybrid-lb"},
			negatable: []string{"--enable-prefix-caching", "--trust-remote-code"},
			flags:     []string{"--headless", "--disable-log-stats"},
			nargs:     map[string]string{"--api-key": "+", "--lora-modules": "+", "--max-num-seqs": ""},
			choices:   map[string][]string{"--kv-cache-dtype": {"auto", "bfloat16", "fp8_inc"}, "--tokenizer-mode": {"auto", "deepseek_v32", "hf"}},
			open:      []string{"--tool-call-parser"},
		},
	}
	for file, w := range tests {
		t.Run(file, func(t *testing.T) {
			h := readHelp(t, file)
			if h.Prog != w.prog || h.Detailed != w.detailed || len(h.Options()) < w.atLeast {
				t.Errorf("prog %q detailed %v options %d; want %q %v >= %d", h.Prog, h.Detailed, len(h.Options()), w.prog, w.detailed, w.atLeast)
			}
			for alias, name := range w.aliases {
				if o, ok := h.Lookup(alias); !ok || o.Name() != name {
					t.Errorf("%s: got %v %v, want an alias of %s", alias, o, ok, name)
				}
			}
			for _, n := range w.negatable {
				o, ok := h.Lookup(n)
				if !ok || !o.Negatable || !o.Flag {
					t.Errorf("%s: want a negatable flag, got %+v", n, o)
				}
				if _, ok := h.Lookup("--no-" + n[2:]); !ok {
					t.Errorf("--no-%s not found", n[2:])
				}
			}
			for _, n := range w.flags {
				if o, ok := h.Lookup(n); !ok || !o.Flag {
					t.Errorf("%s: want a flag without value, got %+v", n, o)
				}
			}
			for n, nargs := range w.nargs {
				if o, ok := h.Lookup(n); !ok || o.Flag || o.Nargs != nargs {
					t.Errorf("%s: got %+v, want nargs %q", n, o, nargs)
				}
			}
			for n, cs := range w.choices {
				o, ok := h.Lookup(n)
				if !ok {
					t.Errorf("%s missing", n)
					continue
				}
				for _, c := range cs {
					if !slices.Contains(o.Choices, c) {
						t.Errorf("%s: choices %v lack %q", n, o.Choices, c)
					}
				}
			}
			for _, n := range w.open {
				if o, ok := h.Lookup(n); !ok || !o.OpenChoices || len(o.Choices) < 10 {
					t.Errorf("%s: want open choices, got %+v", n, o)
				}
			}
			for _, a := range w.absent {
				for _, o := range h.Options() {
					if strings.Contains(strings.Join(o.Names, " ")+" "+o.Default, a) {
						t.Errorf("read %q from the notes after the help as an option: %+v", a, o)
					}
				}
			}
			for n, d := range w.defaults {
				if o, ok := h.Lookup(n); !ok || o.Default != d {
					t.Errorf("%s: default %q, want %q", n, o.Default, d)
				}
			}
		})
	}
}

// `vllm serve --help` of 2026 lists config groups only: the parser says
// so, and the caller asks for --help=all.
func TestParseHelpGroupsOnly(t *testing.T) {
	b, _ := os.ReadFile("testdata/help/2026-serve-help-groups.txt")
	if _, err := ParseHelp(string(b)); !errors.Is(err, ErrNoOptions) {
		t.Fatalf("got %v, want ErrNoOptions", err)
	}
}

func TestCheckAgainstRealHelp(t *testing.T) {
	v09 := readHelp(t, "v0.9-serve-help.txt")
	v26 := readHelp(t, "2026-serve-help-all.txt")
	usage := readHelp(t, "2026-api-server-help.txt")
	tests := []struct {
		name  string
		h     *Help
		words string
		want  []string // Describe("X") of each refusal, in order; none when empty
	}{
		{"the user's profile flags", v26, "Qwen/Qwen3-8B --model Qwen/Qwen3-8B --max-num-seqs 32 --gpu-memory-utilization=0.9 --no-enable-prefix-caching --kv-cache-dtype fp8 -tp 2 --served-model-name a b --hf-token --enable-auto-tool-choice --tool-call-parser my_plugin_parser --compilation-config.level 3 -O3", nil},
		{"a typo", v26, "--max-num-seq 48", []string{"--max-num-seq is an abbreviation of --max-num-seqs: X accepts it (argparse matches a unique prefix), but a later vLLM with another flag of that prefix refuses it, and vgrid matches flags by full name; write --max-num-seqs"}},
		{"a misspelling", v26, "--max-num-sqs 48", []string{"--max-num-sqs is not a flag of X; did you mean --max-num-seqs?"}},
		{"underscores are dashes", v09, "--max_num_seqs 8 --enable_prefix_caching", nil},
		{"a value outside the choices", v09, "--kv-cache-dtype fp8_inc", []string{`--kv-cache-dtype: invalid choice: "fp8_inc" (choose from auto, fp8, fp8_e4m3, fp8_e5m2) (X)`}},
		{"the same value in a newer vLLM", v26, "--kv-cache-dtype fp8_inc", nil},
		{"an ambiguous prefix", v26, "--max-num 8", []string{"--max-num: ambiguous option: could match --max-num-batched-tokens, --max-num-partial-prefills, --max-num-seqs (X)"}},
		{"a flag given a value", v09, "--enforce-eager=true", []string{`--enforce-eager: ignored explicit argument "true": the flag takes no value (X)`}},
		{"a missing value", v09, "--max-num-seqs --enforce-eager", []string{"--max-num-seqs: expected one argument (X)"}},
		{"a flag vLLM removed", v26, "--disable-log-requests", []string{"--disable-log-requests is not a flag of X; did you mean --enable-log-requests?"}},
		{"no --no- form for a store_true flag", v09, "--no-disable-log-stats", []string{"--no-disable-log-stats is not a flag of X; did you mean --disable-log-stats?"}},
		{"usage block only: short aliases not refused", usage, "-tp 2 --max-num-seqs 4 --no-enable-prefix-caching", nil},
		{"usage block only: long names checked", usage, "--max-num-sqs 4", []string{"--max-num-sqs is not a flag of X; did you mean --max-num-seqs?"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, r := range tt.h.Check(strings.Fields(tt.words)) {
				got = append(got, r.Describe("X"))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}
