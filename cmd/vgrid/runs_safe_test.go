package main

import "testing"

func TestTermSafe(t *testing.T) {
	if got := termSafe("night\x1b[2J\x1b]0;pwned\x07\tgrid\n"); got != "night[2J]0;pwned grid " {
		t.Errorf("got %q", got)
	}
}

func TestFitLine(t *testing.T) {
	line := "[2/4] waiting-ready                   3.2s  gpu-memory-utilization=0.85 enable-prefix-caching=true  run ETA 1m20s"
	for _, w := range []int{200, 80, 40, 3} {
		got := fitLine(line, w)
		if n := len([]rune(got)); n >= w && w < len(line) || (w > len(line) && got != line) {
			t.Errorf("width %d: %q (%d runes)", w, got, n)
		}
	}
}
