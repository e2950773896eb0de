//go:build unix

package daemon

import (
	"fmt"
	"os"
	"syscall"
)

// checkTokenFile refuses a token file that others could read or replace:
// it must belong to root or to this user, and be readable by them alone.
func checkTokenFile(path string, info os.FileInfo) error {
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("token file %s is readable or writable by others (mode %04o): the token can run commands as this daemon's user; chmod 600 %s", path, perm, path)
	}
	if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Uid != 0 && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("token file %s belongs to uid %d, not to this user or root: its owner could change the token; use a file of your own", path, st.Uid)
	}
	return nil
}
