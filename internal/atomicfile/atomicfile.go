// Package atomicfile replaces a file whole or not at all: the new content
// goes to a file of a random name created beside it (exclusively, so a
// link another user planted at a fixed name is never followed), which is
// synced through its writing handle (Windows flushes no other) and
// renamed over the target. A profile's write and the store's backup and
// restore use it.
//
// May import: the standard library and golang.org/x/sys.
package atomicfile

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Replace writes path through write, with mode perm: a new file in the
// same directory, fsync, rename over path, fsync of the directory. On any
// error path is left as it was and the new file is removed.
func Replace(path string, perm fs.FileMode, write func(f *os.File) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create a temporary file in %s: %w (is the directory writable and the disk not full?)", dir, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = write(f); err != nil {
		return err
	}
	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err = rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp, path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return nil // the rename happened; a failed directory fsync cannot be undone
	}
	defer d.Close()
	_ = d.Sync()
	return nil
}
