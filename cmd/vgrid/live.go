package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/vgrid/vgrid/orchestrator"
)

// liveView shows a run's progress. On a terminal it keeps one status line
// that it rewrites in place (the current trial, its phase and elapsed
// time, the run's ETA) and prints a permanent line as each trial ends;
// elsewhere (a pipe, a file) it prints one line per phase change. Quiet
// prints nothing.
type liveView struct {
	w     io.Writer
	tty   bool
	quiet bool

	mu     sync.Mutex
	cur    *orchestrator.Progress
	since  time.Time // when cur was reported
	stop   chan struct{}
	done   chan struct{}
	status bool // a status line is on screen
}

func newLiveView(w io.Writer, tty, quiet bool) *liveView {
	v := &liveView{w: w, tty: tty, quiet: quiet}
	if tty && !quiet {
		v.stop, v.done = make(chan struct{}), make(chan struct{})
		go v.tick()
	}
	return v
}

// update takes one progress report from the orchestrator.
func (v *liveView) update(p orchestrator.Progress) {
	if v.quiet {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.tty {
		fmt.Fprintln(v.w, progressLine(p, p.Elapsed))
		return
	}
	v.clear()
	if p.Phase.Final() {
		fmt.Fprintln(v.w, progressLine(p, p.Elapsed))
		v.cur = nil
		return
	}
	v.cur, v.since = &p, time.Now()
	v.draw()
}

// progressLine is "[2/4] waiting-ready      3.2s  gpu-memory-utilization=0.85  run ETA 1m20s".
func progressLine(p orchestrator.Progress, elapsed time.Duration) string {
	phase := p.Phase.String()
	if p.Reason != "" {
		phase += " (" + p.Reason + ")"
	}
	eta := ""
	if p.ETA > 0 && !p.Phase.Final() {
		eta = "  run ETA " + p.ETA.Round(time.Second).String()
	}
	return fmt.Sprintf("[%d/%d] %-28s %6.1fs  %s%s", p.Trial, p.Trials, phase, elapsed.Seconds(), termSafe(p.Name), eta)
}

func (v *liveView) clear() {
	if v.status {
		fmt.Fprint(v.w, "\r\033[K")
		v.status = false
	}
}

func (v *liveView) draw() {
	if v.cur == nil {
		return
	}
	p := *v.cur
	since := time.Since(v.since)
	if p.ETA > 0 {
		p.ETA = max(p.ETA-since, time.Second)
	}
	line := fitLine(progressLine(p, p.Elapsed+since), v.width())
	fmt.Fprint(v.w, strings.TrimRight(line, " "))
	v.status = true
}

// width is the terminal's width now (it may be resized), 160 when unknown.
func (v *liveView) width() int {
	if w := termWidth(v.w); w > 0 {
		return w
	}
	return 160
}

// fitLine cuts a status line to the width: a line that wraps could not be
// rewritten in place. The cut keeps the start (trial, phase, time) and
// says it was cut.
func fitLine(line string, width int) string {
	r := []rune(line)
	if len(r) < width {
		return line
	}
	if width <= 4 {
		return ""
	}
	return string(r[:width-4]) + "..."
}

func (v *liveView) tick() {
	defer close(v.done)
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-v.stop:
			return
		case <-t.C:
			v.mu.Lock()
			v.clear()
			v.draw()
			v.mu.Unlock()
		}
	}
}

// close removes the status line and stops the ticker.
func (v *liveView) close() {
	if v.stop != nil {
		close(v.stop)
		<-v.done
		v.stop = nil
	}
	v.mu.Lock()
	v.clear()
	v.mu.Unlock()
}
