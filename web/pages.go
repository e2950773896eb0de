package web

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/vgrid/vgrid/benchmark"
	"github.com/vgrid/vgrid/orchestrator"
	"github.com/vgrid/vgrid/profiles"
	"github.com/vgrid/vgrid/report"
)

var funcs = template.FuncMap{
	"num": func(v float64, prec int) string {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return "–"
		}
		return fmt.Sprintf("%.*f", prec, v)
	},
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "–"
		}
		return t.Local().Format("2006-01-02 15:04:05")
	},
	"secs": func(d time.Duration) string {
		if d <= 0 {
			return "–"
		}
		return d.Round(100 * time.Millisecond).String()
	},
}

// runRow is a run in the list.
type runRow struct {
	Run      *orchestrator.Run
	Strategy string
	Done     int // started trials that ended
	Skipped  int // never booted
	Planned  string
	ETA      time.Duration
	Started  time.Time
	Finished time.Time
	Champion string
}

// progress counts a run's ended trials, what it plans, and estimates the
// time left from the trials that ended (running ones count as half done).
func progress(r *orchestrator.Run, trials []*orchestrator.Trial, now time.Time) runRow {
	row := runRow{Run: r, Strategy: r.Grid.Search.Strategy}
	if row.Strategy == "" {
		row.Strategy = "grid"
	}
	tl := orchestrator.CountTrials(r, trials, now)
	row.Done, row.Planned, row.ETA, row.Skipped = tl.Ended(), fmt.Sprint(tl.Planned), tl.ETA, tl.Skipped
	for _, t := range trials {
		if len(t.Phases) > 0 && (row.Started.IsZero() || t.Phases[0].At.Before(row.Started)) {
			row.Started = t.Phases[0].At
		}
	}
	if r.State.Final() {
		row.Finished = r.Updated
	}
	if r.Champion != nil && r.Champion.Champion >= 0 {
		row.Champion = r.Champion.Name
	}
	return row
}

func (d *Dashboard) page(w http.ResponseWriter, code int, name string, s *session, data map[string]any) {
	data["CSRF"] = s.csrf
	d.render(w, code, name, data)
}

func (d *Dashboard) runRows() ([]runRow, error) {
	runs, err := d.b.Runs()
	if err != nil {
		return nil, err
	}
	var rows []runRow
	for _, r := range runs { // the store lists them newest first
		trials, err := d.b.Trials(r.ID)
		if err != nil {
			return nil, err
		}
		rows = append(rows, progress(r, trials, d.now()))
	}
	return rows, nil
}

func (d *Dashboard) runsPage(w http.ResponseWriter, r *http.Request, s *session) {
	rows, err := d.runRows()
	if err != nil {
		d.fail(w, http.StatusInternalServerError, "The store could not be read: "+err.Error())
		return
	}
	d.page(w, http.StatusOK, "runs", s, map[string]any{"Runs": rows, "Dir": d.dir})
}

// submit starts a run from a pasted or uploaded grid file; its errors
// are shown as `vgrid run` prints them (file:line: what and how to fix).
func (d *Dashboard) submit(w http.ResponseWriter, r *http.Request, s *session) {
	src := []byte(r.FormValue("grid"))
	name := "pasted grid"
	if f, h, err := r.FormFile("file"); err == nil {
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, orchestrator.MaxGridBytes+1))
		if err != nil {
			d.fail(w, http.StatusBadRequest, "The uploaded file could not be read: "+err.Error())
			return
		}
		if len(b) > orchestrator.MaxGridBytes {
			d.fail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("%s is larger than a grid file may be (%d bytes); nothing was started.", filepath.Base(h.Filename), orchestrator.MaxGridBytes))
			return
		}
		if len(b) > 0 {
			src, name = b, filepath.Base(h.Filename)
		}
	}
	// A browser sends a textarea's lines with CRLF: the grid is stored
	// with the line breaks it was written with.
	src = bytes.ReplaceAll(src, []byte("\r\n"), []byte("\n"))
	if strings.TrimSpace(string(src)) == "" {
		d.showSubmitError(w, s, string(src), errors.New("no grid: paste a grid file or choose one to upload"))
		return
	}
	run, err := d.b.Submit(src, name, d.dir)
	if err != nil {
		d.showSubmitError(w, s, string(src), err)
		return
	}
	http.Redirect(w, r, "/runs/"+run.ID, http.StatusSeeOther)
}

func (d *Dashboard) showSubmitError(w http.ResponseWriter, s *session, src string, err error) {
	rows, _ := d.runRows()
	d.page(w, http.StatusBadRequest, "runs", s, map[string]any{"Runs": rows, "SubmitError": err.Error(), "Grid": src, "Dir": d.dir})
}

// runView is everything a run's page shows.
type runView struct {
	Row      runRow
	Report   *report.ReportData
	Trials   []trialView
	Charts   []report.Chart
	Apart    []trialView // failed, skipped, pruned: listed, not drawn
	Search   string
	SimScale string // the simulator's time scale, when the target sets one
	Live     bool
	Rendered time.Time
}

type trialView struct {
	*orchestrator.Trial
	Elapsed   time.Duration
	Reason    string
	Objective string // its value with the 95% interval, "-" when not measured
}

func (d *Dashboard) runView(id string) (*runView, error) {
	run, err := d.b.GetRun(id)
	if err != nil {
		return nil, err
	}
	trials, err := d.b.Trials(run.ID)
	if err != nil {
		return nil, err
	}
	// Ended trials' measurements come from the cache once computed: a
	// live page of hundreds of trials is redrawn after every event.
	measured := map[int]bool{}
	for _, t := range trials { // as the HTML report: pruned trials keep what they measured
		measured[t.Seq] = t.Phase == orchestrator.PhaseDone || t.Phase == orchestrator.PhasePruned
	}
	rep, err := report.BuildReportCached(run, trials, func(seq int) ([]*benchmark.Report, error) {
		if !measured[seq] {
			return nil, nil
		}
		return d.b.Reports(run.ID, seq)
	}, &d.rows)
	if err != nil {
		return nil, err
	}
	v := &runView{Row: progress(run, trials, d.now()), Report: rep, Charts: rep.Charts(), Search: run.SearchText(trials), Live: !run.State.Final(), Rendered: d.now(),
		SimScale: run.Grid.Target.Env["VLLM_SIM_TIME_SCALE"]}
	objective := map[int]string{}
	for _, row := range rep.Rows {
		objective[row.Seq] = row.ObjectiveText()
		if row.Precision != nil {
			objective[row.Seq] += " · precision " + row.PrecisionText()
		}
	}
	for _, t := range trials {
		tv := trialView{Trial: t, Objective: objective[t.Seq]}
		if len(t.Phases) > 0 {
			end := d.now()
			if t.Phase.Final() {
				end = t.Phases[len(t.Phases)-1].At
			}
			tv.Elapsed = end.Sub(t.Phases[0].At)
		}
		if t.Failure != nil {
			tv.Reason = t.Failure.Reason.String()
		}
		v.Trials = append(v.Trials, tv)
		if t.Phase.Final() && !measured[t.Seq] {
			v.Apart = append(v.Apart, tv)
		}
	}
	return v, nil
}

func (d *Dashboard) storeFail(w http.ResponseWriter, err error) {
	if errors.Is(err, fs.ErrNotExist) {
		d.fail(w, http.StatusNotFound, err.Error())
		return
	}
	d.fail(w, http.StatusInternalServerError, "The store could not be read: "+err.Error())
}

func (d *Dashboard) runPage(w http.ResponseWriter, r *http.Request, s *session) {
	v, err := d.runView(r.PathValue("id"))
	if err != nil {
		d.storeFail(w, err)
		return
	}
	d.page(w, http.StatusOK, "run", s, map[string]any{"V": v})
}

// runLive is the part of a run's page that changes, for the script to
// swap in after each event.
func (d *Dashboard) runLive(w http.ResponseWriter, r *http.Request, s *session) {
	v, err := d.runView(r.PathValue("id"))
	if err != nil {
		d.storeFail(w, err)
		return
	}
	d.page(w, http.StatusOK, "live", s, map[string]any{"V": v})
}

func (d *Dashboard) runEvents(w http.ResponseWriter, r *http.Request, _ *session) {
	d.b.ServeEvents(w, r, r.PathValue("id"))
}

// cancel asks for confirmation (what a cancel does), then cancels.
func (d *Dashboard) cancel(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	if r.PostFormValue("confirm") != "yes" {
		run, err := d.b.GetRun(id)
		if err != nil {
			d.storeFail(w, err)
			return
		}
		d.page(w, http.StatusOK, "confirm-cancel", s, map[string]any{"Run": run})
		return
	}
	if _, err := d.b.Cancel(id); err != nil {
		d.fail(w, http.StatusConflict, "The run was not cancelled: "+err.Error())
		return
	}
	http.Redirect(w, r, "/runs/"+id, http.StatusSeeOther)
}

// compareRow is one candidate measured in both runs.
type compareRow struct {
	Name string
	A, B report.Row
}

func (d *Dashboard) comparePage(w http.ResponseWriter, r *http.Request, s *session) {
	rows, err := d.runRows()
	if err != nil {
		d.fail(w, http.StatusInternalServerError, "The store could not be read: "+err.Error())
		return
	}
	data := map[string]any{"Runs": rows}
	a, b := r.URL.Query().Get("a"), r.URL.Query().Get("b")
	if a != "" && b != "" {
		va, err := d.runView(a)
		if err != nil {
			d.storeFail(w, err)
			return
		}
		vb, err := d.runView(b)
		if err != nil {
			d.storeFail(w, err)
			return
		}
		byName := map[string]report.Row{}
		for _, row := range vb.Report.Rows {
			byName[row.Name] = row
		}
		var cmp []compareRow
		var onlyA []string
		for _, row := range va.Report.Rows {
			if other, ok := byName[row.Name]; ok {
				cmp = append(cmp, compareRow{Name: row.Name, A: row, B: other})
				delete(byName, row.Name)
			} else {
				onlyA = append(onlyA, row.Name)
			}
		}
		var onlyB []string
		for n := range byName {
			onlyB = append(onlyB, n)
		}
		sort.Strings(onlyB)
		data["A"], data["B"], data["Rows"], data["OnlyA"], data["OnlyB"] = va, vb, cmp, onlyA, onlyB
		data["Metric"] = va.Report.Run.Grid.Objective.Maximize + va.Report.Run.Grid.Objective.Minimize
		if vb.Report.Run.Grid.Benchmark.Settings().Describe() != va.Report.Run.Grid.Benchmark.Settings().Describe() {
			data["SettingsDiffer"] = true
		}
	}
	d.page(w, http.StatusOK, "compare", s, data)
}

func (d *Dashboard) profilesPage(w http.ResponseWriter, r *http.Request, s *session) {
	files, _ := d.b.ProfileFiles()
	data := map[string]any{"Files": files}
	file := r.URL.Query().Get("file")
	if file != "" {
		data["File"] = file
		cur, digest, bs, err := d.b.Profile(file)
		if err != nil {
			data["Error"] = err.Error()
			d.page(w, http.StatusBadRequest, "profiles", s, data)
			return
		}
		data["Backups"] = bs
		if pick := r.URL.Query().Get("backup"); pick != "" {
			i := slices.IndexFunc(bs, func(b profiles.Backup) bool { return b.Path == pick })
			if i < 0 {
				data["Error"] = "no such backup of " + file
				d.page(w, http.StatusNotFound, "profiles", s, data)
				return
			}
			old, err := os.ReadFile(bs[i].Path)
			if err != nil {
				data["Error"] = err.Error()
				d.page(w, http.StatusInternalServerError, "profiles", s, data)
				return
			}
			data["Backup"] = bs[i]
			data["Diff"] = profiles.UnifiedDiff("current "+filepath.Base(file), "backup "+filepath.Base(bs[i].Path), cur, old)
			data["Expect"] = digest
		}
	}
	d.page(w, http.StatusOK, "profiles", s, data)
}

// rollbackStep asks for confirmation (showing what will change), then,
// once confirmed, has the daemon roll back — only if the profile is still
// what the user saw: a rollback or a run that changed it meanwhile makes
// this one change nothing and say so.
func (d *Dashboard) rollbackStep(w http.ResponseWriter, r *http.Request, s *session) {
	file, backup, expect := r.PostFormValue("file"), r.PostFormValue("backup"), r.PostFormValue("expect")
	cur, digest, bs, err := d.b.Profile(file)
	if err != nil {
		d.fail(w, http.StatusBadRequest, err.Error()+"; nothing was changed.")
		return
	}
	i := slices.IndexFunc(bs, func(b profiles.Backup) bool { return b.Path == backup })
	if i < 0 {
		d.fail(w, http.StatusBadRequest, fmt.Sprintf("%s is not a backup of %s; nothing was changed.", backup, file))
		return
	}
	if r.PostFormValue("confirm") != "yes" {
		old, _ := os.ReadFile(backup)
		d.page(w, http.StatusOK, "confirm", s, map[string]any{"File": file, "Backup": bs[i], "Expect": digest,
			"Diff": profiles.UnifiedDiff("current "+filepath.Base(file), "backup "+filepath.Base(backup), cur, old)})
		return
	}
	restored, saved, err := d.b.Rollback(file, backup, expect)
	if err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, profiles.ErrConflict) {
			code = http.StatusConflict
		}
		d.fail(w, code, "The rollback did not happen: "+err.Error())
		return
	}
	d.page(w, http.StatusOK, "message", s, map[string]any{"Title": "Rolled back",
		"Message": fmt.Sprintf("%s now holds %s (%s). What it held before was saved as %s.", file, filepath.Base(restored.Path), restored.Time.Local().Format("2006-01-02 15:04:05"), saved),
		"Back":    "/profiles?file=" + file})
}

// download sends a run's report or export as a file, with the session's
// cookie (no API token needed): ?kind=report|export&format=...&table=...
func (d *Dashboard) download(w http.ResponseWriter, r *http.Request, _ *session) {
	q := r.URL.Query()
	o, err := report.ParseOutput(q.Get("kind"), q.Get("format"), q.Get("table"))
	if err != nil {
		d.fail(w, http.StatusBadRequest, "No such download: "+err.Error())
		return
	}
	d.b.Download(w, r, r.PathValue("id"), o, true)
}
