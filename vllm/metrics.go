package vllm

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Effective is the cache configuration the running server reports in
// vllm:cache_config_info.
type Effective struct {
	PrefixCaching bool    `json:"enable_prefix_caching"`
	GPUUtil       float64 `json:"gpu_memory_utilization"`
	CacheDtype    string  `json:"cache_dtype"`
	BlockSize     int     `json:"block_size"`
	NumGPUBlocks  int     `json:"num_gpu_blocks"`
	// Reported names the labels the server gave: vLLM's label set changed
	// between releases, and a label it does not report is unknown, not
	// false or zero.
	Reported map[string]bool `json:"-"`
}

// Has reports whether the server reported a label.
func (e *Effective) Has(label string) bool { return e.Reported[label] }

// effectiveLabels are the labels vgrid reads, in the order it shows them.
var effectiveLabels = []string{"enable_prefix_caching", "gpu_memory_utilization", "cache_dtype", "num_gpu_blocks", "block_size"}

// Map returns the labels the server reported, as text; a label it did not
// report is left out, never shown as false or zero.
func (e *Effective) Map() map[string]string {
	all := map[string]string{"enable_prefix_caching": fmt.Sprint(e.PrefixCaching), "gpu_memory_utilization": fmt.Sprint(e.GPUUtil),
		"cache_dtype": e.CacheDtype, "num_gpu_blocks": fmt.Sprint(e.NumGPUBlocks), "block_size": fmt.Sprint(e.BlockSize)}
	out := map[string]string{}
	for k, v := range all {
		if e.Has(k) {
			out[k] = v
		}
	}
	return out
}

// Describe writes the reported labels, and names those the server does not
// report.
func (e *Effective) Describe() string { return DescribeEffective(e.Map()) }

// DescribeEffective writes an effective configuration as Map returns it.
func DescribeEffective(m map[string]string) string {
	var parts, absent []string
	for _, k := range effectiveLabels {
		if v, ok := m[k]; ok {
			parts = append(parts, k+"="+v)
		} else {
			absent = append(absent, k)
		}
	}
	s := strings.Join(parts, " ")
	if len(absent) > 0 {
		s += " (not reported by this vLLM: " + strings.Join(absent, ", ") + ")"
	}
	return s
}

// ScrapeEffective reads vllm:cache_config_info from the server's /metrics.
func ScrapeEffective(ctx context.Context, endpoint string) (*Effective, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", endpoint+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s/metrics: %w", endpoint, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s/metrics: status %d", endpoint, resp.StatusCode)
	}
	return parseEffective(resp.Body)
}

func parseEffective(r io.Reader) (*Effective, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse /metrics: %w", err)
	}
	fam, ok := fams["vllm:cache_config_info"]
	if !ok || len(fam.GetMetric()) == 0 {
		return nil, fmt.Errorf("/metrics has no vllm:cache_config_info: is this a vLLM server?")
	}
	e := &Effective{Reported: map[string]bool{}}
	for _, l := range fam.GetMetric()[0].GetLabel() {
		v := l.GetValue()
		e.Reported[l.GetName()] = true
		switch l.GetName() {
		case "enable_prefix_caching":
			e.PrefixCaching = strings.EqualFold(v, "true")
		case "gpu_memory_utilization":
			e.GPUUtil, _ = strconv.ParseFloat(v, 64)
		case "cache_dtype":
			e.CacheDtype = v
		case "block_size":
			e.BlockSize, _ = strconv.Atoi(v)
		case "num_gpu_blocks":
			e.NumGPUBlocks, _ = strconv.Atoi(v)
		}
	}
	return e, nil
}

// ServerStart reads when the process serving endpoint started, from the
// process_start_time_seconds gauge that vLLM's /metrics carries (Python's
// Prometheus client exports it). Zero, without error, when the server
// does not export it.
func ServerStart(ctx context.Context, endpoint string) (time.Time, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", endpoint+"/metrics", nil)
	if err != nil {
		return time.Time{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return time.Time{}, fmt.Errorf("scrape %s/metrics: %w", endpoint, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return time.Time{}, fmt.Errorf("scrape %s/metrics: status %d", endpoint, resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return time.Time{}, fmt.Errorf("parse %s/metrics: %w", endpoint, err)
	}
	fam, ok := fams["process_start_time_seconds"]
	if !ok || len(fam.GetMetric()) == 0 || fam.GetMetric()[0].GetGauge() == nil {
		return time.Time{}, nil
	}
	v := fam.GetMetric()[0].GetGauge().GetValue()
	return time.Unix(0, int64(v*1e9)), nil
}

// CheckDrift compares what the server reports with the flags it was given
// (vLLM's defaults where a flag is absent) and says how they differ,
// naming both values, or returns "". Pure.
func CheckDrift(flags Flags, e *Effective) string {
	var diffs []string
	wantPC, _ := flags.Effective("enable-prefix-caching")
	if e.Has("enable_prefix_caching") && (wantPC == "true") != e.PrefixCaching {
		diffs = append(diffs, fmt.Sprintf("enable_prefix_caching: server %v, flags %s", e.PrefixCaching, wantPC))
	}
	util := 0.9 // vLLM's default
	if v, ok := flags.Get("gpu-memory-utilization"); ok {
		util, _ = strconv.ParseFloat(v, 64)
	}
	if d := util - e.GPUUtil; e.Has("gpu_memory_utilization") && (d > 1e-9 || d < -1e-9) {
		diffs = append(diffs, fmt.Sprintf("gpu_memory_utilization: server %g, flags %g", e.GPUUtil, util))
	}
	dtype := "auto"
	if v, ok := flags.Get("kv-cache-dtype"); ok {
		dtype = v
	}
	if e.Has("cache_dtype") && dtype != e.CacheDtype {
		diffs = append(diffs, fmt.Sprintf("cache_dtype: server %s, flags %s", e.CacheDtype, dtype))
	}
	if len(diffs) == 0 {
		return ""
	}
	return "the server does not run the rendered flags: " + strings.Join(diffs, "; ")
}
