package daemon

import (
	"bytes"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vgrid/vgrid/orchestrator"
	"github.com/vgrid/vgrid/profiles"
)

// raw sends a request with its own headers (no token unless given) and
// returns the status and body.
func (td *testDaemon) raw(req *http.Request) (int, string) {
	td.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		td.t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// Bodies are bounded: a large login or multipart upload, a grid over the
// limit, a huge rollback request are refused with 413 (or 415), nothing
// is stored, and nothing is truncated.
func TestBodiesAreBounded(t *testing.T) {
	td := startTestDaemon(t, t.TempDir(), &gateTarget{gate: make(chan struct{})})
	defer td.stop()

	// A login form with a 300 MB upload: refused before it is read.
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	mw.WriteField("token", "x")
	fw, _ := mw.CreateFormFile("f", "big")
	fw.Write(bytes.Repeat([]byte("A"), 1<<20))
	mw.Close()
	req, _ := http.NewRequest("POST", td.url+"/login", &form)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	if code, body := td.raw(req); code != http.StatusRequestEntityTooLarge {
		t.Errorf("a 1 MiB multipart login: %d %s", code, body)
	}
	req, _ = http.NewRequest("POST", td.url+"/login", strings.NewReader("--b\r\n\r\n"))
	req.Header.Set("Content-Type", "multipart/form-data; boundary=b")
	if code, _ := td.raw(req); code != http.StatusUnsupportedMediaType {
		t.Errorf("a small multipart login: %d, want 415", code)
	}
	// A streamed body (no length) past the limit is cut and refused.
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < 300; i++ { // 300 MB offered
			if _, err := pw.Write(bytes.Repeat([]byte("A"), 1<<20)); err != nil {
				break
			}
		}
		pw.Close()
	}()
	req, _ = http.NewRequest("POST", td.url+"/login", pr)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	start := time.Now()
	if code, _ := td.raw(req); code != http.StatusRequestEntityTooLarge && code != http.StatusBadRequest && code != http.StatusUnauthorized {
		t.Errorf("a 300 MB streamed login: %d", code)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a 300 MB streamed login took %v: it was read", d)
	}

	// A grid one byte over the limit: 413 with the limit, nothing stored.
	grid := fmt.Sprintf(daemonGrid, 8000)
	big := grid + "# " + strings.Repeat("x", MaxGrid-len(grid)-3) + "\n"
	big += "\n"
	code, body := td.call("POST", "/v1/runs?name=g.yaml", big)
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(body, fmt.Sprint(MaxGrid)) {
		t.Errorf("a grid of %d bytes: %d %.200s", len(big), code, body)
	}
	if runs, _ := td.st.Runs(); len(runs) != 0 {
		t.Errorf("a refused grid stored %d run(s)", len(runs))
	}
	// At the limit exactly it is read whole: its last key is kept.
	exact := grid + "# " + strings.Repeat("x", MaxGrid-len(grid)-len("deadline: 8h\n")-3) + "\ndeadline: 8h\n"
	if len(exact) != MaxGrid {
		t.Fatalf("test grid of %d bytes", len(exact))
	}
	if code, body := td.call("POST", "/v1/runs?name=g.yaml", exact); code != http.StatusAccepted {
		t.Errorf("a grid of exactly %d bytes: %d %.200s", MaxGrid, code, body)
	} else if runs, _ := td.st.Runs(); len(runs) != 1 || runs[0].Deadline.IsZero() {
		t.Error("the grid at the limit lost its last key")
	}

	// A 100 MB rollback request: 413 at once, nothing logged whole.
	huge := `{"file": "` + strings.Repeat("a", 100<<20) + `", "to": "latest"}`
	start = time.Now()
	if code, _ := td.call("POST", "/v1/profiles/rollback", huge); code != http.StatusRequestEntityTooLarge {
		t.Errorf("a 100 MB rollback: %d", code)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("a 100 MB rollback took %v", d)
	}
	// Under the cap, a long path is refused with a bounded message.
	long := `{"file": "` + strings.Repeat("(", 50000) + `", "to": "latest", "expect": "x"}`
	if code, body := td.call("POST", "/v1/profiles/rollback", long); code != http.StatusBadRequest || len(body) > 2000 {
		t.Errorf("a 50 kB path: %d, %d bytes of answer", code, len(body))
	}
}

// The token's routes and the unauthenticated ones: failures limited per
// client, the Host checked, healthz says nothing more than ok, the bearer
// scheme in any case.
func TestAuthenticationEdges(t *testing.T) {
	td := startTestDaemon(t, t.TempDir(), &gateTarget{gate: make(chan struct{})})
	defer td.stop()

	req, _ := http.NewRequest("GET", td.url+"/healthz", nil)
	if code, body := td.raw(req); code != 200 || strings.Contains(body, "version") {
		t.Errorf("healthz without a token: %d %s", code, body)
	}
	req, _ = http.NewRequest("GET", td.url+"/healthz", nil)
	req.Header.Set("Authorization", "bearer "+td.token)
	if code, body := td.raw(req); code != 200 || !strings.Contains(body, `"version"`) {
		t.Errorf("healthz with a lower-case bearer token: %d %s", code, body)
	}
	req, _ = http.NewRequest("GET", td.url+"/login", nil)
	req.Host = "attacker.example:8321"
	if code, _ := td.raw(req); code != http.StatusMisdirectedRequest {
		t.Errorf("a page asked for another host name: %d, want 421", code)
	}
	td.d.cfg.Hosts = []string{"vgrid.example.org"}
	req, _ = http.NewRequest("GET", td.url+"/login", nil)
	req.Host = "VGRID.example.org:443"
	if code, _ := td.raw(req); code != http.StatusOK {
		t.Errorf("a page asked for a name given with --host: %d, want 200", code)
	}
	// Ten wrong logins, then the eleventh (even with the right token) waits.
	for i := 0; i < loginFailures; i++ {
		req, _ = http.NewRequest("POST", td.url+"/login", strings.NewReader(url.Values{"token": {fmt.Sprint("guess", i)}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if code, _ := td.raw(req); code != http.StatusUnauthorized {
			t.Fatalf("wrong login %d: %d", i, code)
		}
	}
	req, _ = http.NewRequest("POST", td.url+"/login", strings.NewReader(url.Values{"token": {td.token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if code, _ := td.raw(req); code != http.StatusTooManyRequests {
		t.Errorf("login after %d failures: %d, want 429", loginFailures, code)
	}
	req, _ = http.NewRequest("GET", td.url+"/v1/runs", nil)
	req.Header.Set("Authorization", "Bearer "+td.token)
	if code, _ := td.raw(req); code != http.StatusTooManyRequests {
		t.Errorf("the API after %d failures from the same client: %d, want 429", loginFailures, code)
	}
}

// Rollback reads and writes only profiles that a stored run drove.
func TestRollbackOnlyOfDrivenProfiles(t *testing.T) {
	td := startTestDaemon(t, t.TempDir(), &gateTarget{gate: make(chan struct{})})
	defer td.stop()
	dir := t.TempDir()
	secret := filepath.Join(dir, "shadow")
	os.WriteFile(secret, []byte("root:secret\n"), 0o600)
	os.WriteFile(secret+".backup_x_20260101_000000", []byte("planted\n"), 0o644)
	for _, path := range []string{"/v1/profiles/backups?file=" + url.QueryEscape(secret)} {
		if code, body := td.call("GET", path, ""); code != http.StatusBadRequest || strings.Contains(body, "sha256\":\"") || !strings.Contains(body, "not a profile") {
			t.Errorf("GET %s: %d %s", path, code, body)
		}
	}
	code, body := td.call("POST", "/v1/profiles/rollback", fmt.Sprintf(`{"file": %q, "to": "latest", "expect": "x"}`, secret))
	if b, _ := os.ReadFile(secret); code != http.StatusBadRequest || string(b) != "root:secret\n" {
		t.Errorf("rollback of a file no run drove: %d %s; the file now holds %q", code, body, b)
	}
	// A driven profile: shown with its digest; rolled back only with it.
	prof := filepath.Join(dir, "medium.yml")
	os.WriteFile(prof, []byte("services: {vllm: {command: --max-num-seqs 16}}\n"), 0o644)
	profiles.WriteBackup(prof, "before", time.Now().Add(-time.Hour))
	os.WriteFile(prof, []byte("services: {vllm: {command: --max-num-seqs 32}}\n"), 0o644)
	td.st.PutRun(&orchestrator.Run{ID: "r1", State: orchestrator.RunDone, Grid: orchestrator.Grid{Target: orchestrator.Target{Driver: "compose", Files: []string{prof}}}})
	code, body = td.call("GET", "/v1/profiles/backups?file="+url.QueryEscape(prof), "")
	cur, _ := os.ReadFile(prof)
	if code != 200 || !strings.Contains(body, Digest(cur)) {
		t.Fatalf("backups of a driven profile: %d %s", code, body)
	}
	if code, _ := td.call("POST", "/v1/profiles/rollback", fmt.Sprintf(`{"file": %q, "to": "latest", "expect": "%064x"}`, prof, 0)); code != http.StatusConflict {
		t.Errorf("rollback against another content: %d, want 409", code)
	}
	if code, body := td.call("POST", "/v1/profiles/rollback", fmt.Sprintf(`{"file": %q, "to": "latest", "expect": %q}`, prof, Digest(cur))); code != 200 {
		t.Errorf("rollback: %d %s", code, body)
	}
	if b, _ := os.ReadFile(prof); !strings.Contains(string(b), "16") {
		t.Errorf("after the rollback: %q", b)
	}
}

// Live event streams are capped; with the cap reached the API answers at
// once (streams read the store when the hub wakes them, not every 250 ms).
func TestEventStreamsCapped(t *testing.T) {
	target := &gateTarget{gate: make(chan struct{})}
	td := startTestDaemon(t, t.TempDir(), target)
	defer td.stop()
	defer close(target.gate)
	id := td.submit()
	td.wait(id, benchmarking)
	var open []*http.Response
	defer func() {
		for _, r := range open {
			r.Body.Close()
		}
	}()
	for i := 0; i < maxStreams; i++ {
		req, _ := http.NewRequest("GET", td.url+"/v1/runs/"+id+"/events", nil)
		req.Header.Set("Authorization", "Bearer "+td.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("stream %d: %v %v", i, err, resp)
		}
		open = append(open, resp)
	}
	code, body := td.call("GET", "/v1/runs/"+id+"/events", "")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, fmt.Sprint(maxStreams)) {
		t.Errorf("stream %d: %d %s", maxStreams+1, code, body)
	}
	start := time.Now()
	for i := 0; i < 20; i++ {
		if code, _ := td.call("GET", "/v1/runs", ""); code != 200 {
			t.Fatalf("GET /v1/runs: %d", code)
		}
	}
	t.Logf("with %d streams open, GET /v1/runs took %v on average", maxStreams, time.Since(start)/20)
}
