package profiles

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vgrid/vgrid/vllm"
)

// formCandidate touches every kind of edit: a replaced value, a value that
// is replaced or appended, a boolean negated or appended, a removal.
var formCandidate = struct{ set, unset []string }{
	set:   []string{"max-num-seqs=20", "gpu-memory-utilization=0.8", "enable-prefix-caching=false"},
	unset: []string{"swap-space"},
}

// TestForms renders the standard candidate into every way of writing a
// compose file that starts vLLM (testdata/forms), and checks, for each:
// identity render byte for byte; the edit (golden diff); what compose-go
// then gives vLLM; line-ending style kept; write and rollback byte for byte.
// Forms vgrid must refuse are refused with a message naming the cause, and
// the file is untouched.
func TestForms(t *testing.T) {
	tests := []struct {
		file    string
		service string
		wantErr []string // refused: the message holds each of these
	}{
		{file: "script-sh-list-entrypoint.yml"},
		{file: "script-bash-block-entrypoint.yml"},
		{file: "script-command-python-m.yml"},
		{file: "script-quoted-item.yml"},
		{file: "script-single-quoted-flow.yml"},
		{file: "string-bash-c.yml"},
		{file: "string-sh-c-single.yml"},
		{file: "string-double-quoted.yml"},
		{file: "string-single-quoted.yml"},
		{file: "string-plain.yml"},
		{file: "string-plain-multiline.yml"},
		{file: "string-double-quoted-multiline.yml"},
		{file: "split-entrypoint-list.yml"},
		{file: "split-entrypoint-python.yml"},
		{file: "split-entrypoint-args.yml"},
		{file: "anchor-single-user.yml"},
		{file: "anchor-overridden.yml", service: "vllm-b"},
		{file: "anchor-overridden.yml", service: "vllm-a"},
		{file: "anchor-merge-list.yml"},
		{file: "two-services.yml", service: "large"},
		{file: "no-final-newline.yml"},
		{file: "no-final-newline-list.yml"},
		{file: "crlf-folded.yml"},
		{file: "crlf-script.yml"},
		{file: "crlf-list.yml"},

		{file: "two-services.yml", wantErr: []string{"several services run vLLM (small, large)", "--service"}},
		{file: "anchor-shared.yml", service: "vllm-a", wantErr: []string{"anchor &vllm (line 2; the command: is at line 4)", "services vllm-a, vllm-b share it", `Give service "vllm-a" a command: of its own`}},
		{file: "anchor-alias-command.yml", service: "vllm-b", wantErr: []string{"anchor &cmd", "services vllm-a, vllm-b share it"}},
		{file: "script-args-variable.yml", wantErr: []string{`"$$ARGS"`, "line 9", "cannot see", "Write the flags out"}},
		{file: "script-string-command-split.yml", wantErr: []string{"docker compose splits into words", `only "exec"`, "one-item list"}},
	}
	ctx := context.Background()
	cand, err := vllm.NewCandidate(formCandidate.set, formCandidate.unset)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		name := strings.TrimSuffix(tt.file, ".yml")
		if tt.service != "" {
			name += "/" + tt.service
		}
		t.Run(name, func(t *testing.T) {
			path := copyFixture(t, filepath.Join("testdata", "forms", tt.file))
			src, _ := os.ReadFile(path)
			before := hashFile(t, path)
			p := Project{Files: []string{path}}
			plan, err := p.Render(ctx, tt.service, cand)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("rendered, want a refusal; diff:\n%s", UnifiedDiff("a", "b", plan.Before, plan.After))
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q\nlacks %q", err, w)
					}
				}
				if hashFile(t, path) != before {
					t.Error("the file changed")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}

			// Identity: no change renders the file byte for byte.
			d, err := ParseDocument(path, src)
			if err != nil {
				t.Fatal(err)
			}
			if out, changes, err := d.Render(plan.Service, nil); err != nil || !bytes.Equal(out, src) || len(changes) > 0 {
				t.Errorf("identity render changed the file (%v, %v)", changes, err)
			}

			// What vLLM receives, as compose-go loads the rendered file.
			for flag, want := range map[string]string{"max-num-seqs": "20", "gpu-memory-utilization": "0.8", "enable-prefix-caching": "false"} {
				if got, ok := plan.Effective.Get(flag); !ok || got != want {
					t.Errorf("compose-go gives vLLM --%s = %q (present %v), want %q", flag, got, ok, want)
				}
			}
			if _, ok := plan.Effective.Get("swap-space"); ok {
				t.Error("--swap-space is still passed to vLLM")
			}
			golden(t, filepath.Join("testdata", "forms", "golden", strings.ReplaceAll(name, "/", "-")+".diff"),
				UnifiedDiff(tt.file, tt.file, plan.Before, plan.After))

			// Line endings: a CRLF file gains no bare LF; a file without a
			// final line break does not get one.
			if bytes.Contains(src, []byte("\r\n")) && bytes.Count(plan.After, []byte("\n")) != bytes.Count(plan.After, []byte("\r\n")) {
				t.Error("the CRLF file has lines ending in a bare LF after rendering")
			}
			if !bytes.HasSuffix(src, []byte("\n")) && bytes.HasSuffix(plan.After, []byte("\n")) {
				t.Error("a final line break was added")
			}

			// Write, then roll back: byte for byte.
			if _, err := plan.Write("", fixedTime); err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, plan.After) {
				t.Error("written file differs from the plan")
			}
			if _, _, err := Rollback(path, "", fixedTime.Add(1e9)); err != nil {
				t.Fatal(err)
			}
			if hashFile(t, path) != before {
				t.Error("rollback did not restore the original byte for byte")
			}
		})
	}
}

// A flag written in an entrypoint that holds the program is not edited:
// changing it is refused with where to move it.
func TestFormsFixedEntrypointFlag(t *testing.T) {
	path := copyFixture(t, "testdata/forms/split-entrypoint-args.yml")
	before := hashFile(t, path)
	cand, _ := vllm.NewCandidate([]string{"tensor-parallel-size=1"}, nil)
	_, err := Project{Files: []string{path}}.Render(context.Background(), "", cand)
	if err == nil || !strings.Contains(err.Error(), "--tensor-parallel-size is written in its entrypoint") || !strings.Contains(err.Error(), "move --tensor-parallel-size from the entrypoint to the command") {
		t.Fatalf("got %v", err)
	}
	if hashFile(t, path) != before {
		t.Error("the file changed")
	}
}

// Values that need quoting are written so that every layer (YAML quotes,
// compose's word splitting, the shell) gives vLLM exactly the value.
func TestFormsQuotedValues(t *testing.T) {
	value := `{"rope_type": "yarn", "factor": 4.0}`
	// Where a layer cannot hold a value, it is refused, never mangled: a
	// plain YAML scalar cannot hold ": ", a single-quoted shell word cannot
	// hold a single quote.
	refused := map[string]string{
		"string-bash-c.yml":          `would end a plain (unquoted) YAML scalar`,
		"string-plain.yml":           `would end a plain (unquoted) YAML scalar`,
		"string-plain-multiline.yml": `would end a plain (unquoted) YAML scalar`,
		"string-sh-c-single.yml":     `cannot be written inside the single-quoted script`,
	}
	for _, f := range []string{"string-double-quoted.yml", "string-single-quoted.yml", "string-bash-c.yml", "script-quoted-item.yml",
		"string-double-quoted-multiline.yml", "script-sh-list-entrypoint.yml", "string-plain.yml", "script-single-quoted-flow.yml", "string-plain-multiline.yml", "string-sh-c-single.yml"} {
		t.Run(f, func(t *testing.T) {
			path := copyFixture(t, filepath.Join("testdata", "forms", f))
			before := hashFile(t, path)
			cand, _ := vllm.NewCandidate([]string{"rope-scaling=" + value, "chat-template=/t/it's mine.jinja"}, nil)
			plan, err := Project{Files: []string{path}}.Render(context.Background(), "", cand)
			if want := refused[f]; want != "" {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("got %v, want a refusal saying %q", err, want)
				}
				if hashFile(t, path) != before {
					t.Error("the file changed")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := plan.Effective.Get("rope-scaling"); got != value {
				t.Errorf("vLLM gets --rope-scaling %q, want %q", got, value)
			}
			if got, _ := plan.Effective.Get("chat-template"); got != "/t/it's mine.jinja" {
				t.Errorf("vLLM gets --chat-template %q", got)
			}
		})
	}
}

// Program names what starts the server in each form: vgrid asks that same
// program for --help.
func TestFormsProgram(t *testing.T) {
	for file, want := range map[string]string{
		"script-sh-list-entrypoint.yml":    "vllm serve",
		"script-bash-block-entrypoint.yml": "python3 -m vllm.entrypoints.openai.api_server",
		"script-command-python-m.yml":      "python -m vllm.entrypoints.openai.api_server",
		"string-bash-c.yml":                "vllm serve",
		"split-entrypoint-list.yml":        "vllm serve",
		"split-entrypoint-python.yml":      "python3 -m vllm.entrypoints.openai.api_server",
		"split-entrypoint-args.yml":        "vllm serve",
		"string-plain.yml":                 "", // the image's entrypoint
		"crlf-list.yml":                    "",
	} {
		l, err := Project{Files: []string{filepath.Join("testdata", "forms", file)}}.Load(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		svc := l.ServiceNames()[0]
		got, err := l.Program(svc)
		if err != nil || strings.Join(got, " ") != want {
			t.Errorf("%s: program %q (%v), want %q", file, got, err, want)
		}
	}
}
