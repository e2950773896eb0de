//go:build unix

package diskwait

import (
	"errors"
	"syscall"
)

func transient(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, syscall.EROFS)
}
