package benchmark

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"net/http"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// GPUQuery is the nvidia-smi query vgrid runs, every GPU.
const GPUQuery = "index,uuid,utilization.gpu,memory.used,memory.total,temperature.gpu,power.draw"

// GPUSample is one reading of one GPU.
type GPUSample struct {
	At          time.Time `json:"at"`
	Index       int       `json:"index"`
	UUID        string    `json:"uuid,omitempty"`
	UtilPct     float64   `json:"util_pct"`
	MemUsedMiB  float64   `json:"mem_used_mib"`
	MemTotalMiB float64   `json:"mem_total_mib"`
	TempC       float64   `json:"temp_c"`
	PowerW      float64   `json:"power_w"`
}

// ParseGPUCSV parses nvidia-smi --query-gpu CSV output, with or without the
// header line and units ("41234 MiB", "85 %", "350.12 W"); "[N/A]" values
// become NaN. Columns are named by the header when present, else by
// GPUQuery's order. A "timestamp" column sets At.
func ParseGPUCSV(r io.Reader, now func() time.Time) ([]GPUSample, error) {
	cr := csv.NewReader(r)
	cr.TrimLeadingSpace = true
	cr.FieldsPerRecord = -1
	cols := strings.Split(GPUQuery, ",")
	var out []GPUSample
	for line := 1; ; line++ {
		rec, err := cr.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("nvidia-smi line %d: %w", line, err)
		}
		if len(rec) == 0 || (len(rec) == 1 && strings.TrimSpace(rec[0]) == "") {
			continue
		}
		if strings.Contains(rec[0], "index") || strings.Contains(rec[0], "timestamp") {
			cols = cols[:0]
			for _, h := range rec {
				name, _, _ := strings.Cut(strings.TrimSpace(h), " ") // "memory.used [MiB]" -> memory.used
				cols = append(cols, name)
			}
			continue
		}
		if len(rec) != len(cols) {
			return out, fmt.Errorf("nvidia-smi line %d: %d fields, expected %d (%s)", line, len(rec), len(cols), strings.Join(cols, ","))
		}
		s := GPUSample{At: now(), Index: -1}
		for i, c := range cols {
			v := strings.TrimSpace(rec[i])
			f := number(v)
			switch c {
			case "timestamp":
				if t, err := time.ParseInLocation("2006/01/02 15:04:05.000", v, time.Local); err == nil {
					s.At = t
				}
			case "index":
				s.Index = int(f)
			case "uuid":
				s.UUID = v
			case "utilization.gpu":
				s.UtilPct = f
			case "memory.used":
				s.MemUsedMiB = f
			case "memory.total":
				s.MemTotalMiB = f
			case "temperature.gpu":
				s.TempC = f
			case "power.draw":
				s.PowerW = f
			}
		}
		out = append(out, s)
	}
}

// number reads "41234 MiB", "85 %", "350.12 W" or "41234"; NaN otherwise.
func number(v string) float64 {
	f, err := strconv.ParseFloat(strings.Fields(v + " x")[0], 64)
	if err != nil {
		return math.NaN()
	}
	return f
}

// GPUSource starts a GPU sampler: a stream of nvidia-smi CSV lines, one
// sample every interval, until ctx ends. Closing the stream says how its
// producer ended (an error when it failed on its own).
type GPUSource func(ctx context.Context, interval time.Duration) (io.ReadCloser, error)

// smiArgs are nvidia-smi's arguments for a sample every interval.
func smiArgs(interval time.Duration) []string {
	return []string{"--query-gpu=" + GPUQuery, "--format=csv,noheader,nounits", fmt.Sprintf("-lms=%d", interval.Milliseconds())}
}

// LocalNvidiaSMI runs nvidia-smi on this host (NvidiaSMI finds it).
func LocalNvidiaSMI(ctx context.Context, interval time.Duration) (io.ReadCloser, error) {
	path, err := findNvidiaSMI()
	if err != nil {
		return nil, err
	}
	return CommandStream(exec.CommandContext(ctx, path, smiArgs(interval)...))
}

// DockerNvidiaSMI runs nvidia-smi inside a container with the docker CLI
// (the vLLM one sees its GPUs).
func DockerNvidiaSMI(container string) GPUSource {
	return func(ctx context.Context, interval time.Duration) (io.ReadCloser, error) {
		path, err := exec.LookPath("docker")
		if err != nil {
			return nil, err
		}
		return CommandStream(exec.CommandContext(ctx, path, append([]string{"exec", container, "nvidia-smi"}, smiArgs(interval)...)...))
	}
}

// NvidiaSMIArgs is the nvidia-smi command line a GPUSource runs, for
// sources that run it elsewhere (in a container, through an engine's API).
func NvidiaSMIArgs(interval time.Duration) []string {
	return append([]string{"nvidia-smi"}, smiArgs(interval)...)
}

// CommandStream starts cmd and streams its standard output; Close waits
// for it and returns how it ended.
func CommandStream(cmd *exec.Cmd) (io.ReadCloser, error) {
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &cmdStream{ReadCloser: out, cmd: cmd}, nil
}

type cmdStream struct {
	io.ReadCloser
	cmd *exec.Cmd
}

func (c *cmdStream) Close() error { return c.cmd.Wait() }

// GPUStats is one GPU over a scenario.
type GPUStats struct {
	Index       int     `json:"index"`
	UUID        string  `json:"uuid,omitempty"`
	Samples     int     `json:"samples"`
	MemPeakMiB  float64 `json:"mem_peak_mib"`
	MemMeanMiB  float64 `json:"mem_mean_mib"`
	MemTotalMiB float64 `json:"mem_total_mib"`
	UtilPeakPct float64 `json:"util_peak_pct"`
	UtilMeanPct float64 `json:"util_mean_pct"`
	PowerPeakW  float64 `json:"power_peak_w"`
	PowerMeanW  float64 `json:"power_mean_w"`
	TempPeakC   float64 `json:"temp_peak_c"`
}

// GPUReport is GPU telemetry for a scenario, or why there is none.
type GPUReport struct {
	Available bool        `json:"available"`
	Reason    string      `json:"reason,omitempty"`
	GPUs      []GPUStats  `json:"gpus,omitempty"`
	Samples   []GPUSample `json:"samples,omitempty"`
}

// AggregateGPU computes per-GPU peak and mean (NaN readings skipped). Pure.
func AggregateGPU(samples []GPUSample) []GPUStats {
	by := map[int]*GPUStats{}
	sums := map[int][4]float64{}
	counts := map[int][4]int{}
	for _, s := range samples {
		g := by[s.Index]
		if g == nil {
			g = &GPUStats{Index: s.Index, UUID: s.UUID}
			by[s.Index] = g
		}
		g.Samples++
		sm, ct := sums[s.Index], counts[s.Index]
		for i, v := range []float64{s.MemUsedMiB, s.UtilPct, s.PowerW, s.TempC} {
			if math.IsNaN(v) {
				continue
			}
			sm[i] += v
			ct[i]++
			switch i {
			case 0:
				g.MemPeakMiB = math.Max(g.MemPeakMiB, v)
			case 1:
				g.UtilPeakPct = math.Max(g.UtilPeakPct, v)
			case 2:
				g.PowerPeakW = math.Max(g.PowerPeakW, v)
			case 3:
				g.TempPeakC = math.Max(g.TempPeakC, v)
			}
		}
		sums[s.Index], counts[s.Index] = sm, ct
		if !math.IsNaN(s.MemTotalMiB) {
			g.MemTotalMiB = s.MemTotalMiB
		}
	}
	var out []GPUStats
	for i, g := range by {
		sm, ct := sums[i], counts[i]
		mean := func(k int) float64 {
			if ct[k] == 0 {
				return math.NaN()
			}
			return sm[k] / float64(ct[k])
		}
		g.MemMeanMiB, g.UtilMeanPct, g.PowerMeanW = mean(0), mean(1), mean(2)
		out = append(out, *g)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Index < out[b].Index })
	return out
}

// GPUSampler runs a GPUSource in the background; Stop returns the report.
type GPUSampler struct {
	cancel  context.CancelFunc
	done    chan struct{}
	mu      sync.Mutex
	samples []GPUSample
	reason  string
}

// StartGPU starts sampling; the caller must call Stop.
func StartGPU(ctx context.Context, src GPUSource, interval time.Duration) *GPUSampler {
	g := &GPUSampler{done: make(chan struct{})}
	if src == nil {
		g.reason = "no GPU telemetry source configured"
		close(g.done)
		return g
	}
	ctx, g.cancel = context.WithCancel(ctx)
	out, err := src(ctx, interval)
	if err != nil {
		g.reason = "nvidia-smi unavailable: " + err.Error()
		close(g.done)
		return g
	}
	go func() {
		defer close(g.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			ss, err := ParseGPUCSV(strings.NewReader(sc.Text()), time.Now)
			g.mu.Lock()
			if err != nil && g.reason == "" {
				g.reason = err.Error()
			}
			g.samples = append(g.samples, ss...)
			g.mu.Unlock()
		}
		if err := out.Close(); err != nil && ctx.Err() == nil {
			g.mu.Lock()
			g.reason = "nvidia-smi exited: " + err.Error()
			g.mu.Unlock()
		}
	}()
	return g
}

// Stop ends sampling and returns per-GPU peaks and means, or why there are none.
func (g *GPUSampler) Stop() *GPUReport {
	if g.cancel != nil {
		g.cancel()
	}
	<-g.done
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.samples) == 0 {
		reason := g.reason
		if reason == "" {
			reason = "nvidia-smi printed no sample"
		}
		return &GPUReport{Available: false, Reason: reason}
	}
	return &GPUReport{Available: true, GPUs: AggregateGPU(g.samples), Samples: g.samples}
}

// ServerSnapshot is one scrape of vLLM's /metrics. A metric the server
// does not expose is nil: absent, never zero or NaN.
type ServerSnapshot struct {
	KVUsage       *float64
	Running       *float64
	Waiting       *float64
	Preemptions   *float64
	PrefixQueries *float64
	PrefixHits    *float64
	PrefixCaching *bool
	// Absent lists the metrics vgrid follows that the server does not
	// expose; Legacy the older names it read instead of the current ones.
	Absent []string
	Legacy []string
}

// serverMetrics are the metrics vgrid follows, each under the names vLLM
// gave it, newest first: V1 renamed vllm:gpu_cache_usage_perc to
// vllm:kv_cache_usage_perc and vllm:gpu_prefix_cache_{queries,hits} to
// vllm:prefix_cache_{queries,hits} (0.10 exposes both, the old ones
// marked DEPRECATED; 0.11 on only the new ones).
var serverMetrics = []struct {
	names []string
	field func(*ServerSnapshot) **float64
}{
	{[]string{"vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"}, func(s *ServerSnapshot) **float64 { return &s.KVUsage }},
	{[]string{"vllm:num_requests_running"}, func(s *ServerSnapshot) **float64 { return &s.Running }},
	{[]string{"vllm:num_requests_waiting"}, func(s *ServerSnapshot) **float64 { return &s.Waiting }},
	{[]string{"vllm:num_preemptions_total"}, func(s *ServerSnapshot) **float64 { return &s.Preemptions }},
	{[]string{"vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries_total"}, func(s *ServerSnapshot) **float64 { return &s.PrefixQueries }},
	{[]string{"vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total"}, func(s *ServerSnapshot) **float64 { return &s.PrefixHits }},
}

// ServerReport is server telemetry over a scenario. A metric the server
// does not expose is left out (nil) and named in Absent.
type ServerReport struct {
	KVUsagePeak   *float64 `json:"kv_cache_usage_peak,omitempty"`
	RunningPeak   *float64 `json:"running_peak,omitempty"`
	WaitingPeak   *float64 `json:"waiting_peak,omitempty"`
	Preemptions   *float64 `json:"preemptions,omitempty"`
	PrefixQueries *float64 `json:"prefix_cache_queries,omitempty"`
	PrefixHits    *float64 `json:"prefix_cache_hits,omitempty"`
	PrefixHitRate *float64 `json:"prefix_cache_hit_rate,omitempty"`
	PrefixCaching *bool    `json:"prefix_caching,omitempty"`
	Scrapes       int      `json:"scrapes"`
	Unavailable   string   `json:"unavailable,omitempty"`
	Absent        []string `json:"absent,omitempty"`       // metrics the server does not expose
	Legacy        []string `json:"legacy_names,omitempty"` // older metric names read in their place
}

// ParseServerMetrics reads the vLLM metrics vgrid follows, under the names
// of every vLLM generation.
func ParseServerMetrics(r io.Reader) (*ServerSnapshot, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	s := &ServerSnapshot{}
	for _, m := range serverMetrics {
		for i, name := range m.names {
			f, ok := fams[name]
			if !ok {
				continue
			}
			var sum float64
			for _, x := range f.GetMetric() {
				switch {
				case x.GetGauge() != nil:
					sum += x.GetGauge().GetValue()
				case x.GetCounter() != nil:
					sum += x.GetCounter().GetValue()
				}
			}
			*m.field(s) = &sum
			if i > 0 {
				s.Legacy = append(s.Legacy, name)
			}
			break
		}
		if *m.field(s) == nil {
			s.Absent = append(s.Absent, m.names[0])
		}
	}
	if f, ok := fams["vllm:cache_config_info"]; ok && len(f.GetMetric()) > 0 {
		for _, l := range f.GetMetric()[0].GetLabel() {
			if l.GetName() == "enable_prefix_caching" {
				b := strings.EqualFold(l.GetValue(), "true")
				s.PrefixCaching = &b
			}
		}
	}
	return s, nil
}

type serverSampler struct {
	c       *Client
	cancel  context.CancelFunc
	done    chan struct{}
	mu      sync.Mutex
	rep     ServerReport
	failure string
}

func (s *serverSampler) scrape(ctx context.Context) (*ServerSnapshot, error) {
	req, err := s.c.newRequest(ctx, "GET", "/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/metrics answered %d", resp.StatusCode)
	}
	return ParseServerMetrics(resp.Body)
}

func (s *serverSampler) snapshot(ctx context.Context) *ServerSnapshot {
	if s == nil {
		return nil
	}
	snap, err := s.scrape(ctx)
	if err != nil {
		s.mu.Lock()
		s.failure = err.Error()
		s.mu.Unlock()
		return nil
	}
	s.observe(snap)
	return snap
}

func (s *serverSampler) observe(snap *ServerSnapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rep.Scrapes++
	peak := func(dst **float64, v *float64) {
		if v != nil && !math.IsNaN(*v) && (*dst == nil || *v > **dst) {
			x := *v
			*dst = &x
		}
	}
	peak(&s.rep.KVUsagePeak, snap.KVUsage)
	peak(&s.rep.RunningPeak, snap.Running)
	peak(&s.rep.WaitingPeak, snap.Waiting)
	if snap.PrefixCaching != nil {
		s.rep.PrefixCaching = snap.PrefixCaching
	}
	s.rep.Absent, s.rep.Legacy = snap.Absent, snap.Legacy
}

// telemetry is what runs beside a scenario; the scenario owns it.
type telemetry struct {
	gpu    *GPUSampler
	server *serverSampler
}

func startTelemetry(ctx context.Context, c *Client, gpu GPUSource, interval time.Duration) *telemetry {
	if interval <= 0 {
		interval = time.Second
	}
	t := &telemetry{gpu: StartGPU(ctx, gpu, interval)}
	s := &serverSampler{c: c, done: make(chan struct{})}
	var sctx context.Context
	sctx, s.cancel = context.WithCancel(ctx)
	go func() {
		defer close(s.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-tick.C:
				s.snapshot(sctx)
			}
		}
	}()
	t.server = s
	return t
}

// stop ends the samplers and reports; before/after are the scrapes taken
// around the scenario, for counter deltas.
func (t *telemetry) stop(before, after *ServerSnapshot) (*GPUReport, *ServerReport) {
	gpu := t.gpu.Stop()
	s := t.server
	s.cancel()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	rep := s.rep
	if before == nil || after == nil {
		rep.Unavailable = "could not scrape /metrics: " + s.failure
		return gpu, &rep
	}
	delta := func(a, b *float64) *float64 {
		if a == nil || b == nil {
			return nil // not exposed: absent, not zero
		}
		d := *b - *a
		return &d
	}
	rep.Preemptions = delta(before.Preemptions, after.Preemptions)
	rep.PrefixQueries = delta(before.PrefixQueries, after.PrefixQueries)
	rep.PrefixHits = delta(before.PrefixHits, after.PrefixHits)
	if rep.PrefixQueries != nil && rep.PrefixHits != nil && *rep.PrefixQueries > 0 {
		r := *rep.PrefixHits / *rep.PrefixQueries
		rep.PrefixHitRate = &r
	}
	rep.Absent, rep.Legacy = after.Absent, after.Legacy
	return gpu, &rep
}

// ParseGPUNames reads `nvidia-smi --query-gpu=index,name --format=csv`
// output (with or without its header): the model of each GPU by index.
func ParseGPUNames(r io.Reader) (map[int]string, error) {
	cr := csv.NewReader(r)
	cr.TrimLeadingSpace = true
	cr.FieldsPerRecord = -1
	out := map[int]string{}
	for line := 1; ; line++ {
		rec, err := cr.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("nvidia-smi line %d: %w", line, err)
		}
		if len(rec) < 2 || strings.TrimSpace(rec[0]) == "index" {
			continue
		}
		i, err := strconv.Atoi(strings.TrimSpace(rec[0]))
		if err != nil {
			return out, fmt.Errorf("nvidia-smi line %d: index %q is not a number", line, rec[0])
		}
		out[i] = strings.TrimSpace(rec[1])
	}
}

// LocalGPUNames asks this host's nvidia-smi for its GPUs' models; an
// error when there is none.
func LocalGPUNames(ctx context.Context) (map[int]string, error) {
	path, err := findNvidiaSMI()
	if err != nil {
		return nil, err
	}
	b, err := exec.CommandContext(ctx, path, "--query-gpu=index,name", "--format=csv,noheader").Output()
	if err != nil {
		return nil, fmt.Errorf("nvidia-smi: %w", err)
	}
	return ParseGPUNames(bytes.NewReader(b))
}

// Hardware names a set of GPUs by model: "2x NVIDIA H100 80GB HBM3", or
// the models joined with " + " when they differ; "" when a device is
// unknown.
func Hardware(names map[int]string, devices []int) string {
	var models []string
	count := map[string]int{}
	for _, d := range devices {
		n, ok := names[d]
		if !ok {
			return ""
		}
		if count[n] == 0 {
			models = append(models, n)
		}
		count[n]++
	}
	var parts []string
	for _, m := range models {
		parts = append(parts, fmt.Sprintf("%dx %s", count[m], m))
	}
	return strings.Join(parts, " + ")
}
