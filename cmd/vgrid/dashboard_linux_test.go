//go:build linux

package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/vgrid/vgrid/internal/browsertest"
	"github.com/vgrid/vgrid/internal/dockertest"
	"github.com/vgrid/vgrid/orchestrator"
	"github.com/vgrid/vgrid/profiles"
	"github.com/vgrid/vgrid/store"
)

func dashGrid(port int) string {
	return fmt.Sprintf(`name: dashboard
target:
  driver: process
  command: [vgrid, sim, serve, --model, m, --host, 127.0.0.1, --port, "%d", --max-model-len, "8192", --enable-prompt-tokens-details]
  endpoint: http://127.0.0.1:%d
  env: {VLLM_SIM_TIME_SCALE: "0.05", VLLM_SIM_GPU_USED_MIB: "3000"}
space:
  candidates:
    - {name: cache-on, flags: {gpu-memory-utilization: "0.5", enable-prefix-caching: "true"}}
    - {name: too-greedy, flags: {gpu-memory-utilization: "0.99"}}
    - {name: cache-off, flags: {gpu-memory-utilization: "0.5", enable-prefix-caching: "false"}}
benchmark:
  scenarios: [kv-cache, load]
  requests: 4
  concurrency: [1, 2]
  rates: []
objective: {maximize: kv-cache.acceleration}
end: restore
`, port, port)
}

// TestDashboardInABrowser drives `vgrid serve`'s dashboard in a real
// chromium: a wrong token is refused, then login; a grid with an error
// shows its file:line message; the run started from the page changes
// phase live without a reload; a failed trial opens to its evidence; two
// runs are compared; a profile is rolled back after a confirmation (and a
// stale confirmation changes nothing); logout locks the pages again.
// Each page is screenshotted and checked for labels and table headers.
func TestDashboardInABrowser(t *testing.T) {
	ctx := browsertest.Start(t, 4*time.Minute)
	shots := t.ArtifactDir()
	shot := func(t *testing.T, ctx context.Context, name string) { browsertest.Shot(t, ctx, shots, name) }
	accessible := browsertest.Accessible
	// The daemon shows and rolls back only the profiles its runs drove: its
	// store starts with a run that drove the profile rolled back below.
	ddir, dir := t.TempDir(), t.TempDir()
	prof := filepath.Join(dir, "medium.yml")
	older := []byte("services:\n  vllm:\n    command: --max-num-seqs 16\n")
	os.WriteFile(prof, older, 0o644)
	seed, err := store.Open(filepath.Join(ddir, "vgrid.db"))
	if err != nil {
		t.Fatal(err)
	}
	seed.PutRun(&orchestrator.Run{ID: "20261101-000000.000-0000", State: orchestrator.RunDone, Target: "compose:" + prof,
		Grid: orchestrator.Grid{Name: "earlier", Target: orchestrator.Target{Driver: "compose", Files: []string{prof}}}})
	seed.Close()
	d := startDaemon(t, ddir, freePortT(t))
	// text reads in one step of the page's own script: the live part of a
	// run's page is swapped in while the test reads it.
	text := func(sel string) string {
		var s string
		if err := chromedp.Run(ctx, chromedp.Evaluate(fmt.Sprintf(`(document.querySelector(%q) || {textContent: ""}).textContent`, sel), &s)); err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	run := func(what string, actions ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}

	// Login: a wrong token, then the right one.
	run("open", chromedp.Navigate(d.url+"/"), chromedp.WaitVisible("#token", chromedp.ByID))
	accessible(t, ctx, "login")
	if s := text("#token-file"); s != filepath.Join(ddir, "token") {
		t.Errorf("the login page names the token file %q, want %s", s, filepath.Join(ddir, "token"))
	}
	run("wrong token", chromedp.SendKeys("#token", "not-the-token", chromedp.ByID), chromedp.Submit("#token", chromedp.ByID), chromedp.WaitVisible(".error", chromedp.ByQuery))
	if s := text(".error"); !strings.Contains(s, "not the daemon's token") {
		t.Errorf("wrong token says %q", s)
	}
	shot(t, ctx, "01-login-refused")
	run("login", chromedp.SendKeys("#token", d.token, chromedp.ByID), chromedp.Submit("#token", chromedp.ByID), chromedp.WaitVisible("#grid", chromedp.ByID))
	accessible(t, ctx, "runs")

	// A grid with an error: vgrid run's file:line message, nothing started.
	run("bad grid", chromedp.SetValue("#grid", "name: bad\ntarget:\n  driver: process\nspace:\n  axes:\n    max-num-seqs: [8]\nobjective: {maximize: nonsense}\n", chromedp.ByID),
		chromedp.Click(`form.submit button`, chromedp.ByQuery), chromedp.WaitVisible("#submit-error", chromedp.ByID))
	if s := text("#submit-error"); !strings.Contains(s, "pasted grid") {
		t.Errorf("grid error: %q", s)
	}
	shot(t, ctx, "02-grid-error")

	// Start a run and watch it live.
	port := freePortT(t)
	run("submit", chromedp.SetValue("#grid", dashGrid(port), chromedp.ByID), chromedp.Click(`form.submit button`, chromedp.ByQuery),
		chromedp.WaitVisible("#trials", chromedp.ByID))
	var marker float64
	run("mark the page", chromedp.Evaluate(`window.__vgridPage = Math.random()`, &marker))
	seen := map[string]bool{}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var phases []string
		run("phases", chromedp.Evaluate(`[...document.querySelectorAll("#trials tbody tr")].map(r => r.id + "=" + r.dataset.phase)`, &phases))
		for _, p := range phases {
			seen[p] = true
		}
		if text("#run-state") == "done" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run did not end on the page; phases seen %v", seen)
		}
		time.Sleep(150 * time.Millisecond)
	}
	var same float64
	var updates string
	run("no reload", chromedp.Evaluate(`window.__vgridPage`, &same), chromedp.Evaluate(`document.getElementById("live").dataset.updates || "0"`, &updates))
	if same != marker {
		t.Errorf("the page reloaded (marker %v, now %v)", marker, same)
	}
	if !seen["trial-0=benchmarking"] || !seen["trial-0=done"] || updates == "0" {
		t.Errorf("phases seen live: %v; updates swapped in: %s", seen, updates)
	}
	accessible(t, ctx, "run")
	shot(t, ctx, "03-run-done")
	var firstURL string
	run("url", chromedp.Location(&firstURL))

	// The failed trial's evidence.
	run("evidence", chromedp.Click(`#trial-1 details summary`, chromedp.ByQuery), chromedp.WaitVisible(`#trial-1 details p`, chromedp.ByQuery))
	if s := text(`#trial-1 details`); !strings.Contains(s, "free_memory") || !strings.Contains(s, "Free memory on device") {
		t.Errorf("the failed trial's evidence: %q", s)
	}
	shot(t, ctx, "04-evidence")
	if s := text("#apart"); !strings.Contains(s, "too-greedy") {
		t.Errorf("failed candidates listed apart from the charts: %q", s)
	}
	var charts int
	run("charts", chromedp.Evaluate(`document.querySelectorAll(".charts svg").length`, &charts))
	if charts < 5 {
		t.Errorf("%d charts on the run page", charts)
	}

	// A second run of the same grid, then the comparison.
	run("second run", chromedp.Navigate(d.url+"/"), chromedp.WaitVisible("#grid", chromedp.ByID), chromedp.SetValue("#grid", dashGrid(port), chromedp.ByID),
		chromedp.Click(`form.submit button`, chromedp.ByQuery), chromedp.WaitVisible("#trials", chromedp.ByID))
	run("second run ends", chromedp.Poll(`document.getElementById("run-state").textContent == "done"`, nil, chromedp.WithPollingTimeout(3*time.Minute)))
	var secondURL string
	run("url", chromedp.Location(&secondURL))
	a, b := firstURL[strings.LastIndex(firstURL, "/")+1:], secondURL[strings.LastIndex(secondURL, "/")+1:]
	run("compare", chromedp.Navigate(d.url+"/compare"), chromedp.WaitVisible("#a", chromedp.ByID),
		chromedp.SetValue("#a", a, chromedp.ByID), chromedp.SetValue("#b", b, chromedp.ByID), chromedp.Submit("#a", chromedp.ByID),
		chromedp.WaitVisible("#comparison", chromedp.ByID))
	var cmpRows int
	run("comparison rows", chromedp.Evaluate(`document.querySelectorAll("#comparison tbody tr").length`, &cmpRows))
	if s := text("#comparison"); cmpRows != 3 || !strings.Contains(s, "cache-on") || !strings.Contains(s, "failed (free_memory)") {
		t.Errorf("comparison (%d rows): %q", cmpRows, s)
	}
	accessible(t, ctx, "compare")
	shot(t, ctx, "05-compare")

	// A slow run cancelled from its page: a confirmation first, then the
	// run ends cancelled; with nothing measured it draws no empty chart.
	slow := strings.Replace(dashGrid(freePortT(t)), `VLLM_SIM_TIME_SCALE: "0.05"`, `VLLM_SIM_TIME_SCALE: "1"`, 1)
	run("slow run", chromedp.Navigate(d.url+"/"), chromedp.WaitVisible("#grid", chromedp.ByID), chromedp.SetValue("#grid", slow, chromedp.ByID),
		chromedp.Click(`form.submit button`, chromedp.ByQuery), chromedp.WaitVisible("#trials", chromedp.ByID))
	if n := text("#no-charts"); !strings.Contains(n, "No chart yet") {
		t.Errorf("a run with nothing measured: %q, want no charts", n)
	}
	run("ask to cancel", chromedp.Click(`form[action$="/cancel"] button`, chromedp.ByQuery), chromedp.WaitVisible("#confirm-cancel", chromedp.ByID))
	shot(t, ctx, "05b-confirm-cancel")
	run("cancel", chromedp.Click("#confirm-cancel", chromedp.ByID), chromedp.WaitVisible("#trials", chromedp.ByID),
		chromedp.Poll(`document.getElementById("run-state").textContent == "cancelled"`, nil, chromedp.WithPollingTimeout(time.Minute)))

	// A profile with two backups: roll back to the older after confirming.
	profiles.WriteBackup(prof, "before-night", time.Now().Add(-2*time.Hour))
	os.WriteFile(prof, []byte("services:\n  vllm:\n    command: --max-num-seqs 32\n"), 0o644)
	bs, err := profiles.Backups(prof)
	if err != nil || len(bs) != 1 {
		t.Fatalf("backups: %v %v", bs, err)
	}
	run("profiles", chromedp.Navigate(d.url+"/profiles?file="+prof), chromedp.WaitVisible("#backups", chromedp.ByID),
		chromedp.Click(`#backups a`, chromedp.ByQuery), chromedp.WaitVisible("#diff", chromedp.ByID))
	if s := text("#diff"); !strings.Contains(s, "-    command: --max-num-seqs 32") || !strings.Contains(s, "+    command: --max-num-seqs 16") {
		t.Errorf("diff: %q", s)
	}
	accessible(t, ctx, "profiles")
	shot(t, ctx, "06-profile-diff")
	run("ask", chromedp.Click(`form[action="/profiles/rollback"] button`, chromedp.ByQuery), chromedp.WaitVisible("#confirm", chromedp.ByID))
	shot(t, ctx, "07-confirm")
	// Someone else changes the file meanwhile: this confirmation is stale.
	os.WriteFile(prof, []byte("services:\n  vllm:\n    command: --max-num-seqs 48\n"), 0o644)
	run("stale confirm", chromedp.Click("#confirm", chromedp.ByID), chromedp.WaitVisible(".message", chromedp.ByQuery))
	if s := text(".message"); !strings.Contains(s, "changed since you reviewed it") {
		t.Errorf("stale confirmation: %q", s)
	}
	if got, _ := os.ReadFile(prof); !strings.Contains(string(got), "48") {
		t.Errorf("a stale confirmation changed the file:\n%s", got)
	}
	run("review again", chromedp.Navigate(d.url+"/profiles?file="+prof+"&backup="+bs[0].Path), chromedp.WaitVisible("#diff", chromedp.ByID),
		chromedp.Click(`form[action="/profiles/rollback"] button`, chromedp.ByQuery), chromedp.WaitVisible("#confirm", chromedp.ByID),
		chromedp.Click("#confirm", chromedp.ByID), chromedp.WaitVisible(".message", chromedp.ByQuery))
	if s := text(".message"); !strings.Contains(s, "now holds") {
		t.Errorf("rollback: %q", s)
	}
	if got, _ := os.ReadFile(prof); string(got) != string(older) {
		t.Errorf("after the rollback the file holds:\n%s", got)
	}
	shot(t, ctx, "08-rolled-back")

	// A form whose CSRF token is not the session's changes nothing.
	var status int
	run("csrf", chromedp.Navigate(d.url+"/"), chromedp.WaitVisible("#grid", chromedp.ByID),
		chromedp.Evaluate(`(async () => { const f = new FormData(); f.append("csrf", "forged"); f.append("grid", "x"); return (await fetch("/runs", {method: "POST", body: f})).status })()`, &status,
			func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
	if status != 403 {
		t.Errorf("a forged CSRF token: status %d, want 403", status)
	}

	// Logout: the pages are locked again.
	run("logout", chromedp.Click(`form.logout button`, chromedp.ByQuery), chromedp.WaitVisible("#token", chromedp.ByID))
	run("locked", chromedp.Navigate(secondURL), chromedp.WaitVisible("#token", chromedp.ByID))
	var loc string
	run("where", chromedp.Location(&loc))
	if !strings.Contains(loc, "/login") {
		t.Errorf("after logout a run page went to %s", loc)
	}
	shot(t, ctx, "09-logged-out")
}

// TestServeTLS: `vgrid serve --tls-cert --tls-key` serves HTTPS, and the
// dashboard's session cookie is then Secure; a key without its
// certificate is refused at start.
func TestServeTLS(t *testing.T) {
	certs := t.TempDir()
	dockertest.WriteTLS(t, certs)
	dir := t.TempDir()
	port := freePortT(t)
	cmd := exec.Command(vgridBinary(t), "serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--store", filepath.Join(dir, "vgrid.db"),
		"--tls-cert", filepath.Join(certs, "server-cert.pem"), "--tls-key", filepath.Join(certs, "server-key.pem"))
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &syncWriter{b: &log}, &syncWriter{b: &log}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pool := x509.NewCertPool()
	ca, _ := os.ReadFile(filepath.Join(certs, "ca.pem"))
	pool.AppendCertsFromPEM(ca)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	url := fmt.Sprintf("https://127.0.0.1:%d", port)
	var resp *http.Response
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if resp, err = client.Get(url + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
	}
	if err != nil {
		t.Fatalf("https: %v\n%s", err, log.String())
	}
	tok, _ := os.ReadFile(filepath.Join(dir, "token"))
	resp, err = client.PostForm(url+"/login", neturl.Values{"token": {strings.TrimSpace(string(tok))}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	secure := false
	for _, c := range resp.Cookies() {
		secure = secure || c.Name == "vgrid_session" && c.Secure && c.HttpOnly && c.SameSite == http.SameSiteStrictMode
	}
	if !secure {
		t.Errorf("over HTTPS the session cookie is %v; want Secure, HttpOnly, SameSite=Strict", resp.Cookies())
	}
	if !strings.Contains(log.String(), "vgrid serve on https://") {
		t.Errorf("serve says:\n%s", log.String())
	}
	code, _, errs := vgrid(t, "serve", "--listen", "127.0.0.1:0", "--store", filepath.Join(dir, "other.db"), "--tls-key", filepath.Join(certs, "server-key.pem"))
	if code != 2 || !strings.Contains(errs, "--tls-cert and --tls-key go together") {
		t.Errorf("a key without a certificate: code %d, %s", code, errs)
	}
}
