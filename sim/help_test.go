package sim

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/vgrid/vgrid/vllm"
)

func runMain(t *testing.T, version string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	code = Main(context.Background(), args, func(k string) string {
		if k == "VLLM_SIM_VERSION" {
			return version
		}
		return ""
	}, &o, &e)
	return o.String(), e.String(), code
}

// The simulator's help, in every shape it prints, reads back with the
// parser vgrid uses on real vLLM images, and lists exactly what the
// simulator accepts.
func TestHelpShapes(t *testing.T) {
	tests := []struct {
		version string
		args    []string
		code    int
		parse   error // nil: parses with every option
		usage   bool  // parsed from the usage block alone
	}{
		{"0.8.5", []string{"serve", "--help"}, 0, nil, false},
		{"0.8.5", []string{"serve", "--help=all"}, 2, nil, false},
		{"0.9.2", []string{"serve", "--help=all"}, 0, nil, false},
		{"0.11.1", []string{"serve", "--help"}, 0, vllm.ErrNoOptions, false},
		{"0.11.1", []string{"serve", "--help=all"}, 0, nil, false},
		{"", []string{"serve", "-h"}, 0, vllm.ErrNoOptions, false},
		{"", []string{"-m", "vllm.entrypoints.openai.api_server", "--help"}, 0, nil, true},
		{"0.9.2", []string{"-m", "vllm.entrypoints.openai.api_server", "--help"}, 0, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.version+" "+strings.Join(tt.args, " "), func(t *testing.T) {
			out, errOut, code := runMain(t, tt.version, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr %s", code, tt.code, errOut)
			}
			if code != 0 {
				if !strings.Contains(errOut, "ignored explicit argument 'all'") {
					t.Errorf("stderr %q: want argparse's refusal", errOut)
				}
				return
			}
			h, err := vllm.ParseHelp(out)
			if !errors.Is(err, tt.parse) {
				t.Fatalf("parse: %v, want %v", err, tt.parse)
			}
			if err != nil {
				return
			}
			if h.Detailed == tt.usage {
				t.Errorf("detailed %v, want %v", h.Detailed, !tt.usage)
			}
			for _, s := range vllm.Specs() {
				o, ok := h.Lookup("--" + s.Name)
				if !ok {
					t.Errorf("--%s missing from the help", s.Name)
					continue
				}
				if (s.Kind == vllm.KindBool) != o.Flag || s.Negatable != o.Negatable || (s.Kind == vllm.KindEnum) != (len(o.Choices) > 0) || s.Multi != (o.Nargs == "+") {
					t.Errorf("--%s: help says %+v, the simulator's spec %+v", s.Name, o, s)
				}
			}
			if !tt.usage {
				if o, ok := h.Lookup("-tp"); !ok || o.Name() != "--tensor-parallel-size" {
					t.Errorf("-tp: %+v %v", o, ok)
				}
			}
			if got := h.Check(strings.Fields("--max-num-seq 4 --kv-cache-dtype fp9")); len(got) != 2 || got[0].Kind != "abbreviation" || got[1].Kind != "choice" {
				t.Errorf("check: %+v", got)
			}
		})
	}
}

// The simulator refuses what its help does not list, as vLLM's argparse
// does, under the entry point's own name.
func TestArgparseRefusals(t *testing.T) {
	_, errOut, code := runMain(t, "", "-m", "vllm.entrypoints.openai.api_server", "--max-num-sqs", "4")
	if code != 2 || !strings.Contains(errOut, "api_server.py: error: unrecognized arguments: --max-num-sqs") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	out, _, code := runMain(t, "0.9.2", "--version")
	if code != 0 || strings.TrimSpace(out) != "0.9.2" {
		t.Errorf("--version: %q %d", out, code)
	}
	if _, errOut, code := runMain(t, "1.x", "serve"); code != 2 || !strings.Contains(errOut, "VLLM_SIM_VERSION") {
		t.Errorf("bad version: %d %q", code, errOut)
	}
}
