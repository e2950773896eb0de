package diskwait

import (
	"context"
	"errors"
	"io/fs"
	"testing"
	"time"
)

func TestRetryWaitsForTheFileSystem(t *testing.T) {
	refused := &fs.PathError{Op: "write", Path: "f", Err: full}
	n, waited, back := 0, 0, time.Duration(0)
	err := Retry(context.Background(), time.Minute, func(error) { waited++ }, func(d time.Duration) { back = d }, func() error {
		if n++; n < 3 {
			return refused
		}
		return nil
	})
	if err != nil || n != 3 || waited != 1 || back < Interval {
		t.Errorf("err %v after %d calls, %d waits, back after %s", err, n, waited, back)
	}
	// Another error is returned at once.
	other := errors.New("permission denied")
	n = 0
	if err := Retry(context.Background(), time.Minute, nil, nil, func() error { n++; return other }); err != other || n != 1 {
		t.Errorf("err %v after %d calls", err, n)
	}
	// The wait ends with ctx, and with max.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := Retry(ctx, time.Minute, nil, nil, func() error { return refused }); !errors.Is(err, full) {
		t.Errorf("after ctx: %v", err)
	}
	if err := Retry(context.Background(), Interval/2, nil, nil, func() error { return refused }); !errors.Is(err, full) || !Transient(err) {
		t.Errorf("after max: %v", err)
	}
}
