// Package web is the dashboard `vgrid serve` serves at /: the runs, a
// run live over Server-Sent Events, its charts (the report's, package
// chart), two runs side by side, profile backups with a diff and a
// confirmed rollback, and a form that starts a run from a grid file.
//
// Pages are rendered on the server; one small script (assets/app.js)
// follows a run's events and swaps in the updated part of the page.
// Every asset is embedded: nothing is fetched from elsewhere.
//
// Authentication: the daemon's bearer token is exchanged once, on the
// login page, for a session cookie (HttpOnly, SameSite=Strict, Secure
// under TLS); every form that changes something carries the session's
// CSRF token. Sessions live in memory: a restart of the daemon logs
// everyone out. The API under /v1 keeps bearer authentication.
//
// May import: orchestrator, report, profiles, benchmark. Stored runs are
// read through its Backend, never from bbolt.
package web

import (
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"sync"
	"time"

	"github.com/vgrid/vgrid/benchmark"
	"github.com/vgrid/vgrid/orchestrator"
	"github.com/vgrid/vgrid/profiles"
	"github.com/vgrid/vgrid/report"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// Backend is what the dashboard asks of the daemon.
type Backend interface {
	// Submit queues a run of a grid file (name names it in messages,
	// dir resolves its relative paths).
	Submit(src []byte, name, dir string) (*orchestrator.Run, error)
	// Cancel cancels a queued or running run.
	Cancel(id string) (*orchestrator.Run, error)
	// ValidToken reports whether tok is the daemon's token.
	ValidToken(tok string) bool
	// TokenFile is where the daemon's token is, for the login page.
	TokenFile() string
	// Runs, GetRun, Trials and Reports read the store (an unknown run is
	// an error that errors.Is fs.ErrNotExist).
	Runs() ([]*orchestrator.Run, error)
	GetRun(id string) (*orchestrator.Run, error)
	Trials(runID string) ([]*orchestrator.Trial, error)
	Reports(runID string, seq int) ([]*benchmark.Report, error)
	// ServeEvents streams a run's events as Server-Sent Events.
	ServeEvents(w http.ResponseWriter, r *http.Request, id string)
	// Download writes a run's report or export (attach: as a file).
	Download(w http.ResponseWriter, r *http.Request, id string, o report.Output, attach bool)
	// ProfileFiles lists the profiles the store's runs drove.
	ProfileFiles() ([]string, error)
	// Profile reads one of them: content, digest and backups.
	Profile(file string) (cur []byte, digest string, bs []profiles.Backup, err error)
	// Rollback restores a backup of one of them if it still has the
	// reviewed content (expect, Profile's digest).
	Rollback(file, backup, expect string) (restored profiles.Backup, saved string, err error)
}

// SessionTTL is how long a login lasts.
const SessionTTL = 12 * time.Hour

// Dashboard is the web UI.
type Dashboard struct {
	b    Backend
	dir  string // where submitted grids' relative paths resolve
	now  func() time.Time
	tmpl *template.Template
	mux  *http.ServeMux

	mu       sync.Mutex
	sessions map[string]*session

	rows   report.RowCache // ended trials' measurements
	warmMu sync.Mutex
	ended  map[string]int // by run: how many trials had ended when Follow last warmed it
}

type session struct {
	csrf    string
	expires time.Time
}

// New builds the dashboard over the daemon's backend and store; dir
// resolves relative paths of grids submitted from the browser.
func New(b Backend, dir string, now func() time.Time) *Dashboard {
	d := &Dashboard{b: b, dir: dir, now: now, sessions: map[string]*session{}, ended: map[string]int{}}
	d.tmpl = template.Must(template.New("").Funcs(funcs).ParseFS(templateFS, "templates/*.html"))
	assets, _ := fs.Sub(assetFS, "assets")
	m := http.NewServeMux()
	m.Handle("GET /assets/", http.StripPrefix("/assets/", http.FileServerFS(assets)))
	m.HandleFunc("GET /login", d.loginPage)
	m.HandleFunc("POST /login", d.login)
	m.Handle("POST /logout", d.auth(d.logout))
	m.Handle("GET /{$}", d.auth(d.runsPage))
	m.Handle("POST /runs", d.auth(d.submit))
	m.Handle("GET /runs/{id}", d.auth(d.runPage))
	m.Handle("GET /runs/{id}/live", d.auth(d.runLive))
	m.Handle("GET /runs/{id}/events", d.auth(d.runEvents))
	m.Handle("GET /runs/{id}/download", d.auth(d.download))
	m.Handle("POST /runs/{id}/cancel", d.auth(d.cancel))
	m.Handle("GET /compare", d.auth(d.comparePage))
	m.Handle("GET /profiles", d.auth(d.profilesPage))
	m.Handle("POST /profiles/rollback", d.auth(d.rollbackStep))
	d.mux = m
	go d.warm()
	return d
}

// warm computes the ended trials' measurements of the stored runs, newest
// first, so that the first view of a large run after the daemon started
// is served from the cache.
func (d *Dashboard) warm() {
	runs, err := d.b.Runs()
	if err != nil {
		return
	}
	for i := len(runs) - 1; i >= 0; i-- {
		d.runView(runs[i].ID)
	}
}

// Follow computes the measurements of a running run's trials that ended
// since its last call, so that the first view of a large run that nobody
// watched while it ran is served from the cache too. The daemon calls it
// for its running runs every few seconds; it is cheap when nothing ended.
func (d *Dashboard) Follow(runID string) {
	trials, err := d.b.Trials(runID)
	if err != nil {
		return
	}
	n := 0
	for _, t := range trials {
		if t.Phase.Final() {
			n++
		}
	}
	d.warmMu.Lock()
	defer d.warmMu.Unlock()
	if d.ended[runID] == n {
		return
	}
	d.ended[runID] = n
	d.runView(runID)
}

// Cached is how many of the run's ended trials have their measurements
// cached (a later view reads no samples for them).
func (d *Dashboard) Cached(runID string) int { return d.rows.Count(runID) }

func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	d.mux.ServeHTTP(w, r)
}

const cookieName = "vgrid_session"

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// handler is a page of a logged-in user; s is the session.
type handler func(w http.ResponseWriter, r *http.Request, s *session)

// auth admits requests with a live session; POSTs must also carry its
// CSRF token. Others go to the login page (with why).
func (d *Dashboard) auth(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(cookieName)
		if err != nil {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		d.mu.Lock()
		s, ok := d.sessions[c.Value]
		if ok && !d.now().Before(s.expires) {
			delete(d.sessions, c.Value)
			ok = false
			s = nil
		}
		d.mu.Unlock()
		if !ok {
			http.Redirect(w, r, "/login?expired=1", http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost {
			// Memory holds at most 1 MiB of a form; the daemon bounds the body.
			if err := r.ParseMultipartForm(1 << 20); err != nil && err != http.ErrNotMultipart {
				var mb *http.MaxBytesError
				if errors.As(err, &mb) {
					d.fail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("The form is larger than %d bytes; nothing was changed.", mb.Limit))
					return
				}
				d.fail(w, http.StatusBadRequest, "The form could not be read: "+err.Error())
				return
			}
			// The CSRF token is taken from the form's body or a header, never
			// from the URL (where logs and Referer headers would keep it).
			csrf := r.PostFormValue("csrf")
			if csrf == "" {
				csrf = r.Header.Get("X-CSRF-Token")
			}
			if subtle.ConstantTimeCompare([]byte(csrf), []byte(s.csrf)) != 1 {
				d.fail(w, http.StatusForbidden, "This form's security token does not match your session (the page is older than your login, or another site sent the form). Nothing was changed: reload the page and try again.")
				return
			}
		}
		h(w, r, s)
	})
}

func (d *Dashboard) loginPage(w http.ResponseWriter, r *http.Request) {
	msg := ""
	switch {
	case r.URL.Query().Get("expired") != "":
		msg = "Your session has expired or the daemon restarted: log in again."
	case r.URL.Query().Get("out") != "":
		msg = "You are logged out."
	}
	d.render(w, http.StatusOK, "login", map[string]any{"Message": msg, "TokenFile": d.b.TokenFile()})
}

func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	if !d.b.ValidToken(r.PostFormValue("token")) {
		d.render(w, http.StatusUnauthorized, "login", map[string]any{"Error": "That is not the daemon's token: the token is the content of the token file.", "TokenFile": d.b.TokenFile()})
		return
	}
	id := randomHex(32)
	d.mu.Lock()
	for k, s := range d.sessions { // forget expired sessions
		if !d.now().Before(s.expires) {
			delete(d.sessions, k)
		}
	}
	d.sessions[id] = &session{csrf: randomHex(32), expires: d.now().Add(SessionTTL)}
	d.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil, MaxAge: int(SessionTTL.Seconds())})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request, _ *session) {
	if c, err := r.Cookie(cookieName); err == nil {
		d.mu.Lock()
		delete(d.sessions, c.Value)
		d.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: -1})
	http.Redirect(w, r, "/login?out=1", http.StatusSeeOther)
}

// render executes a page template; a template error is the dashboard's
// bug, said plainly.
func (d *Dashboard) render(w http.ResponseWriter, code int, name string, data map[string]any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	if err := d.tmpl.ExecuteTemplate(w, name, data); err != nil {
		w.Write([]byte("<p>page error: " + template.HTMLEscapeString(err.Error()) + "</p>"))
	}
}

// fail shows a message page.
func (d *Dashboard) fail(w http.ResponseWriter, code int, msg string) {
	d.render(w, code, "message", map[string]any{"Title": http.StatusText(code), "Message": msg})
}
