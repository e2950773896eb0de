//go:build !windows

package atomicfile

import "os"

// rename renames tmp over path, atomically.
func rename(tmp, path string) error { return os.Rename(tmp, path) }
