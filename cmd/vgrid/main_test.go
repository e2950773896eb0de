package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const fixtures = "../../profiles/testdata/fixtures/"

func vgrid(t testing.TB, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, []string{"PATH=/usr/bin"}, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestProfileCommands(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile(fixtures + "medium.grid-baseline.yml")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "medium.yml")
	os.WriteFile(p, src, 0o644)
	env := fixtures + "env.example"

	code, out, errs := vgrid(t, "profile", "show", "-f", p, "--env-file", env)
	if code != 0 || !strings.Contains(out, "--gpu-memory-utilization        0.9999") || !strings.Contains(out, "--api-key                       <redacted>") {
		t.Fatalf("show: code %d\n%s%s", code, out, errs)
	}
	if strings.Contains(out, "xxxxxxxx") {
		t.Error("show printed the API key")
	}

	code, out, _ = vgrid(t, "profile", "set", "-f", p, "--env-file", env, "gpu-memory-utilization=0.85", "enable-prefix-caching=false")
	if code != 0 || !strings.Contains(out, "-      --enable-prefix-caching") || !strings.Contains(out, "+      --no-enable-prefix-caching") ||
		!strings.Contains(out, "interpolation ${GPU_MEMORY_UTILIZATION_MEDIUM:-0.95} replaced by a literal") || !strings.Contains(out, "dry run") {
		t.Fatalf("set (dry run): code %d\n%s", code, out)
	}
	if b, _ := os.ReadFile(p); !bytes.Equal(b, src) {
		t.Fatal("dry run changed the file")
	}

	code, out, _ = vgrid(t, "profile", "set", "-f", p, "--env-file", env, "gpu-memory-utilization=0.85", "--write", "--label", "mission14")
	if code != 0 || !strings.Contains(out, "backup: "+p+".backup_mission14_") {
		t.Fatalf("set --write: code %d\n%s", code, out)
	}
	code, out, _ = vgrid(t, "profile", "backups", "-f", p)
	if code != 0 || !strings.Contains(out, "mission14") {
		t.Fatalf("backups: %d %s", code, out)
	}
	code, out, _ = vgrid(t, "profile", "diff", "-f", p, "--against", "latest")
	if code != 0 || !strings.Contains(out, "+      --gpu-memory-utilization 0.85") {
		t.Fatalf("diff: %d %s", code, out)
	}
	code, out, _ = vgrid(t, "profile", "rollback", "-f", p)
	if code != 0 || !strings.Contains(out, "restored:") {
		t.Fatalf("rollback: %d %s", code, out)
	}
	if b, _ := os.ReadFile(p); !bytes.Equal(b, src) {
		t.Fatal("rollback did not restore the original")
	}
}

func TestExitCodes(t *testing.T) {
	p := fixtures + "medium.yml"
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"profile", "show"}, 2, "no compose file"},
		{[]string{"profile", "set", "-f", p}, 2, "nothing to set"},
		{[]string{"profile", "set", "-f", p, "gpu-memory-utilization=1.5"}, 2, "(0, 1]"},
		{[]string{"profile", "show", "--bogus"}, 2, "unknown flag"},
		{[]string{"profile", "show", "-f", p, "--service", "nope"}, 1, "no service"},
		{[]string{"profile", "show", "-f", "/nonexistent.yml"}, 1, "nonexistent"},
		{[]string{"profile", "set", "-f", p, "max-num-seqs=4"}, 1, "VLLM_API_KEY_MEDIUM is not set"},
	}
	for _, tt := range tests {
		code, _, errs := vgrid(t, tt.args...)
		if code != tt.code || !strings.Contains(errs, tt.want) {
			t.Errorf("vgrid %v: code %d, stderr %q; want code %d and %q", tt.args, code, errs, tt.code, tt.want)
		}
		if strings.Contains(errs, "level=warning") {
			t.Errorf("vgrid %v: compose-go's own log leaked to stderr: %q", tt.args, errs)
		}
	}
}
