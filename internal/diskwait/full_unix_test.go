//go:build unix

package diskwait

import "syscall"

var full = syscall.ENOSPC
