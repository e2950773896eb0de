//go:build !windows

package store

import (
	"os"
	"path/filepath"
)

// dataHome is where vgrid keeps its files by default: $XDG_DATA_HOME,
// else ~/.local/share.
func dataHome(getenv func(string) string) string {
	if base := getenv("XDG_DATA_HOME"); base != "" {
		return base
	}
	home := getenv("HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	return filepath.Join(home, ".local", "share")
}
