package store

import (
	"path/filepath"
	"runtime"
	"testing"
)

// TestDefaultPath: $VGRID_STORE, else the platform's data folder:
// %LOCALAPPDATA%\vgrid on Windows, $XDG_DATA_HOME/vgrid or
// ~/.local/share/vgrid elsewhere.
func TestDefaultPath(t *testing.T) {
	env := map[string]string{"VGRID_STORE": filepath.Join("x", "my.db")}
	get := func(k string) string { return env[k] }
	if got := DefaultPath(get); got != env["VGRID_STORE"] {
		t.Errorf("VGRID_STORE: got %s", got)
	}
	delete(env, "VGRID_STORE")
	var want string
	if runtime.GOOS == "windows" {
		env["LOCALAPPDATA"] = `C:\Users\jsboi\AppData\Local`
		want = `C:\Users\jsboi\AppData\Local\vgrid\vgrid.db`
	} else {
		env["HOME"] = "/home/jsboi"
		want = "/home/jsboi/.local/share/vgrid/vgrid.db"
		if got := DefaultPath(get); got != want {
			t.Errorf("HOME: got %s, want %s", got, want)
		}
		env["XDG_DATA_HOME"] = "/data"
		want = "/data/vgrid/vgrid.db"
	}
	if got := DefaultPath(get); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
