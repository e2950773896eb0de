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
	e := &Effective{}
	for _, l := range fam.GetMetric()[0].GetLabel() {
		v := l.GetValue()
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
	if (wantPC == "true") != e.PrefixCaching {
		diffs = append(diffs, fmt.Sprintf("enable_prefix_caching: server %v, flags %s", e.PrefixCaching, wantPC))
	}
	util := 0.9 // vLLM's default
	if v, ok := flags.Get("gpu-memory-utilization"); ok {
		util, _ = strconv.ParseFloat(v, 64)
	}
	if d := util - e.GPUUtil; d > 1e-9 || d < -1e-9 {
		diffs = append(diffs, fmt.Sprintf("gpu_memory_utilization: server %g, flags %g", e.GPUUtil, util))
	}
	dtype := "auto"
	if v, ok := flags.Get("kv-cache-dtype"); ok {
		dtype = v
	}
	if dtype != e.CacheDtype {
		diffs = append(diffs, fmt.Sprintf("cache_dtype: server %s, flags %s", e.CacheDtype, dtype))
	}
	if len(diffs) == 0 {
		return ""
	}
	return "the server does not run the rendered flags: " + strings.Join(diffs, "; ")
}
