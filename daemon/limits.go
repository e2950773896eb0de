package daemon

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/vgrid/vgrid/orchestrator"
)

// Bounds on what a client may send or hold. The daemon runs as root on
// shared machines: nothing a request carries is read without a bound.
const (
	// MaxGrid is the largest grid file accepted (API and dashboard): a
	// larger one is refused with 413, never truncated.
	MaxGrid = orchestrator.MaxGridBytes
	// maxLogin bounds a login form (a token and a CSRF-free field or two).
	maxLogin = 4 << 10
	// maxSmall bounds every other body (JSON requests, forms).
	maxSmall = 64 << 10
	// maxForm bounds the dashboard's grid form: the grid and its fields.
	maxForm = MaxGrid + 64<<10
	// MaxConns is the number of connections the daemon holds at once; past
	// it, the oldest connection with no request under way is closed to make
	// room (a flood of idle or slow connections cannot lock users out).
	MaxConns = 512
	// loginFailures is how many failed logins (or wrong bearer tokens) a
	// client address may make per failureWindow before it is answered 429.
	loginFailures = 10
	failureWindow = time.Minute
	// maxClients bounds the failure table.
	maxClients = 10000
)

// bodyLimit is the most bytes the body of r may have, and whether it may
// be multipart.
func bodyLimit(r *http.Request) (n int64, multipart bool) {
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/runs":
		return MaxGrid, false
	case r.Method == http.MethodPost && r.URL.Path == "/runs":
		return maxForm, true // the dashboard's grid: pasted or uploaded
	case r.URL.Path == "/login":
		return maxLogin, false
	}
	return maxSmall, false
}

// limitBodies caps every request body (413 with the limit when it is
// larger) and refuses multipart bodies where no upload is expected.
func limitBodies(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, mp := bodyLimit(r)
		if r.ContentLength > n {
			tooLarge(w, r, n)
			return
		}
		if !mp && strings.HasPrefix(strings.ToLower(r.Header.Get("Content-Type")), "multipart/") {
			http.Error(w, fmt.Sprintf("%s takes no multipart upload", r.URL.Path), http.StatusUnsupportedMediaType)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, n)
		next.ServeHTTP(w, r)
	})
}

func tooLarge(w http.ResponseWriter, r *http.Request, n int64) {
	msg := fmt.Sprintf("the request body is larger than %d bytes (%s's limit); nothing was stored", n, r.URL.Path)
	if strings.HasPrefix(r.URL.Path, "/v1/") {
		jsonError(w, http.StatusRequestEntityTooLarge, msg)
		return
	}
	http.Error(w, msg, http.StatusRequestEntityTooLarge)
}

// isTooLarge reports an error of a body read past its limit.
func isTooLarge(err error) bool {
	var mb *http.MaxBytesError
	return errors.As(err, &mb)
}

// failures counts failed logins and wrong tokens per client address.
type failures struct {
	mu  sync.Mutex
	now func() time.Time
	by  map[string]*failCount
}

type failCount struct {
	n     int
	since time.Time
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// blocked reports whether the client has used up its failures in this
// window, and until when.
func (f *failures) blocked(ip string) (bool, time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.by[ip]
	if c == nil || f.now().Sub(c.since) >= failureWindow {
		return false, time.Time{}
	}
	return c.n >= loginFailures, c.since.Add(failureWindow)
}

// fail records a failure and returns how many the client made in this window.
func (f *failures) fail(ip string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	if len(f.by) >= maxClients { // forget finished windows; if none, the oldest half
		for k, c := range f.by {
			if now.Sub(c.since) >= failureWindow {
				delete(f.by, k)
			}
		}
		for k := range f.by {
			if len(f.by) < maxClients/2 {
				break
			}
			delete(f.by, k)
		}
	}
	c := f.by[ip]
	if c == nil || now.Sub(c.since) >= failureWindow {
		c = &failCount{since: now}
		f.by[ip] = c
	}
	c.n++
	return c.n
}

// connGuard holds at most max connections: when a new one comes and all
// places are taken, the oldest connection with no request under way (new:
// headers not complete, or idle between requests) is closed; if every
// one is busy, the new one is closed. Its hook follows http.Server's
// connection states.
type connGuard struct {
	net.Listener
	max int

	mu    sync.Mutex
	conns map[net.Conn]*connState
}

type connState struct {
	state http.ConnState
	since time.Time
}

func newConnGuard(ln net.Listener, max int) *connGuard {
	return &connGuard{Listener: ln, max: max, conns: map[net.Conn]*connState{}}
}

func (g *connGuard) Accept() (net.Conn, error) {
	for {
		c, err := g.Listener.Accept()
		if err != nil {
			return nil, err
		}
		g.mu.Lock()
		if len(g.conns) >= g.max {
			var victim net.Conn
			var oldest time.Time
			for vc, s := range g.conns {
				if (s.state == http.StateNew || s.state == http.StateIdle) && (victim == nil || s.since.Before(oldest)) {
					victim, oldest = vc, s.since
				}
			}
			if victim == nil {
				g.mu.Unlock()
				c.Close() // every place holds a request under way
				continue
			}
			delete(g.conns, victim)
			victim.Close()
		}
		g.conns[c] = &connState{state: http.StateNew, since: time.Now()}
		g.mu.Unlock()
		return c, nil
	}
}

// hook is the http.Server's ConnState.
func (g *connGuard) hook(c net.Conn, st http.ConnState) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	s, ok := g.conns[c]
	if !ok {
		return
	}
	switch st {
	case http.StateClosed, http.StateHijacked:
		delete(g.conns, c)
	default:
		s.state, s.since = st, time.Now()
	}
}

// open is the number of connections held.
func (g *connGuard) open() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.conns)
}

// httpErrorLog sends net/http's own messages (TLS handshakes, bad
// requests) to the daemon's log, one bounded line each.
func httpErrorLog(l zerolog.Logger) *log.Logger {
	return log.New(logLine{l}, "", 0)
}

type logLine struct{ l zerolog.Logger }

func (w logLine) Write(p []byte) (int, error) {
	w.l.Debug().Str("http", excerpt(string(p), 300)).Msg("http server")
	return len(p), nil
}

// excerpt bounds a value that goes to a log or an answer: its first n
// bytes and how long it was.
func excerpt(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("%s... (%d bytes)", s[:n], len(s))
}

// allowedHost reports whether a request's Host names this daemon: an IP
// address, localhost, this machine's name, or the --listen host. Another
// name on an unauthenticated route is a DNS-rebinding page in a browser.
func (d *Daemon) allowedHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if host == "" || net.ParseIP(host) != nil || host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	if lh, _, err := net.SplitHostPort(d.cfg.Listen); err == nil && strings.EqualFold(lh, host) {
		return true
	}
	for _, h := range d.cfg.Hosts {
		if strings.EqualFold(strings.TrimSuffix(h, "."), host) {
			return true
		}
	}
	name, _ := os.Hostname()
	name = strings.ToLower(name)
	return name != "" && (host == name || strings.HasPrefix(host, name+"."))
}

// guard is the daemon's front door: bounded bodies, the Host check on
// routes without a token, HSTS under TLS, and failed logins or tokens
// counted per client (429 past loginFailures a minute, each logged).
func (d *Daemon) guardHandler(next http.Handler) http.Handler {
	limited := limitBodies(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			w.Header().Set("Strict-Transport-Security", "max-age=31536000")
		}
		api := strings.HasPrefix(r.URL.Path, "/v1/") || r.URL.Path == "/metrics"
		if !api && !d.allowedHost(r.Host) {
			http.Error(w, fmt.Sprintf("this daemon does not answer for host %q: open it by its address or this machine's name, or start it with --host NAME to answer for that name", excerpt(r.Host, 100)), http.StatusMisdirectedRequest)
			return
		}
		ip := clientIP(r)
		if blocked, until := d.failures.blocked(ip); blocked && (api || r.URL.Path == "/login") {
			w.Header().Set("Retry-After", fmt.Sprint(int(time.Until(until).Seconds())+1))
			http.Error(w, fmt.Sprintf("too many failed logins or wrong tokens from %s; try again after %s", ip, until.Format(time.TimeOnly)), http.StatusTooManyRequests)
			return
		}
		sw := &statusWriter{ResponseWriter: w}
		limited.ServeHTTP(sw, r)
		if sw.code == http.StatusUnauthorized {
			n := d.failures.fail(ip)
			d.cfg.Log.Warn().Str("client", ip).Str("path", excerpt(r.URL.Path, 100)).Int("failures", n).Msg("wrong token or login")
		}
	})
}

// statusWriter keeps the status code written.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
