package store

import "path/filepath"

// DefaultPath is $VGRID_STORE, else vgrid/vgrid.db under the platform's
// data directory: ~/.local/share (or $XDG_DATA_HOME) on Linux and macOS,
// %LOCALAPPDATA% on Windows.
func DefaultPath(getenv func(string) string) string {
	if p := getenv("VGRID_STORE"); p != "" {
		return p
	}
	return filepath.Join(dataHome(getenv), "vgrid", "vgrid.db")
}
