// Package diskwait retries a write that the file system refuses for a
// while: the disk is full, or the file system is read-only. A night's run
// waits for the space (or the remount) to come back instead of failing a
// candidate, or the whole run, for a condition outside it.
//
// May import: the standard library and golang.org/x/sys.
package diskwait

import (
	"context"
	"fmt"
	"time"
)

// Interval is how often a refused write is tried again.
const Interval = time.Second

// Transient reports whether err is the file system refusing a write for a
// reason that can pass: no space left, a quota reached, read-only.
func Transient(err error) bool { return err != nil && transient(err) }

// Retry calls fn until it succeeds, fails for another reason than a
// Transient one, ctx ends, or max has passed since the first refusal
// (then the last refusal is returned, saying how long it waited). onWait,
// when set, is called once, with the first refusal, and onBack once the
// write went through after a wait.
func Retry(ctx context.Context, max time.Duration, onWait func(error), onBack func(waited time.Duration), fn func() error) error {
	err := fn()
	if !Transient(err) {
		return err
	}
	if onWait != nil {
		onWait(err)
	}
	start := time.Now()
	t := time.NewTicker(Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (waited %s for the file system; stopped)", err, time.Since(start).Round(time.Second))
		case <-t.C:
		}
		if err = fn(); !Transient(err) {
			if err == nil && onBack != nil {
				onBack(time.Since(start))
			}
			return err
		}
		if time.Since(start) >= max {
			return fmt.Errorf("%w (still refused after waiting %s; free some space or make the file system writable, then resume)", err, max)
		}
	}
}
