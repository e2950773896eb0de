package daemon

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/vgrid/vgrid/driver/assemble"
	"github.com/vgrid/vgrid/orchestrator"
	"github.com/vgrid/vgrid/store"
)

// FuzzRequests sends arbitrary grids and rollback requests to the
// daemon's handler: every answer is a 4xx or a 202, never a 5xx or a
// panic, and an answer stays bounded whatever the input's size. CI runs
// it for a few seconds (.ci/run).
func FuzzRequests(f *testing.F) {
	f.Add(fmt.Sprintf(daemonGrid, 8000), `{"file": "/etc/shadow", "to": "latest", "expect": "x"}`)
	f.Add("name: x\nspace: {axes: {max-num-seqs: [8, 16]}}\n\t- tab", `{"file": "(((((", "to": "[", "expect": ""}`)
	f.Add("a: &a [*a, *a, *a]\nb: &b [*a, *a]\n", `{"file": 1}`)
	f.Add("{", `[`)
	dir := f.TempDir()
	st, err := store.Open(filepath.Join(dir, "vgrid.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	target := &gateTarget{gate: make(chan struct{})}
	d, _, err := New(Config{Listen: "127.0.0.1:0", TokenFile: filepath.Join(dir, "token"), Store: st, Log: zerolog.Nop(),
		Assemble: func(_ context.Context, g *orchestrator.Grid, _ string) (*assemble.Parts, error) {
			return &assemble.Parts{Driver: target, Bench: &gateBench{g: target, grid: g}}, nil
		}})
	if err != nil {
		f.Fatal(err)
	}
	h := d.Handler()
	f.Fuzz(func(t *testing.T, grid, rollback string) {
		for _, req := range []*http.Request{
			httptest.NewRequest("POST", "/v1/runs?name=f.yaml", strings.NewReader(grid)),
			httptest.NewRequest("POST", "/v1/profiles/rollback", strings.NewReader(rollback)),
		} {
			req.Header.Set("Authorization", "Bearer "+d.token)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code >= 500 {
				t.Fatalf("%s: %d %.300s", req.URL.Path, w.Code, w.Body.String())
			}
			if w.Body.Len() > 64<<10 {
				t.Fatalf("%s: an answer of %d bytes", req.URL.Path, w.Body.Len())
			}
		}
	})
}
