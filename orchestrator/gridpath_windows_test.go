package orchestrator

import (
	"path/filepath"
	"testing"
)

// TestWindowsAbsolutePaths: drive letters, either slash, and UNC shares are
// absolute on Windows and kept; a path relative to the current drive's root
// (\myia\medium.yml) is not absolute and joins the grid's folder like any
// relative path.
func TestWindowsAbsolutePaths(t *testing.T) {
	dir := `C:\grids`
	for files, want := range map[string]string{
		`C:\Users\jsboi\medium.yml`: `C:\Users\jsboi\medium.yml`,
		`c:/Users/jsboi/medium.yml`: `c:\Users\jsboi\medium.yml`,
		`'\\nas\models\medium.yml'`: `\\nas\models\medium.yml`,
		`profiles/medium.yml`:       `C:\grids\profiles\medium.yml`,
		`..\shared\medium.yml`:      `C:\shared\medium.yml`,
	} {
		g, err := LoadGrid("grid.yaml", []byte(replaceFiles(files)), dir)
		if err != nil {
			t.Errorf("%s: %v", files, err)
			continue
		}
		if got := filepath.Clean(g.Target.Files[0]); got != want {
			t.Errorf("%s: got %q, want %q", files, got, want)
		}
	}
}
