package buildinfo

import (
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	i := Info{Version: "v0.3.1", Revision: "45ca3145c0de7d8f", Time: "2026-11-22T18:54:01Z", Modified: true, Go: "go1.26.8"}
	if got, want := i.String(), "v0.3.1 45ca3145c0de+modified 2026-11-22T18:54:01Z go1.26.8"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if r := Read(); r.Version == "" || !strings.HasPrefix(r.Go, "go") {
		t.Errorf("Read() = %+v", r)
	}
}
