package driver

import (
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/vgrid/vgrid/orchestrator"
	"github.com/vgrid/vgrid/vllm"
)

// NewProcess finds the serve subcommand in each way people start vLLM,
// and refuses a command without one or a target without its endpoint.
func TestNewProcessCommands(t *testing.T) {
	for _, tc := range []struct {
		command  string
		endpoint string
		prefix   string // what precedes the flags; "" when refused
		refusal  string
	}{
		{"vllm serve --model m --port 8011", "http://127.0.0.1:8011", "vllm serve", ""},
		{"vllm serve Qwen/Qwen3-32B-AWQ --port 8011", "http://127.0.0.1:8011", "vllm serve", ""},
		{"python3 -m vllm.entrypoints.openai.api_server --model m", "http://127.0.0.1:8000", "python3 -m vllm.entrypoints.openai.api_server", ""},
		{"/opt/venv/bin/vllm serve --model m", "http://127.0.0.1:8000/", "/opt/venv/bin/vllm serve", ""},
		{"vllm --model m", "http://127.0.0.1:8000", "", "has no serve subcommand"},
		{"vllm serve --model m", "", "", "target.endpoint is required"},
	} {
		p, err := NewProcess(orchestrator.Target{Command: strings.Fields(tc.command), Endpoint: tc.endpoint}, nil, t.TempDir(), zerolog.Nop())
		switch {
		case tc.refusal != "":
			if err == nil || !strings.Contains(err.Error(), tc.refusal) {
				t.Errorf("%q: got %v, want refused with %q", tc.command, err, tc.refusal)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.command, err)
		case strings.Join(p.prefix, " ") != tc.prefix || strings.HasSuffix(p.endpoint, "/"):
			t.Errorf("%q: prefix %q, endpoint %q", tc.command, p.prefix, p.endpoint)
		}
	}
}

// A candidate renders from the target's own command: its flags replace or
// join the command's, false is the explicit --no- form, the hash follows
// the words, and secrets are redacted in what the trial records.
func TestProcessRender(t *testing.T) {
	p, err := NewProcess(orchestrator.Target{Command: strings.Fields("vllm serve --model m --gpu-memory-utilization 0.9 --api-key sk-secret"), Endpoint: "http://127.0.0.1:8000"},
		nil, t.TempDir(), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		settings vllm.Candidate
		want     string
	}{
		{nil, "vllm serve --model m --gpu-memory-utilization 0.9 --api-key sk-secret"},
		{vllm.Candidate{{Name: "gpu-memory-utilization", Value: "0.85"}}, "vllm serve --model m --api-key sk-secret --gpu-memory-utilization 0.85"}, // a changed flag is written last: one value, the candidate's
		{vllm.Candidate{{Name: "enable-prefix-caching", Value: "false"}}, "vllm serve --model m --gpu-memory-utilization 0.9 --api-key sk-secret --no-enable-prefix-caching"},
		{vllm.Candidate{{Name: "max-num-seqs", Value: "64"}, {Name: "gpu-memory-utilization", Unset: true}}, "vllm serve --model m --api-key sk-secret --max-num-seqs 64"},
	} {
		pl := p.render(orchestrator.Candidate{Settings: tc.settings})
		if got := strings.Join(pl.full, " "); got != tc.want {
			t.Errorf("%v: %s, want %s", tc.settings, got, tc.want)
		}
		r := pl.Rendered()
		if strings.Contains(strings.Join(r.Words, " "), "sk-secret") || r.Hash == "" {
			t.Errorf("%v: recorded %v (hash %q): the key must be redacted", tc.settings, r.Words, r.Hash)
		}
	}
	a, b := p.render(orchestrator.Candidate{}).Rendered().Hash, p.render(orchestrator.Candidate{Settings: vllm.Candidate{{Name: "max-num-seqs", Value: "64"}}}).Rendered().Hash
	if a == b {
		t.Error("two renderings with different words have the same hash")
	}
}
