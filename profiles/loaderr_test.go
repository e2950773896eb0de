package profiles

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The README's Mission 14 override loads as written over the user's
// profile; the same override with the comma unquoted is explained with
// its file, line and column and the likely cause.
func TestComposeLoadErrorsAndTheREADMEOverride(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)cat > sim\.override\.yml <<'YML'\n(.*?)\nYML\n`).FindSubmatch(readme)
	if m == nil {
		t.Fatal("the README has no sim.override.yml block")
	}
	dir := t.TempDir()
	profile, _ := os.ReadFile(filepath.Join("testdata", "fixtures", "medium.yml"))
	os.WriteFile(filepath.Join(dir, "medium.yml"), profile, 0o644)
	os.WriteFile(filepath.Join(dir, ".env"), []byte("HUGGING_FACE_HUB_TOKEN=x\nVLLM_API_KEY_MEDIUM=x\n"), 0o644)
	override := filepath.Join(dir, "sim.override.yml")
	os.WriteFile(override, m[1], 0o644)
	p := Project{Files: []string{filepath.Join(dir, "medium.yml"), override}}
	l, err := p.Load(context.Background(), nil)
	if err != nil {
		t.Fatalf("the README's override does not load: %v", err)
	}
	env := l.Project.Services["vllm-medium-qwen3"].Environment
	if v := env["VLLM_SIM_GPU_USED_MIB"]; v == nil || *v != "1500,0" {
		t.Errorf("VLLM_SIM_GPU_USED_MIB = %v, want 1500,0", v)
	}
	unquoted := strings.Replace(string(m[1]), `"VLLM_SIM_GPU_USED_MIB=1500,0"`, `VLLM_SIM_GPU_USED_MIB=1500,0`, 1)
	os.WriteFile(override, []byte(unquoted), 0o644)
	_, err = p.Load(context.Background(), nil)
	want := regexp.MustCompile(`sim\.override\.yml:\d+:\d+: services\.vllm-medium-qwen3\.environment\[2\]: .*a comma separates items, so "VLLM_SIM_GPU_USED_MIB=1500,0" was likely read as two items`)
	if err == nil || !want.MatchString(err.Error()) {
		t.Errorf("an unquoted comma: %v", err)
	}
}
