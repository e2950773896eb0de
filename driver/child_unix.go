//go:build unix && !linux

package driver

import "syscall"

// childAttr: without Linux's parent-death signal, a trial's server runs in
// vgrid's process group, so a Ctrl-C in the terminal reaches both; a kill
// -9 of vgrid leaves it running (the resume then finds the port taken and
// says so). The champion is detached in its own session.
func childAttr(detach bool) *syscall.SysProcAttr {
	if detach {
		return &syscall.SysProcAttr{Setsid: true}
	}
	return nil
}
