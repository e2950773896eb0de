package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vgrid/vgrid/benchmark"
	"github.com/vgrid/vgrid/orchestrator"
	"github.com/vgrid/vgrid/profiles"
	"github.com/vgrid/vgrid/report"
	"github.com/vgrid/vgrid/store"
	"github.com/vgrid/vgrid/web"
)

// Handler is the API and the dashboard. The API (/v1, /metrics) needs the
// bearer token, /healthz nothing; every other path is the dashboard
// (package web), with its own login and session cookie.
func (d *Daemon) Handler() http.Handler {
	dir, _ := os.Getwd()
	dash := web.New(d, dir, d.cfg.Now)
	d.mu.Lock()
	d.dash = dash
	d.mu.Unlock()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", d.healthz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.registry(), promhttp.HandlerOpts{}))
	mux.HandleFunc("POST /v1/runs", d.submit)
	mux.HandleFunc("GET /v1/runs", d.list)
	mux.HandleFunc("GET /v1/runs/{id}", d.show)
	mux.HandleFunc("GET /v1/runs/{id}/report", d.report)
	mux.HandleFunc("GET /v1/runs/{id}/export", d.export)
	mux.HandleFunc("DELETE /v1/runs/{id}", d.deleteRun)
	mux.HandleFunc("POST /v1/runs/{id}/cancel", d.cancel)
	mux.HandleFunc("GET /v1/runs/{id}/events", d.events)
	mux.HandleFunc("GET /v1/profiles", d.profilesList)
	mux.HandleFunc("GET /v1/profiles/backups", d.backups)
	mux.HandleFunc("POST /v1/profiles/rollback", d.rollback)
	return d.guardHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/v1/") && r.URL.Path != "/metrics" && r.URL.Path != "/healthz" {
			dash.ServeHTTP(w, r)
			return
		}
		if r.URL.Path != "/healthz" && !d.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="vgrid"`)
			jsonError(w, http.StatusUnauthorized, "missing or wrong bearer token (Authorization: Bearer <the token file's content>)")
			return
		}
		mux.ServeHTTP(w, r)
	}))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func jsonError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func (d *Daemon) storeError(w http.ResponseWriter, err error) {
	if errors.Is(err, store.ErrNotFound) {
		jsonError(w, http.StatusNotFound, err.Error())
		return
	}
	jsonError(w, http.StatusInternalServerError, err.Error())
}

// healthz answers "ok" to anyone; the version and the engine it drives
// only with the token.
func (d *Daemon) healthz(w http.ResponseWriter, r *http.Request) {
	out := map[string]string{"status": "ok"}
	if d.authorized(r) {
		out["version"] = d.cfg.Version
		if d.cfg.Engine != nil {
			out["docker"] = d.cfg.Engine(r.Context())
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// submit takes a grid file as the body (YAML or JSON). ?dir= resolves its
// relative paths (default: the daemon's working directory); ?name= names it.
func (d *Daemon) submit(w http.ResponseWriter, r *http.Request) {
	src, err := io.ReadAll(r.Body) // bounded by MaxGrid (guardHandler)
	if isTooLarge(err) {
		tooLarge(w, r, MaxGrid)
		return
	}
	if err != nil {
		jsonError(w, http.StatusBadRequest, "read body: "+err.Error())
		return
	}
	dir := r.URL.Query().Get("dir")
	if dir == "" {
		dir, _ = os.Getwd()
	}
	name := r.URL.Query().Get("name")
	if name == "" {
		name = "grid"
	}
	run, err := d.Submit(src, name, dir)
	switch {
	case errors.Is(err, errDraining):
		jsonError(w, http.StatusServiceUnavailable, err.Error())
	case err != nil:
		jsonError(w, http.StatusBadRequest, err.Error())
	default:
		writeJSON(w, http.StatusAccepted, map[string]string{"id": run.ID, "state": run.State.String(), "target": run.Target})
	}
}

// runSummary is a run in lists.
type runSummary struct {
	ID       string    `json:"id"`
	State    string    `json:"state"`
	Grid     string    `json:"grid"`
	Target   string    `json:"target"`
	Created  time.Time `json:"created"`
	Champion string    `json:"champion,omitempty"`
}

func summary(r *orchestrator.Run) runSummary {
	s := runSummary{ID: r.ID, State: r.State.String(), Grid: r.Grid.Name, Target: r.Target, Created: r.Created}
	if r.Champion != nil && r.Champion.Champion >= 0 {
		s.Champion = r.Champion.Name
	}
	return s
}

func (d *Daemon) list(w http.ResponseWriter, r *http.Request) {
	runs, err := d.cfg.Store.Runs()
	if err != nil {
		d.storeError(w, err)
		return
	}
	out := []runSummary{}
	for _, run := range runs {
		out = append(out, summary(run))
	}
	writeJSON(w, http.StatusOK, out)
}

// trialView is a trial as the API shows it.
type trialView struct {
	*orchestrator.Trial
	PhaseName string `json:"phase_name"`
}

// runAndTrials loads the run named in the path; on error it has answered.
func (d *Daemon) runAndTrials(w http.ResponseWriter, r *http.Request) (*orchestrator.Run, []*orchestrator.Trial, bool) {
	run, err := d.cfg.Store.GetRun(r.PathValue("id"))
	if err != nil {
		d.storeError(w, err)
		return nil, nil, false
	}
	trials, err := d.cfg.Store.Trials(run.ID)
	if err != nil {
		d.storeError(w, err)
		return nil, nil, false
	}
	return run, trials, true
}

func (d *Daemon) show(w http.ResponseWriter, r *http.Request) {
	run, trials, ok := d.runAndTrials(w, r)
	if !ok {
		return
	}
	views := []trialView{}
	for _, t := range trials {
		views = append(views, trialView{Trial: t, PhaseName: t.Phase.String()})
	}
	reports, err := d.reports(run, trials)
	if err != nil {
		d.storeError(w, err)
		return
	}
	// Each measured trial's objective with its 95% interval (null when
	// not known), as the report computes it.
	type objective struct {
		Value *float64 `json:"value"`
		Lo    *float64 `json:"ci_lo"`
		Hi    *float64 `json:"ci_hi"`
	}
	fin := func(v float64) *float64 {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil
		}
		return &v
	}
	objectives := map[int]objective{}
	for _, row := range report.BuildReport(run, trials, reports).Rows {
		if o := (objective{fin(row.ObjectiveValue), fin(row.ObjectiveLo), fin(row.ObjectiveHi)}); o.Value != nil {
			objectives[row.Seq] = o
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"run": run, "state": run.State.String(), "trials": views, "champion": run.Champion, "objective": objectives})
}

func (d *Daemon) report(w http.ResponseWriter, r *http.Request) { d.write(w, r, "report") }

func (d *Daemon) export(w http.ResponseWriter, r *http.Request) { d.write(w, r, "export") }

// write answers a run's report or export in the format asked.
func (d *Daemon) write(w http.ResponseWriter, r *http.Request, kind string) {
	q := r.URL.Query()
	o, err := report.ParseOutput(kind, q.Get("format"), q.Get("table"))
	if err != nil {
		jsonError(w, http.StatusBadRequest, err.Error())
		return
	}
	d.Download(w, r, r.PathValue("id"), o, false)
}

// Download writes run id's report or export (the API's, and the
// dashboard's downloads, which attach it as a file).
func (d *Daemon) Download(w http.ResponseWriter, r *http.Request, id string, o report.Output, attach bool) {
	run, err := d.cfg.Store.GetRun(id)
	if err != nil {
		d.storeError(w, err)
		return
	}
	trials, err := d.cfg.Store.Trials(run.ID)
	if err != nil {
		d.storeError(w, err)
		return
	}
	reports, err := d.reports(run, trials)
	if err != nil {
		d.storeError(w, err)
		return
	}
	w.Header().Set("Content-Type", o.ContentType())
	if attach {
		w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", o.FileName(run.ID)))
	}
	if err := report.Write(w, o, run, trials, reports); err != nil {
		d.cfg.Log.Error().Err(err).Str("run_id", run.ID).Msg("write " + o.Kind)
	}
}

// deleteRun removes a finished run (vgrid runs delete).
func (d *Daemon) deleteRun(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	run, err := d.cfg.Store.GetRun(id)
	if err != nil {
		d.storeError(w, err)
		return
	}
	d.mu.Lock()
	a, running := d.running[run.Target]
	busy := running && a.runID == run.ID
	d.mu.Unlock()
	if busy || run.State == orchestrator.RunQueued {
		jsonError(w, http.StatusConflict, fmt.Sprintf("run %s is %s; cancel it first (vgrid runs cancel %s)", run.ID, run.State, run.ID))
		return
	}
	if err := d.cfg.Store.DeleteRun(run.ID); err != nil {
		jsonError(w, http.StatusConflict, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"deleted": run.ID})
}

func (d *Daemon) reports(run *orchestrator.Run, trials []*orchestrator.Trial) (map[int][]*benchmark.Report, error) {
	reports := map[int][]*benchmark.Report{}
	for _, t := range trials {
		rs, err := d.cfg.Store.Reports(run.ID, t.Seq)
		if err != nil {
			return nil, err
		}
		reports[t.Seq] = rs
	}
	return reports, nil
}

func (d *Daemon) cancel(w http.ResponseWriter, r *http.Request) {
	run, err := d.Cancel(r.PathValue("id"))
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			d.storeError(w, err)
			return
		}
		jsonError(w, http.StatusConflict, err.Error())
		return
	}
	// 202 either way: a queued run is cancelled now; a running one is
	// marked (final) and its original configuration is being restored.
	writeJSON(w, http.StatusAccepted, map[string]any{"id": run.ID, "state": run.State.String(), "cancelled": run.State == orchestrator.RunCancelled,
		"cancel_requested": run.CancelRequested})
}

// events streams a run's events as Server-Sent Events; each has an id, so
// a client reconnects with Last-Event-ID and misses nothing. The stream
// ends once the run is final and every event was sent.
func (d *Daemon) events(w http.ResponseWriter, r *http.Request) {
	d.ServeEvents(w, r, r.PathValue("id"))
}

// maxStreams bounds the live event streams (API and dashboard) served at
// once; streamWrite bounds each write to a client that does not read.
const (
	maxStreams  = 256
	streamWrite = 30 * time.Second
)

// ServeEvents streams run id's events (the API's and the dashboard's). It
// reads the store when the daemon's hub says the run has news (or every
// few seconds), never on a timer per client; a client that does not read
// for streamWrite is dropped.
func (d *Daemon) ServeEvents(w http.ResponseWriter, r *http.Request, id string) {
	run, err := d.cfg.Store.GetRun(id)
	if err != nil {
		d.storeError(w, err)
		return
	}
	if d.streams.Add(1) > maxStreams {
		d.streams.Add(-1)
		jsonError(w, http.StatusServiceUnavailable, fmt.Sprintf("%d live event streams are open, the most this daemon serves; close one, or poll GET /v1/runs/%s", maxStreams, run.ID))
		return
	}
	defer d.streams.Add(-1)
	var since uint64
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		since, _ = strconv.ParseUint(v, 10, 64)
	}
	rc := http.NewResponseController(w)
	send := func(format string, args ...any) bool {
		rc.SetWriteDeadline(time.Now().Add(streamWrite))
		if _, err := fmt.Fprintf(w, format, args...); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if !send(": %s\n\n", run.ID) {
		return
	}
	poll := time.NewTicker(5 * time.Second) // in case a change came from elsewhere
	defer poll.Stop()
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		news := d.hub.wait(run.ID) // taken before the read: nothing is missed
		seqs, evs, err := d.cfg.Store.Events(run.ID, since)
		if err != nil {
			return
		}
		for i, e := range evs {
			b, _ := json.Marshal(e)
			if !send("id: %d\nevent: %s\ndata: %s\n\n", seqs[i], e.Kind, b) {
				return
			}
			since = seqs[i]
		}
		cur, err := d.cfg.Store.GetRun(run.ID)
		if err == nil && cur.State.Final() && len(evs) == 0 {
			send("event: end\ndata: {\"state\":%q}\n\n", cur.State)
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-keepalive.C:
			if !send(": keep-alive\n\n") {
				return
			}
		case <-news:
		case <-poll.C:
		}
	}
}

// profilesList lists the profiles the store's runs drove.
func (d *Daemon) profilesList(w http.ResponseWriter, r *http.Request) {
	files, err := d.ProfileFiles()
	if err != nil {
		d.storeError(w, err)
		return
	}
	if files == nil {
		files = []string{}
	}
	writeJSON(w, http.StatusOK, files)
}

// backups shows a profile a run drove: its digest and its backups.
func (d *Daemon) backups(w http.ResponseWriter, r *http.Request) {
	file := r.URL.Query().Get("file")
	_, digest, bs, err := d.Profile(file)
	if err != nil {
		jsonError(w, http.StatusBadRequest, err.Error())
		return
	}
	if bs == nil {
		bs = []profiles.Backup{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"file": file, "sha256": digest, "backups": bs})
}

// rollback restores a backup through the daemon's one rollback.
func (d *Daemon) rollback(w http.ResponseWriter, r *http.Request) {
	var req struct {
		File   string `json:"file"`
		To     string `json:"to"`
		Expect string `json:"expect"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.File == "" {
		if isTooLarge(err) {
			tooLarge(w, r, maxSmall)
			return
		}
		jsonError(w, http.StatusBadRequest, `want {"file": PATH, "to": BACKUP|"latest", "expect": SHA256 of the current file (GET /v1/profiles/backups?file=PATH)}`)
		return
	}
	restored, saved, err := d.Rollback(req.File, req.To, req.Expect)
	switch {
	case errors.Is(err, ErrRollbackConflict):
		jsonError(w, http.StatusConflict, err.Error())
	case err != nil:
		jsonError(w, http.StatusBadRequest, err.Error())
	default:
		writeJSON(w, http.StatusOK, map[string]string{"restored": restored.Path, "previous_saved_as": saved})
	}
}
