package benchmark

import (
	"bytes"
	"context"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseRealNvidiaSMI(t *testing.T) {
	f, err := os.Open("testdata/h200_query_gpu_loaded.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ss, err := ParseGPUCSV(f, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != 50 {
		t.Fatalf("%d samples, want 50", len(ss))
	}
	first := ss[0]
	if first.Index != 0 || first.MemTotalMiB != 143771 || first.PowerW != 112.18 || first.TempC != 39 || first.At.Format("15:04:05.000") != "17:42:41.525" {
		t.Errorf("first sample %+v", first)
	}
	agg := AggregateGPU(ss)
	if len(agg) != 1 || agg[0].MemPeakMiB < 40000 || agg[0].UtilPeakPct < 50 || agg[0].Samples != 50 {
		t.Errorf("aggregate %+v: want the ~41 GiB load seen", agg)
	}
}

func TestParseNoUnitsSeveralGPUs(t *testing.T) {
	in := "0, GPU-aaaa, 97, 21145, 24564, 71, 402.50\n1, GPU-bbbb, 95, 19340, 24564, 66, [N/A]\n0, GPU-aaaa, 99, 21200, 24564, 72, 410.00\n"
	ss, err := ParseGPUCSV(strings.NewReader(in), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	agg := AggregateGPU(ss)
	if len(agg) != 2 || agg[0].MemPeakMiB != 21200 || agg[1].MemPeakMiB != 19340 || agg[0].PowerMeanW != 406.25 || !math.IsNaN(agg[1].PowerMeanW) {
		t.Errorf("got %+v", agg)
	}
	if _, err := ParseGPUCSV(strings.NewReader("0, 1, 2\n"), time.Now); err == nil {
		t.Error("short line: no error")
	}
}

func TestMissingNvidiaSMIIsNotAnError(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	g := StartGPU(context.Background(), LocalNvidiaSMI, 100*time.Millisecond)
	rep := g.Stop()
	if rep.Available || !strings.Contains(rep.Reason, "nvidia-smi unavailable") {
		t.Errorf("got %+v", rep)
	}
}

// Real /metrics of vLLM 0.8 (old names only) and 0.10 (both): vgrid reads
// each metric under the name the release gave it, says which older names
// it read, and reports what is not there as absent.
func TestRealMetrics(t *testing.T) {
	read := func(name string) *ServerSnapshot {
		b, err := os.ReadFile("testdata/metrics/" + name)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b[:bytes.LastIndexByte(b, '\n')+1]) // the excerpts end mid-line
		s, err := ParseServerMetrics(strings.NewReader(text))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return s
	}
	old := read("vllm-0.8-old-names.txt")
	if old.KVUsage == nil || *old.KVUsage != 0 || old.Running == nil || old.Waiting == nil {
		t.Errorf("0.8: %+v", old)
	}
	if !slices.Equal(old.Legacy, []string{"vllm:gpu_cache_usage_perc"}) {
		t.Errorf("0.8 legacy names %v", old.Legacy)
	}
	if !slices.Contains(old.Absent, "vllm:num_preemptions_total") || old.Preemptions != nil {
		t.Errorf("0.8 absent %v", old.Absent)
	}
	both := read("vllm-0.10-both-names.txt")
	if both.KVUsage == nil || *both.KVUsage != 9.75010481363281e-06 || both.PrefixQueries == nil || *both.PrefixQueries != 32 {
		t.Errorf("0.10: %+v", both)
	}
	// The current name wins where both are there; the old one fills in
	// where the excerpt has only it (hits).
	if !slices.Equal(both.Legacy, []string{"vllm:gpu_prefix_cache_hits_total"}) || both.PrefixHits == nil {
		t.Errorf("0.10 legacy names %v, hits %v", both.Legacy, both.PrefixHits)
	}
}

func TestGPUNamesAndHardware(t *testing.T) {
	for _, f := range []string{"testdata/h100_query_gpu_index_name.csv", "testdata/h100_query_gpu_index_name_header.csv"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		names, err := ParseGPUNames(bytes.NewReader(b))
		if err != nil || len(names) != 1 || names[0] != "NVIDIA H100 80GB HBM3" {
			t.Errorf("%s: %v, %v", f, names, err)
		}
	}
	names := map[int]string{0: "NVIDIA GeForce RTX 4090", 1: "NVIDIA GeForce RTX 4090", 2: "NVIDIA RTX A6000"}
	for _, tc := range []struct {
		devs []int
		want string
	}{
		{[]int{0, 1}, "2x NVIDIA GeForce RTX 4090"},
		{[]int{1, 2}, "1x NVIDIA GeForce RTX 4090 + 1x NVIDIA RTX A6000"},
		{[]int{3}, ""},
	} {
		if got := Hardware(names, tc.devs); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.devs, got, tc.want)
		}
	}
	if _, err := ParseGPUNames(strings.NewReader("zero, NVIDIA H100\n")); err == nil {
		t.Error("a non-numeric index is an error")
	}
}
