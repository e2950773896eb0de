package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/vgrid/vgrid/orchestrator"
	"github.com/vgrid/vgrid/report"
	"github.com/vgrid/vgrid/store"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
)

// apiClient talks to a vgrid daemon (--server URL or VGRID_SERVER).
type apiClient struct {
	base  string
	token string
	http  *http.Client
}

// server returns the daemon client when --server or VGRID_SERVER is set.
func (a *app) server() (*apiClient, error) {
	base := a.serverURL
	if base == "" {
		base = a.getenv("VGRID_SERVER")
	}
	if base == "" {
		return nil, nil
	}
	tok := a.getenv("VGRID_TOKEN")
	if a.tokenFile != "" {
		b, err := os.ReadFile(a.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("read --server-token-file: %w", err)
		}
		tok = strings.TrimSpace(string(b))
	}
	if tok == "" {
		// A daemon on this machine with its defaults keeps its token
		// beside its default store: read it when this user can.
		def := filepath.Join(filepath.Dir(store.DefaultPath(a.getenv)), "token")
		if b, err := os.ReadFile(def); err == nil {
			tok = strings.TrimSpace(string(b))
		} else {
			return nil, usagef("--server needs the daemon's token: --server-token-file F (the file vgrid serve printed at start; %s when it runs with its defaults, which this user cannot read: %v) or VGRID_TOKEN=<the token itself>", def, err)
		}
	}
	return &apiClient{base: strings.TrimRight(base, "/"), token: tok, http: &http.Client{}}, nil
}

func (c *apiClient) do(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("vgrid daemon at %s: %w", c.base, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		var e struct {
			Error string `json:"error"`
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 8192))
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("vgrid daemon: %s (HTTP %d)", e.Error, resp.StatusCode)
		}
		return nil, fmt.Errorf("vgrid daemon: HTTP %d: %s", resp.StatusCode, b)
	}
	return resp, nil
}

func (c *apiClient) getJSON(ctx context.Context, path string, v any) error {
	resp, err := c.do(ctx, "GET", path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// remoteRun submits a grid file and follows its events to the end.
func (a *app) remoteRun(ctx context.Context, c *apiClient, gridFile string) error {
	src, err := os.ReadFile(gridFile)
	if err != nil {
		return err
	}
	dir, _ := filepath.Abs(filepath.Dir(gridFile))
	resp, err := c.do(ctx, "POST", "/v1/runs?name="+url.QueryEscape(gridFile)+"&dir="+url.QueryEscape(dir), strings.NewReader(string(src)))
	if err != nil {
		return err
	}
	var sub struct {
		ID, State, Target string
	}
	json.NewDecoder(resp.Body).Decode(&sub)
	resp.Body.Close()
	fmt.Fprintf(a.stdout, "run %s queued on %s (daemon %s)\n", sub.ID, sub.Target, c.base)
	if err := a.follow(ctx, c, sub.ID); err != nil {
		return err
	}
	return a.remoteShow(ctx, c, sub.ID)
}

// follow prints a run's events until the daemon ends the stream. A stream
// that breaks (the daemon restarted, the network dropped) is taken up
// again from the last event seen for --reconnect; then follow says how
// to re-attach, since the run goes on in the daemon.
func (a *app) follow(ctx context.Context, c *apiClient, id string) error {
	var last string
	var lost time.Time
	for {
		end, err := a.followOnce(ctx, c, id, &last)
		switch {
		case end:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		}
		if lost.IsZero() {
			lost = time.Now()
			fmt.Fprintf(a.stderr, "lost the daemon at %s (%v); trying again for %s\n", c.base, err, a.reconnect)
		}
		if time.Since(lost) > a.reconnect {
			return fmt.Errorf("lost the daemon at %s (%v); the run goes on there once it is back: re-attach with vgrid runs watch %s --server %s", c.base, err, id, c.base)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// followOnce reads one event stream from the event after *last; end says
// the daemon ended it (the run is final).
func (a *app) followOnce(ctx context.Context, c *apiClient, id string, last *string) (end bool, err error) {
	req, err := http.NewRequestWithContext(ctx, "GET", c.base+"/v1/runs/"+id+"/events", nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if *last != "" {
		req.Header.Set("Last-Event-ID", *last)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 8192))
		if resp.StatusCode < 500 {
			return true, fmt.Errorf("vgrid daemon: HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(b))
		}
		return false, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "id: "); ok {
			*last = v
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		var e struct {
			Kind  string `json:"kind"`
			Trial int    `json:"trial"`
			Text  string `json:"text"`
			State string `json:"state"`
		}
		json.Unmarshal([]byte(data), &e)
		if e.State != "" {
			return true, nil
		}
		a.printEvent(orchestrator.Event{Kind: orchestrator.EventKind(e.Kind), Trial: e.Trial, Text: e.Text})
	}
	if err := sc.Err(); err != nil {
		return false, err
	}
	return false, io.ErrUnexpectedEOF
}

// printEvent prints one event of a run as vgrid run --server and vgrid
// runs watch show them.
func (a *app) printEvent(e orchestrator.Event) {
	if e.Trial >= 0 && e.Kind == orchestrator.EventPhase {
		fmt.Fprintf(a.stdout, "  trial %d: %s\n", e.Trial, termSafe(e.Text))
		return
	}
	fmt.Fprintf(a.stdout, "  %s\n", termSafe(e.Text))
}

func (a *app) remoteList(ctx context.Context, c *apiClient) error {
	var runs []struct {
		ID, State, Grid, Target, Champion string
	}
	if err := c.getJSON(ctx, "/v1/runs", &runs); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tSTATE\tGRID\tTARGET\tCHAMPION")
	for _, r := range runs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", termSafe(r.ID), termSafe(r.State), termSafe(r.Grid), termSafe(r.Target), termSafe(r.Champion))
	}
	return tw.Flush()
}

// remoteCopy copies a daemon's answer to out (-o FILE) or stdout.
func (a *app) remoteCopy(ctx context.Context, c *apiClient, path, out string) error {
	resp, err := c.do(ctx, "GET", path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	w, closeFn, err := a.output(out)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		closeFn()
		return err
	}
	return a.wrote(out, closeFn)
}

// remoteShow prints a daemon's run as runs show prints a local one.
func (a *app) remoteShow(ctx context.Context, c *apiClient, id string) error {
	var show struct {
		Run       *orchestrator.Run     `json:"run"`
		Trials    []*orchestrator.Trial `json:"trials"`
		Objective map[int]struct {
			Value *float64 `json:"value"`
			Lo    *float64 `json:"ci_lo"`
			Hi    *float64 `json:"ci_hi"`
		} `json:"objective"`
	}
	if err := c.getJSON(ctx, "/v1/runs/"+id, &show); err != nil {
		return err
	}
	if show.Run == nil {
		return fmt.Errorf("the daemon's answer for run %s has no run", id)
	}
	rep := &report.ReportData{Run: show.Run}
	for _, t := range show.Trials {
		row := report.Row{Seq: t.Seq, ObjectiveValue: math.NaN(), ObjectiveLo: math.NaN(), ObjectiveHi: math.NaN()}
		if o, ok := show.Objective[t.Seq]; ok {
			for _, p := range []struct {
				dst *float64
				src *float64
			}{{&row.ObjectiveValue, o.Value}, {&row.ObjectiveLo, o.Lo}, {&row.ObjectiveHi, o.Hi}} {
				if p.src != nil {
					*p.dst = *p.src
				}
			}
		}
		rep.Rows = append(rep.Rows, row)
	}
	a.runTable(show.Run, show.Trials, rep, a.where(""))
	return endError(show.Run)
}

// endError is what a run's end means for the exit status when the
// command waited for it: nil when done, else an error saying how it ended.
func endError(r *orchestrator.Run) error {
	switch r.State {
	case orchestrator.RunFailed:
		return fmt.Errorf("run %s failed: %s", r.ID, r.Error)
	case orchestrator.RunCancelled:
		return fmt.Errorf("run %s was cancelled", r.ID)
	}
	return nil
}
