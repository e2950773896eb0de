//go:build windows

package store

import "os"

// dataHome is where vgrid keeps its files by default: %LOCALAPPDATA%.
func dataHome(getenv func(string) string) string {
	if base := getenv("LOCALAPPDATA"); base != "" {
		return base
	}
	dir, _ := os.UserCacheDir() // %LOCALAPPDATA% as Windows reports it
	return dir
}
