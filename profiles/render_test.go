package profiles

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pmezard/go-difflib/difflib"

	"github.com/vgrid/vgrid/vllm"
)

var update = flag.Bool("update", false, "rewrite golden files")

const envExample = "testdata/fixtures/env.example"

func fixtures(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("testdata/fixtures/*.yml")
	if err != nil || len(files) != 7 {
		t.Fatalf("fixtures: %v, %v; want the user's 7 profiles", files, err)
	}
	return files
}

// copyFixture copies a fixture (and env.example) into a temp dir.
func copyFixture(t *testing.T, src string) string {
	t.Helper()
	dir := t.TempDir()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, filepath.Base(src))
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

func hashFile(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func TestIdentityRoundTrip(t *testing.T) {
	for _, f := range fixtures(t) {
		src, _ := os.ReadFile(f)
		d, err := ParseDocument(f, src)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		svc, err := d.ResolveService("")
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out, changes, err := d.Render(svc, nil)
		if err != nil || string(out) != string(src) || len(changes) != 0 {
			t.Errorf("%s: identity render changed the file (err %v, %d changes)", f, err, len(changes))
		}
		// vllm.Setting every flag to its current literal value changes nothing either.
		r, _ := d.region(svc)
		var set []string
		for _, a := range vllm.ParseArgs(texts(r.words)) {
			if a.Name != "" && !interpolation.MatchString(a.Value()) && !strings.HasPrefix(a.Spelled, "#") {
				set = append(set, a.Name+"="+a.Value())
			}
		}
		var cand vllm.Candidate
		for _, kv := range set {
			k, v, _ := strings.Cut(kv, "=")
			cand = append(cand, vllm.Setting{Name: k, Value: v})
		}
		out, changes, err = d.Render(svc, dedupe(cand))
		if err != nil || string(out) != string(src) {
			t.Errorf("%s: re-setting current values changed the file: %v %v", f, changes, err)
		}
	}
}

func dedupe(c vllm.Candidate) vllm.Candidate {
	seen := map[string]bool{}
	var out vllm.Candidate
	for _, s := range c {
		if !seen[s.Name] {
			seen[s.Name] = true
			out = append(out, s)
		}
	}
	return out
}

var standard = []string{"gpu-memory-utilization=0.8", "max-num-seqs=32", "enable-prefix-caching=false"}

// changedLines lists the lines of a and b that a line diff marks as changed.
func changedLines(a, b []byte) []string {
	al, bl := difflib.SplitLines(string(a)), difflib.SplitLines(string(b))
	var out []string
	for _, op := range difflib.NewMatcher(al, bl).GetOpCodes() {
		if op.Tag == 'e' {
			continue
		}
		out = append(out, al[op.I1:op.I2]...)
		out = append(out, bl[op.J1:op.J2]...)
	}
	return out
}

func TestRenderFixtures(t *testing.T) {
	ctx := context.Background()
	for _, f := range fixtures(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			path := copyFixture(t, f)
			cand, err := vllm.NewCandidate(standard, nil)
			if err != nil {
				t.Fatal(err)
			}
			p := Project{Files: []string{path}, EnvFiles: []string{envExample}}
			before := hashFile(t, path)
			plan, err := p.Render(ctx, "", cand)
			if filepath.Base(f) == "medium-qwen36-moe.yml" {
				// The user's file: '#' lines inside `command: >` are arguments,
				// and compose-go rejects the '(' in them. vgrid must say so.
				if err == nil || !strings.Contains(err.Error(), "invalid command line string") ||
					!strings.Contains(err.Error(), "not YAML comments") || !strings.Contains(err.Error(), "74") {
					t.Fatalf("qwen36-moe: got %v, want compose's error explained with the '#' lines", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			for _, l := range changedLines(plan.Before, plan.After) {
				if !strings.Contains(l, "gpu-memory-utilization") && !strings.Contains(l, "max-num-seqs") && !strings.Contains(l, "prefix-caching") {
					t.Errorf("line changed that carries no changed flag: %q", l)
				}
			}
			for name, want := range map[string]string{"gpu-memory-utilization": "0.8", "max-num-seqs": "32", "enable-prefix-caching": "false"} {
				if got, ok := plan.Effective.Get(name); !ok || got != want {
					t.Errorf("compose-go sees --%s = %q (present %v), want %q", name, got, ok, want)
				}
			}
			if !strings.Contains(string(plan.After), "--no-enable-prefix-caching") {
				t.Error("prefix caching off is not written as --no-enable-prefix-caching")
			}
			golden(t, filepath.Join("testdata", "golden", filepath.Base(f)+".diff"),
				UnifiedDiff(filepath.Base(f), filepath.Base(f), plan.Before, plan.After))
			if hashFile(t, path) != before {
				t.Error("Render wrote to the file")
			}
			// Write, then roll back: byte-identical.
			backup, err := plan.Write("", mustTime(t))
			if err != nil {
				t.Fatal(err)
			}
			if after, _ := os.ReadFile(path); string(after) != string(plan.After) {
				t.Error("written file differs from the plan")
			}
			if b, _ := os.ReadFile(backup); string(b) != string(plan.Before) {
				t.Error("backup differs from the original")
			}
			if _, _, err := Rollback(path, "", mustTime(t).Add(1e9)); err != nil {
				t.Fatal(err)
			}
			if hashFile(t, path) != before {
				t.Error("rollback did not restore the original byte for byte")
			}
		})
	}
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden file: %v (run go test -update)", err)
	}
	if got != string(want) {
		t.Errorf("%s: got\n%s\nwant\n%s", path, got, want)
	}
}

// The user's qwen36-moe profile with its '#' block moved above command:
// renders and verifies like the others.
func TestQwen36WithCommentsMoved(t *testing.T) {
	src, _ := os.ReadFile("testdata/fixtures/medium-qwen36-moe.yml")
	var kept []string
	var moved []string
	for _, l := range strings.SplitAfter(string(src), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "#") && strings.HasPrefix(l, "      ") && !strings.HasPrefix(l, "        ") && len(moved) < 7 && strings.Contains(string(src), "DIAG") && (len(moved) > 0 || strings.Contains(l, "DIAG")) {
			moved = append(moved, l)
			continue
		}
		kept = append(kept, l)
	}
	if len(moved) != 7 {
		t.Fatalf("moved %d comment lines, want 7", len(moved))
	}
	path := filepath.Join(t.TempDir(), "q.yml")
	os.WriteFile(path, []byte(strings.Join(kept, "")), 0o644)
	cand, _ := vllm.NewCandidate(standard, nil)
	plan, err := Project{Files: []string{path}, EnvFiles: []string{envExample}}.Render(context.Background(), "", cand)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := plan.Effective.Get("enable-prefix-caching"); v != "false" {
		t.Errorf("enable-prefix-caching = %q, want false", v)
	}
}

func mustTime(t *testing.T) (tm timeT) { return fixedTime }

func TestRenderStyles(t *testing.T) {
	tests := []struct {
		name    string
		profile string
		set     []string
		unset   []string
		want    string // the rendered file
		note    string // a Change note that must appear
	}{
		{
			name:    "flow list, quoted items",
			profile: "services:\n  v:\n    image: vllm/vllm-openai\n    command: [\"--model\", \"m\", \"--gpu-memory-utilization\", \"0.9\", \"--enable-prefix-caching\"]\n",
			set:     []string{"gpu-memory-utilization=0.8", "enable-prefix-caching=false", "max-num-seqs=8"},
			want:    "services:\n  v:\n    image: vllm/vllm-openai\n    command: [\"--model\", \"m\", \"--gpu-memory-utilization\", \"0.8\", \"--no-enable-prefix-caching\", \"--max-num-seqs\", \"8\"]\n",
		},
		{
			name:    "flow list, remove first and last",
			profile: "services:\n  v:\n    image: vllm/vllm-openai\n    command: [--swap-space, \"16\", --model, m, --enforce-eager]\n",
			unset:   []string{"swap-space", "enforce-eager"},
			want:    "services:\n  v:\n    image: vllm/vllm-openai\n    command: [--model, m]\n",
		},
		{
			name:    "block list",
			profile: "services:\n  v:\n    image: vllm/vllm-openai\n    command:\n      - --model\n      - m\n      - --max-num-seqs\n      - \"16\"\n    ipc: host\n",
			set:     []string{"max-num-seqs=32", "kv-cache-dtype=fp8"},
			unset:   nil,
			want:    "services:\n  v:\n    image: vllm/vllm-openai\n    command:\n      - --model\n      - m\n      - --max-num-seqs\n      - \"32\"\n      - --kv-cache-dtype\n      - fp8\n    ipc: host\n",
		},
		{
			name:    "equals style kept and used for new flags",
			profile: "services:\n  v:\n    image: vllm/vllm-openai\n    command: >\n      --model=m\n      --max-num-seqs=16\n",
			set:     []string{"max-num-seqs=32", "swap-space=4"},
			want:    "services:\n  v:\n    image: vllm/vllm-openai\n    command: >\n      --model=m\n      --max-num-seqs=32\n      --swap-space=4\n",
		},
		{
			name:    "underscore spelling kept",
			profile: "services:\n  v:\n    image: vllm/vllm-openai\n    command: >\n      --model m\n      --kv_cache_dtype fp8\n      --enable_prefix_caching\n",
			set:     []string{"kv-cache-dtype=auto", "enable-prefix-caching=false"},
			want:    "services:\n  v:\n    image: vllm/vllm-openai\n    command: >\n      --model m\n      --kv_cache_dtype auto\n      --no_enable_prefix_caching\n",
		},
		{
			name:    "duplicate lines left by the old regex are removed",
			profile: "services:\n  v:\n    image: vllm/vllm-openai\n    command: >\n      --model m\n      --max-num-seqs 16\n      --gpu-memory-utilization 0.9\n      --max-num-seqs 64\n",
			set:     []string{"max-num-seqs=32"},
			want:    "services:\n  v:\n    image: vllm/vllm-openai\n    command: >\n      --model m\n      --max-num-seqs 32\n      --gpu-memory-utilization 0.9\n",
			note:    "duplicate removed",
		},
		{
			name:    "interpolation replaced by a literal",
			profile: "services:\n  v:\n    image: vllm/vllm-openai\n    command: >\n      --model m\n      --gpu-memory-utilization ${GPU:-0.95}\n",
			set:     []string{"gpu-memory-utilization=0.95"},
			want:    "services:\n  v:\n    image: vllm/vllm-openai\n    command: >\n      --model m\n      --gpu-memory-utilization 0.95\n",
			note:    "interpolation ${GPU:-0.95} replaced by a literal",
		},
		{
			name:    "JSON value quoted for the shell",
			profile: "services:\n  v:\n    image: vllm/vllm-openai\n    command: >\n      --model m\n      --rope_scaling '{\"factor\":4.0}'\n",
			set:     []string{`rope-scaling={"factor": 2.0}`},
			want:    "services:\n  v:\n    image: vllm/vllm-openai\n    command: >\n      --model m\n      --rope_scaling '{\"factor\": 2.0}'\n",
		},
		{
			name:    "script: remove the last line moves the continuation",
			profile: "services:\n  v:\n    image: vllm/vllm-openai\n    entrypoint: [\"/bin/sh\", \"-c\"]\n    command:\n      - |\n        echo start\n        exec vllm serve \\\n          --model m \\\n          --swap-space 16\n        echo never\n",
			unset:   []string{"swap-space"},
			want:    "services:\n  v:\n    image: vllm/vllm-openai\n    entrypoint: [\"/bin/sh\", \"-c\"]\n    command:\n      - |\n        echo start\n        exec vllm serve \\\n          --model m\n        echo never\n",
		},
		{
			name:    "script: append before the last line",
			profile: "services:\n  v:\n    image: vllm/vllm-openai\n    entrypoint: [\"/bin/sh\", \"-c\"]\n    command:\n      - |\n        exec vllm serve \\\n          --model m \\\n          --swap-space 16\n",
			set:     []string{"enable-chunked-prefill=false"},
			want:    "services:\n  v:\n    image: vllm/vllm-openai\n    entrypoint: [\"/bin/sh\", \"-c\"]\n    command:\n      - |\n        exec vllm serve \\\n          --model m \\\n          --no-enable-chunked-prefill \\\n          --swap-space 16\n",
		},
		{
			name:    "script: one-line invocation",
			profile: "services:\n  v:\n    image: x\n    command: [\"sh\", \"-c\", \"exec vllm serve --model m\"]\n",
			set:     []string{"max-num-seqs=4"},
			want:    "services:\n  v:\n    image: x\n    command: [\"sh\", \"-c\", \"exec vllm serve --model m --max-num-seqs 4\"]\n",
		},
		{
			name:    "store_true flag off is its absence",
			profile: "services:\n  v:\n    image: vllm/vllm-openai\n    command: >\n      --model m\n      --disable-log-requests\n",
			set:     []string{"disable-log-requests=false"},
			want:    "services:\n  v:\n    image: vllm/vllm-openai\n    command: >\n      --model m\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := ParseDocument("p.yml", []byte(tt.profile))
			if err != nil {
				t.Fatal(err)
			}
			cand, err := vllm.NewCandidate(tt.set, tt.unset)
			if err != nil {
				t.Fatal(err)
			}
			out, changes, err := d.Render("v", cand)
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tt.want {
				t.Errorf("got\n%s\nwant\n%s", out, tt.want)
			}
			if tt.note != "" {
				found := false
				for _, c := range changes {
					found = found || strings.Contains(c.Note, tt.note)
				}
				if !found {
					t.Errorf("changes %v lack note %q", changes, tt.note)
				}
			}
			// Whatever the style, compose-go must see the intended flags.
			path := filepath.Join(t.TempDir(), "p.yml")
			os.WriteFile(path, []byte(tt.profile), 0o644)
			if _, err := (Project{Files: []string{path}}).Render(context.Background(), "v", cand); err != nil {
				t.Errorf("verification: %v", err)
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	medium := "testdata/fixtures/medium.yml"
	ornith := "testdata/fixtures/medium-ornith15-awq.yml"
	twoServe := "services:\n  v:\n    image: x\n    entrypoint: [\"/bin/sh\", \"-c\"]\n    command:\n      - |\n        vllm serve --model a\n        vllm serve --model b\n"
	tests := []struct {
		name    string
		file    string // fixture path, or inline content
		service string
		set     []string
		env     []string
		want    string
	}{
		{"invalid YAML", "services:\n  v:\n    command: [unclosed\n", "", []string{"max-num-seqs=2"}, nil, "not valid YAML"},
		{"no such service", medium, "nope", []string{"max-num-seqs=2"}, nil, `no service "nope"`},
		{"service without a vLLM command", ornith, "watchdog-ornith15", []string{"max-num-seqs=2"}, nil, "does not run vLLM"},
		{"two vllm serve invocations", twoServe, "v", []string{"max-num-seqs=2"}, nil, "starts vLLM's server 2 times"},
		{"gpu-memory-utilization=1.5", medium, "", []string{"gpu-memory-utilization=1.5"}, nil, "(0, 1]"},
		{"kv-cache-dtype=fp9", medium, "", []string{"kv-cache-dtype=fp9"}, nil, "fp8"},
		{"max-num-seqs=-1", medium, "", []string{"max-num-seqs=-1"}, nil, "an integer in [1,"},
		{"unknown variable, no default", medium, "", []string{"max-num-seqs=2"}, []string{}, "VLLM_API_KEY_MEDIUM is not set and has no default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var path string
			if strings.HasPrefix(tt.file, "testdata/") {
				path = copyFixture(t, tt.file)
			} else {
				path = filepath.Join(t.TempDir(), "p.yml")
				os.WriteFile(path, []byte(tt.file), 0o644)
			}
			before := hashFile(t, path)
			env := []string{envExample}
			if tt.env != nil {
				env = tt.env
			}
			cand, err := vllm.NewCandidate(tt.set, nil)
			if err == nil {
				var plan *Plan
				plan, err = Project{Files: []string{path}, EnvFiles: env}.Render(context.Background(), tt.service, cand)
				if err == nil {
					_, err = plan.Write("", fixedTime)
				}
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %v, want one containing %q", err, tt.want)
			}
			if hashFile(t, path) != before {
				t.Error("the file changed")
			}
			if bs, _ := Backups(path); len(bs) != 0 {
				t.Errorf("backups were written: %v", bs)
			}
		})
	}
}

func TestDriftErrorIsTyped(t *testing.T) {
	// An override file that pins the command makes the edit of the base file
	// invisible to compose: verification must refuse it.
	dir := t.TempDir()
	base := filepath.Join(dir, "base.yml")
	over := filepath.Join(dir, "override.yml")
	os.WriteFile(base, []byte("services:\n  v:\n    image: vllm/vllm-openai\n    command: >\n      --model m\n      --max-num-seqs 4\n"), 0o644)
	os.WriteFile(over, []byte("services:\n  v:\n    environment:\n      - A=1\n"), 0o644)
	cand, _ := vllm.NewCandidate([]string{"max-num-seqs=8"}, nil)
	if _, err := (Project{Files: []string{base, over}}).Render(context.Background(), "v", cand); err != nil {
		t.Fatalf("override without command: %v", err)
	}
	// An unquoted ';' makes compose drop the rest of the command: the edited
	// flag would never reach vLLM. Verification must refuse, typed.
	os.WriteFile(base, []byte("services:\n  v:\n    image: vllm/vllm-openai\n    command: >\n      --model m ;\n      --max-num-seqs 4\n"), 0o644)
	before := hashFile(t, base)
	_, err := (Project{Files: []string{base}}).Render(context.Background(), "v", cand)
	var de *DriftError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "missing:    --max-num-seqs = 8") || !strings.Contains(err.Error(), "unquoted ; & | < or >") {
		t.Fatalf("got %v, want a DriftError naming the missing flag and the ';'", err)
	}
	if hashFile(t, base) != before {
		t.Error("base changed")
	}
}
