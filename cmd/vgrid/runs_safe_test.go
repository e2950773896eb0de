package main

import "testing"

func TestTermSafe(t *testing.T) {
	if got := termSafe("night\x1b[2J\x1b]0;pwned\x07\tgrid\n"); got != "night[2J]0;pwned grid " {
		t.Errorf("got %q", got)
	}
}
