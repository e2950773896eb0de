//go:build windows

package diskwait

import (
	"errors"
	"syscall"
)

// Windows' codes for a full disk and a write-protected medium.
const (
	errorHandleDiskFull syscall.Errno = 39
	errorDiskFull       syscall.Errno = 112
	errorWriteProtect   syscall.Errno = 19
)

func transient(err error) bool {
	return errors.Is(err, errorDiskFull) || errors.Is(err, errorHandleDiskFull) || errors.Is(err, errorWriteProtect)
}
