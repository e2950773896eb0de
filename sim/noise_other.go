//go:build !unix

package sim

import "os"

// openBoots opens the boots file. Without flock, parallel boots of one
// configuration may share a number (their offsets are then equal).
func openBoots(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
}
