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
// when it has not exited after grace. Without a console to share (vgrid
// started as a service, or by a program without one) there is no polite
// stop to send, and it kills at once.
func terminate(p *os.Process, exited <-chan struct{}, grace time.Duration) {
	if err := windows.GenerateConsoleCtrlEvent(windows.CTRL_BREAK_EVENT, uint32(p.Pid)); err != nil {
		grace = 0
	}
	select {
	case <-exited:
	case <-time.After(grace):
		p.Kill()
		<-exited
	}
}
