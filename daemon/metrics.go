package daemon

import (
	"runtime"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vgrid/vgrid/orchestrator"
)

// collector computes the daemon's metrics from the store at scrape time.
type collector struct {
	d                                            *Daemon
	runs, trials, current, champion, size, build *prometheus.Desc
	phaseSeconds                                 *prometheus.Desc
}

var phaseBuckets = []float64{0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600}

func (d *Daemon) registry() *prometheus.Registry {
	c := &collector{d: d,
		runs:         prometheus.NewDesc("vgrid_runs", "Runs in the store by state.", []string{"state"}, nil),
		trials:       prometheus.NewDesc("vgrid_trials", "Trials by phase and failure reason.", []string{"phase", "reason"}, nil),
		current:      prometheus.NewDesc("vgrid_current_phase", "Phase number of the trial in progress, per target (see docs/state-machine.md).", []string{"target", "run", "candidate", "phase"}, nil),
		champion:     prometheus.NewDesc("vgrid_last_champion_info", "The champion of the most recent finished run.", []string{"run", "candidate", "metric", "tie"}, nil),
		size:         prometheus.NewDesc("vgrid_store_size_bytes", "Size of the bbolt store.", nil, nil),
		build:        prometheus.NewDesc("vgrid_build_info", "vgrid's version.", []string{"version", "goversion"}, nil),
		phaseSeconds: prometheus.NewDesc("vgrid_trial_phase_duration_seconds", "Time trials spent per phase (last attempt).", []string{"phase"}, nil),
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	return reg
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.runs, c.trials, c.current, c.champion, c.size, c.build, c.phaseSeconds} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.d.cfg.Store
	ch <- prometheus.MustNewConstMetric(c.build, prometheus.GaugeValue, 1, c.d.cfg.Version, runtime.Version())
	ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(st.Size()))
	runs, err := st.Runs()
	if err != nil {
		return
	}
	byState := map[string]float64{}
	for s := orchestrator.RunQueued; s <= orchestrator.RunInterrupted; s++ {
		byState[s.String()] = 0
	}
	trialCounts := map[[2]string]float64{}
	durations := map[string][]float64{}
	championDone := false
	for _, r := range runs { // newest first
		byState[r.State.String()]++
		trials, err := st.Trials(r.ID)
		if err != nil {
			continue
		}
		for _, t := range trials {
			reason := ""
			if t.Failure != nil {
				reason = t.Failure.Reason.String()
			}
			trialCounts[[2]string{t.Phase.String(), reason}]++
			tm := t.Timing()
			for name, d := range map[string]float64{"rendering": tm.Render.Seconds(), "deploying": tm.Deploy.Seconds(),
				"waiting-ready": tm.Boot.Seconds(), "verifying-config": tm.Verify.Seconds(), "benchmarking": tm.Bench.Seconds()} {
				if d > 0 {
					durations[name] = append(durations[name], d)
				}
			}
			if r.State == orchestrator.RunRunning && !t.Phase.Final() && t.Phase != orchestrator.PhasePending {
				ch <- prometheus.MustNewConstMetric(c.current, prometheus.GaugeValue, float64(t.Phase), r.Target, r.ID, t.Candidate.Name, t.Phase.String())
			}
		}
		if !championDone && r.State == orchestrator.RunDone && r.Champion != nil && r.Champion.Champion >= 0 {
			championDone = true
			tie := "false"
			if r.Champion.Tie {
				tie = "true"
			}
			ch <- prometheus.MustNewConstMetric(c.champion, prometheus.GaugeValue, 1, r.ID, r.Champion.Name, r.Champion.Metric, tie)
		}
	}
	for s, n := range byState {
		ch <- prometheus.MustNewConstMetric(c.runs, prometheus.GaugeValue, n, s)
	}
	for k, n := range trialCounts {
		ch <- prometheus.MustNewConstMetric(c.trials, prometheus.GaugeValue, n, k[0], k[1])
	}
	for phase, ds := range durations {
		buckets := map[float64]uint64{}
		var sum float64
		for _, b := range phaseBuckets {
			for _, d := range ds {
				if d <= b {
					buckets[b]++
				}
			}
		}
		for _, d := range ds {
			sum += d
		}
		ch <- prometheus.MustNewConstHistogram(c.phaseSeconds, uint64(len(ds)), sum, buckets, phase)
	}
}
