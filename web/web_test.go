package web_test

import (
	"bytes"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vgrid/vgrid/daemon"
	"github.com/vgrid/vgrid/orchestrator"
	"github.com/vgrid/vgrid/profiles"
	"github.com/vgrid/vgrid/store"
)

// clock is a settable now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// server is the daemon's handler (API and dashboard) over a real store;
// runs it queues are never started (the daemon's loop does not run).
type server struct {
	*httptest.Server
	token string
	st    *store.Store
	clock *clock
}

func newServer(t testing.TB, useTLS bool) *server {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "vgrid.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := &clock{t: time.Now()}
	d, _, err := daemon.New(daemon.Config{Listen: "127.0.0.1:0", TokenFile: filepath.Join(dir, "token"), Store: st, Log: zerolog.Nop(), Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := daemon.LoadToken(filepath.Join(dir, "token"))
	if err != nil {
		t.Fatal(err)
	}
	s := &server{token: tok, st: st, clock: c}
	if useTLS {
		s.Server = httptest.NewTLSServer(d.Handler())
	} else {
		s.Server = httptest.NewServer(d.Handler())
	}
	t.Cleanup(s.Close)
	return s
}

// drive stores a run that drove the profile: the daemon shows and rolls
// back only such profiles.
func (s *server) drive(t testing.TB, profile string) {
	t.Helper()
	r := &orchestrator.Run{ID: "drove-" + filepath.Base(profile), State: orchestrator.RunDone, Target: "compose:" + profile,
		Grid: orchestrator.Grid{Target: orchestrator.Target{Driver: "compose", Files: []string{profile}}}}
	if err := s.st.PutRun(r); err != nil {
		t.Fatal(err)
	}
}

// client is a browser-like client: cookies, no redirects followed.
func (s *server) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	c := s.Server.Client()
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

func body(t testing.TB, r *http.Response) string {
	t.Helper()
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return string(b)
}

func (s *server) login(t testing.TB, c *http.Client) (csrf string) {
	t.Helper()
	r, err := c.PostForm(s.URL+"/login", url.Values{"token": {s.token}})
	if err != nil {
		t.Fatal(err)
	}
	body(t, r)
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %d", r.StatusCode)
	}
	r, err = c.Get(s.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`).FindStringSubmatch(body(t, r))
	if m == nil {
		t.Fatal("no CSRF token on the runs page")
	}
	return m[1]
}

func TestLoginCookie(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		s := newServer(t, useTLS)
		c := s.client()
		r, _ := c.Get(s.URL + "/")
		if body(t, r); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/login" {
			t.Fatalf("a page without a session: %d %s", r.StatusCode, r.Header.Get("Location"))
		}
		r, _ = c.PostForm(s.URL+"/login", url.Values{"token": {"wrong-token-wrong-token"}})
		if b := body(t, r); r.StatusCode != http.StatusUnauthorized || !strings.Contains(b, "not the daemon&#39;s token") || len(r.Cookies()) > 0 {
			t.Errorf("a wrong token: %d, cookies %v\n%s", r.StatusCode, r.Cookies(), b)
		}
		r, _ = c.PostForm(s.URL+"/login", url.Values{"token": {s.token}})
		body(t, r)
		var ck *http.Cookie
		for _, k := range r.Cookies() {
			if k.Name == "vgrid_session" {
				ck = k
			}
		}
		if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Secure != useTLS || strings.Contains(ck.Value, s.token) {
			t.Errorf("TLS %v: session cookie %+v; want HttpOnly, SameSite=Strict, Secure only under TLS, not the token", useTLS, ck)
		}
		// The API keeps the bearer token: a session cookie is not enough.
		r, _ = c.Get(s.URL + "/v1/runs")
		if body(t, r); r.StatusCode != http.StatusUnauthorized {
			t.Errorf("the API with a cookie and no bearer: %d", r.StatusCode)
		}
		if hsts := r.Header.Get("Strict-Transport-Security"); (hsts != "") != useTLS {
			t.Errorf("TLS %v: Strict-Transport-Security %q", useTLS, hsts)
		}
	}
}

func TestExpiredSessionAndLogout(t *testing.T) {
	s := newServer(t, false)
	c := s.client()
	s.login(t, c)
	s.clock.add(13 * time.Hour)
	r, _ := c.Get(s.URL + "/")
	body(t, r)
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/login?expired=1" {
		t.Fatalf("an expired session: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	r, _ = c.Get(s.URL + "/login?expired=1")
	if b := body(t, r); !strings.Contains(b, "Your session has expired") {
		t.Errorf("the login page after expiry:\n%s", b)
	}
	csrf := s.login(t, c)
	r, _ = c.PostForm(s.URL+"/logout", url.Values{"csrf": {csrf}})
	body(t, r)
	r, _ = c.Get(s.URL + "/")
	if body(t, r); r.StatusCode != http.StatusSeeOther {
		t.Errorf("after logout: %d", r.StatusCode)
	}
}

func TestCSRFAndGridErrors(t *testing.T) {
	s := newServer(t, false)
	c := s.client()
	csrf := s.login(t, c)
	grid, err := os.ReadFile("../examples/quickstart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r, _ := c.PostForm(s.URL+"/runs", url.Values{"csrf": {"forged"}, "grid": {string(grid)}})
	if b := body(t, r); r.StatusCode != http.StatusForbidden || !strings.Contains(b, "Nothing was changed") {
		t.Errorf("forged CSRF: %d\n%s", r.StatusCode, b)
	}
	// The CSRF token in the URL is not taken: logs and Referer headers keep URLs.
	r, _ = c.PostForm(s.URL+"/runs?csrf="+csrf, url.Values{"grid": {string(grid)}})
	if b := body(t, r); r.StatusCode != http.StatusForbidden {
		t.Errorf("CSRF token in the query string: %d\n%s", r.StatusCode, b)
	}
	if runs, _ := s.st.Runs(); len(runs) != 0 {
		t.Errorf("a forged form queued %d run(s)", len(runs))
	}
	for _, c2 := range []struct{ from, to, want string }{
		{"maximize: kv-cache.acceleration", "maximize: kv-cache.acceleratoin", `scenario kv-cache has no metric &#34;acceleratoin&#34;`},
		{"requests: 6", "requsts: 6", `pasted grid:\d+: .*requsts`},
	} {
		bad := strings.Replace(string(grid), c2.from, c2.to, 1)
		r, _ = c.PostForm(s.URL+"/runs", url.Values{"csrf": {csrf}, "grid": {bad}})
		b := body(t, r)
		if r.StatusCode != http.StatusBadRequest || !regexp.MustCompile(c2.want).MatchString(b) {
			t.Errorf("a grid with %q: %d; want a message matching %s\n%s", c2.to, r.StatusCode, c2.want, b)
		}
	}
	if runs, _ := s.st.Runs(); len(runs) != 0 {
		t.Errorf("a bad grid queued %d run(s)", len(runs))
	}
	r, _ = c.PostForm(s.URL+"/runs", url.Values{"csrf": {csrf}, "grid": {string(grid)}})
	body(t, r)
	if runs, _ := s.st.Runs(); r.StatusCode != http.StatusSeeOther || len(runs) != 1 || r.Header.Get("Location") != "/runs/"+runs[0].ID {
		t.Errorf("a good grid: %d %s, %d run(s)", r.StatusCode, r.Header.Get("Location"), len(runs))
	}
	// Uploaded as a file: its name is the one the messages use.
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	mw.WriteField("csrf", csrf)
	fw, _ := mw.CreateFormFile("file", "night.yaml")
	fw.Write([]byte(strings.Replace(string(grid), "requests: 6", "requsts: 6", 1)))
	mw.Close()
	r, _ = c.Post(s.URL+"/runs", mw.FormDataContentType(), &form)
	if b := body(t, r); r.StatusCode != http.StatusBadRequest || !regexp.MustCompile(`night\.yaml:\d+: .*requsts`).MatchString(b) {
		t.Errorf("an uploaded grid with an error: %d\n%s", r.StatusCode, b)
	}
	form.Reset()
	mw = multipart.NewWriter(&form)
	mw.WriteField("csrf", csrf)
	fw, _ = mw.CreateFormFile("file", "night.yaml")
	fw.Write(grid)
	mw.Close()
	r, _ = c.Post(s.URL+"/runs", mw.FormDataContentType(), &form)
	body(t, r)
	if runs, _ := s.st.Runs(); r.StatusCode != http.StatusSeeOther || len(runs) != 2 || runs[0].GridFile != "night.yaml" || r.Header.Get("Location") != "/runs/"+runs[0].ID {
		t.Errorf("an uploaded grid: %d, %d run(s)", r.StatusCode, len(runs))
	}
	// Runs come newest first, in the store and on the page.
	r, _ = c.Get(s.URL + "/")
	page := body(t, r)
	if runs, _ := s.st.Runs(); len(runs) == 2 && strings.Index(page, runs[0].ID) > strings.Index(page, runs[1].ID) {
		t.Errorf("the runs page lists %s after %s, the older", runs[0].ID, runs[1].ID)
	}
	// A logged-in user downloads the reports and the export with the cookie alone.
	if runs, _ := s.st.Runs(); len(runs) > 0 {
		for _, dl := range []struct{ q, ctype, name, has string }{
			{"kind=report&format=md", "text/markdown", ".md", "# vgrid run"},
			{"kind=report&format=html", "text/html", ".html", "<!doctype html>"},
			{"kind=report&format=csv", "text/csv", "-report.csv", "trial,candidate,status"},
			{"kind=report&format=csv&table=levels", "text/csv", "-levels.csv", "trial,candidate,repetition"},
			{"kind=export&format=json", "application/json", "-export.json", `"run":`},
			{"kind=export&format=csv", "text/csv", "-export.csv", "trial,candidate,repetition,scenario"},
		} {
			r, _ = c.Get(s.URL + "/runs/" + runs[0].ID + "/download?" + dl.q)
			b := body(t, r)
			if r.StatusCode != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), dl.ctype) || !strings.Contains(r.Header.Get("Content-Disposition"), dl.name) || !strings.Contains(b, dl.has) {
				t.Errorf("download %s: %d %s %s\n%.200s", dl.q, r.StatusCode, r.Header.Get("Content-Type"), r.Header.Get("Content-Disposition"), b)
			}
		}
		r, _ = http.Get(s.URL + "/runs/" + runs[0].ID + "/download?kind=report&format=md")
		if b := body(t, r); strings.Contains(b, "# vgrid run") {
			t.Error("a download without a session")
		}
	}
}

// Two rollbacks confirmed at once against what both reviewed: one rolls
// back, the other changes nothing and says why.
func TestTwoRollbacksAtOnce(t *testing.T) {
	s := newServer(t, false)
	c := s.client()
	csrf := s.login(t, c)
	prof := filepath.Join(t.TempDir(), "medium.yml")
	old := []byte("services: {vllm: {command: --max-num-seqs 16}}\n")
	os.WriteFile(prof, old, 0o644)
	if _, err := profiles.WriteBackup(prof, "before", time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(prof, []byte("services: {vllm: {command: --max-num-seqs 32}}\n"), 0o644)
	s.drive(t, prof)
	bs, _ := profiles.Backups(prof)
	r, _ := c.PostForm(s.URL+"/profiles/rollback", url.Values{"csrf": {csrf}, "file": {prof}, "backup": {bs[0].Path}})
	page := body(t, r)
	m := regexp.MustCompile(`name="expect" value="([0-9a-f]+)"`).FindStringSubmatch(page)
	if r.StatusCode != http.StatusOK || m == nil || !strings.Contains(page, "Yes, roll back") {
		t.Fatalf("the confirmation page: %d\n%s", r.StatusCode, page)
	}
	if got, _ := os.ReadFile(prof); !strings.Contains(string(got), "32") {
		t.Fatal("asking for confirmation changed the file")
	}
	var wg sync.WaitGroup
	codes := make([]int, 2)
	pages := make([]string, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := c.PostForm(s.URL+"/profiles/rollback", url.Values{"csrf": {csrf}, "file": {prof}, "backup": {bs[0].Path}, "expect": {m[1]}, "confirm": {"yes"}})
			if err == nil {
				codes[i], pages[i] = r.StatusCode, body(t, r)
			}
		}()
	}
	wg.Wait()
	ok, refused := 0, 0
	for i := range 2 {
		switch {
		case codes[i] == http.StatusOK && strings.Contains(pages[i], "now holds"):
			ok++
		case codes[i] == http.StatusConflict && strings.Contains(pages[i], "nothing was changed"):
			refused++
		default:
			t.Errorf("rollback %d: %d\n%s", i, codes[i], pages[i])
		}
	}
	if ok != 1 || refused != 1 {
		t.Errorf("%d rolled back, %d refused; want one each", ok, refused)
	}
	if got, _ := os.ReadFile(prof); string(got) != string(old) {
		t.Errorf("the file holds:\n%s", got)
	}
	if after, _ := profiles.Backups(prof); len(after) != 2 {
		t.Errorf("%d backups after one rollback; want the original one and one pre-rollback", len(after))
	}
}
