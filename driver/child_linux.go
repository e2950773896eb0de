//go:build linux

package driver

import "syscall"

// childAttr: a trial's server dies with vgrid, even on kill -9 (the kernel
// sends it SIGKILL when its parent dies), so a resumed run finds the port
// free; the champion left running at the end is detached in its own session.
func childAttr(detach bool) *syscall.SysProcAttr {
	if detach {
		return &syscall.SysProcAttr{Setsid: true}
	}
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
