//go:build windows

package driver

import (
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/windows"
)

// childAttr puts the server in its own process group, so that it can be
// sent a CTRL_BREAK (Windows' polite stop) without vgrid receiving it. The
// champion is also detached from vgrid's console.
func childAttr(detach bool) *syscall.SysProcAttr {
	flags := uint32(windows.CREATE_NEW_PROCESS_GROUP)
	if detach {
		flags |= windows.DETACHED_PROCESS
	}
	return &syscall.SysProcAttr{CreationFlags: flags}
}

// terminate sends CTRL_BREAK to the server's process group, and kills it
// when it has not exited after grace.
func terminate(p *os.Process, exited <-chan struct{}, grace time.Duration) {
	windows.GenerateConsoleCtrlEvent(windows.CTRL_BREAK_EVENT, uint32(p.Pid))
	select {
	case <-exited:
	case <-time.After(grace):
		p.Kill()
		<-exited
	}
}
