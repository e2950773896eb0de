//go:build unix

package sim

import (
	"os"

	"golang.org/x/sys/unix"
)

// openBoots opens the boots file, refusing a link, and takes its
// exclusive lock (released when the file is closed).
func openBoots(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
