package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"github.com/vgrid/vgrid/orchestrator"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
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
		return nil, usagef("--server needs the daemon's token: --server-token-file F (the daemon prints where its token file is) or VGRID_TOKEN")
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
	var show struct {
		State    string                `json:"state"`
		Champion *orchestrator.Verdict `json:"champion"`
	}
	if err := c.getJSON(ctx, "/v1/runs/"+sub.ID, &show); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "run %s: %s\n", sub.ID, show.State)
	if ch := show.Champion; ch != nil {
		if ch.Champion >= 0 {
			fmt.Fprintln(a.stdout, verdictLine(ch))
		}
		fmt.Fprintf(a.stdout, "why: %s\n", ch.Reason)
	}
	return nil
}

// follow prints a run's events until the daemon ends the stream.
func (a *app) follow(ctx context.Context, c *apiClient, id string) error {
	resp, err := c.do(ctx, "GET", "/v1/runs/"+id+"/events", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
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
		switch {
		case e.State != "":
			return nil
		case e.Trial >= 0 && e.Kind == "phase":
			fmt.Fprintf(a.stdout, "  trial %d: %s\n", e.Trial, e.Text)
		default:
			fmt.Fprintf(a.stdout, "  %s\n", e.Text)
		}
	}
	return sc.Err()
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
	return closeFn()
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
	rep := &orchestrator.ReportData{Run: show.Run}
	for _, t := range show.Trials {
		row := orchestrator.Row{Seq: t.Seq, ObjectiveValue: math.NaN(), ObjectiveLo: math.NaN(), ObjectiveHi: math.NaN()}
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
	return nil
}
