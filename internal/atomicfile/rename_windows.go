package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/windows"
)

// rename renames tmp over path (MoveFileEx, replacing). On Windows the
// rename fails while another program holds path open without sharing its
// deletion: an editor, a virus scanner, Docker Desktop's file sharing. Such
// holds are usually brief, so it tries again for two seconds, then says who
// is likely in the way.
func rename(tmp, path string) error {
	deadline := time.Now().Add(2 * time.Second)
	for {
		err := os.Rename(tmp, path)
		if err == nil || !held(err) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w (for 2s another program kept %s open: close it in your editor or pause the scanner, then run again)", err, path)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func held(err error) bool {
	return errors.Is(err, windows.ERROR_ACCESS_DENIED) || errors.Is(err, windows.ERROR_SHARING_VIOLATION) || errors.Is(err, windows.ERROR_LOCK_VIOLATION)
}
