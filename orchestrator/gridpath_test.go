package orchestrator

import (
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// composeGrid is a compose grid whose profile path is written as FILES.
const composeGrid = `name: paths
target:
  driver: compose
  files: [FILES]
  service: medium-qwen3
space:
  axes:
    gpu-memory-utilization: [0.80, 0.90]
objective:
  maximize: kv-cache.acceleration
`

// TestWindowsPathsInGrids: the forms a Windows user writes a profile path
// in. Double quotes make YAML read the backslashes as escapes; some forms
// fail to parse, others silently give a tab or a newline: both are refused
// with the line and what to write instead.
func TestWindowsPathsInGrids(t *testing.T) {
	dir := t.TempDir()
	load := func(files string) (*Grid, error) {
		return LoadGrid("grid.yaml", []byte(replaceFiles(files)), dir)
	}
	for _, tc := range []struct{ files, want string }{
		{`"C:\Users\jsboi\myia\medium.yml"`, "expected hexdecimal number"}, // \U wants eight hex digits
		{`"D:\myia\medium.yml"`, "unknown escape character"},
		{`"C:\temp\new.yml"`, `holds the control character '\t'`}, // parses: a tab and a newline
		{`"C:\models\x\nmedium.yml"`, ""},                         // \x wants two hex digits
	} {
		_, err := load(tc.files)
		if err == nil || !strings.Contains(err.Error(), "write it unquoted") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("files: [%s]: got %v, want %q and the hint", tc.files, err, tc.want)
		}
		if ge, ok := err.(*GridError); ok && strings.Contains(tc.want, "escape") && ge.Line != 4 {
			t.Errorf("files: [%s]: line %d, want 4", tc.files, ge.Line)
		}
	}
	// The forms that work everywhere: unquoted, single-quoted, forward slashes.
	for _, files := range []string{`C:\Users\jsboi\myia\medium.yml`, `'C:\Users\jsboi\myia\medium.yml'`, `C:/Users/jsboi/myia/medium.yml`, `"C:\\Users\\jsboi\\myia\\medium.yml"`} {
		g, err := load(files)
		if err != nil {
			t.Errorf("files: [%s]: %v", files, err)
			continue
		}
		got := g.Target.Files[0]
		if runtime.GOOS == "windows" {
			if want := filepath.Clean(`C:\Users\jsboi\myia\medium.yml`); got != want {
				t.Errorf("files: [%s]: got %q, want %q (absolute, kept)", files, got, want)
			}
		} else if !strings.HasPrefix(got, dir) {
			t.Errorf("files: [%s]: got %q, want it relative to the grid's folder (a drive letter is not absolute here)", files, got)
		}
	}
	// A relative path with backslashes is relative to the grid's folder.
	g, err := load(`profiles\medium.yml`)
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(dir, `profiles\medium.yml`) // on Windows: dir\profiles\medium.yml
	if got := g.Target.Files[0]; got != want {
		t.Errorf("a relative path: got %q, want %q", got, want)
	}
}

func replaceFiles(files string) string { return strings.Replace(composeGrid, "FILES", files, 1) }
