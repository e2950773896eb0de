package failure

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vgrid/vgrid/vllm"
)

// Every failure vLLM's output can prove maps to its own reason, by name:
// none falls back to boot_crash.
func TestEveryCauseMaps(t *testing.T) {
	seen := map[Reason]vllm.Cause{}
	for _, c := range vllm.Causes {
		r, ok := causes[c]
		if !ok {
			t.Errorf("cause %q has no reason", c)
			continue
		}
		if r.String() != string(c) {
			t.Errorf("cause %q maps to %s: the persisted names must agree", c, r)
		}
		if prev, dup := seen[r]; dup {
			t.Errorf("causes %q and %q both map to %s", prev, c, r)
		}
		seen[r] = c
	}
	if len(causes) != len(vllm.Causes) {
		t.Errorf("%d causes mapped, vllm lists %d", len(causes), len(vllm.Causes))
	}
}

// Every reason has a stable name that round-trips through JSON, and every
// name parses back.
func TestEveryReasonIsNamedAndRoundTrips(t *testing.T) {
	for r := ReasonNone; r <= reasonLast; r++ {
		n, ok := reasonNames[r]
		if !ok {
			t.Errorf("reason %d has no name", r)
			continue
		}
		b, err := json.Marshal(&Failure{Reason: r})
		if err != nil {
			t.Fatal(err)
		}
		var f Failure
		if err := json.Unmarshal(b, &f); err != nil || f.Reason != r {
			t.Errorf("%s: round trip %s -> %v %v", n, b, f.Reason, err)
		}
		if p, ok := ParseReason(n); !ok || p != r {
			t.Errorf("ParseReason(%q) = %v %v", n, p, ok)
		}
	}
	if len(reasonNames) != int(reasonLast)+1 {
		t.Errorf("%d names for %d reasons", len(reasonNames), int(reasonLast)+1)
	}
}

// Every reason is reachable: some code of vgrid (not a test, not the
// definitions) produces it, or it is one vLLM's output proves.
func TestEveryReasonIsReachable(t *testing.T) {
	var src strings.Builder
	filepath.WalkDir("..", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") && filepath.Base(p) != "failure.go" {
			b, _ := os.ReadFile(p)
			if filepath.Base(filepath.Dir(p)) == "failure" { // this package's own code names them unqualified
				b = []byte(regexp.MustCompile(`\bReason`).ReplaceAllString(string(b), "failure.Reason"))
			}
			src.Write(b)
		}
		return nil
	})
	all := src.String()
	byCause := map[Reason]bool{}
	for _, r := range causes {
		byCause[r] = true
	}
	// Kept only so that stores written by earlier versions read: since
	// flags are checked against the server's --help before any boot, a
	// refused flag stops the run instead (orchestrator.FlagsRefusedError).
	legacy := map[Reason]bool{ReasonUnknownFlag: true}
	for r, n := range reasonNames {
		if r == ReasonNone || byCause[r] || legacy[r] {
			continue
		}
		ident := ""
		for name, v := range constNames {
			if v == r {
				ident = name
			}
		}
		if !strings.Contains(all, "failure."+ident) {
			t.Errorf("reason %s (%s) is produced nowhere", n, ident)
		}
	}
}

// constNames names each reason's constant, for TestEveryReasonIsReachable.
var constNames = map[string]Reason{
	"ReasonNone":          ReasonNone,
	"ReasonFreeMemory":    ReasonFreeMemory,
	"ReasonNoKVMemory":    ReasonNoKVMemory,
	"ReasonKVTooSmall":    ReasonKVTooSmall,
	"ReasonOOM":           ReasonOOM,
	"ReasonEngineDead":    ReasonEngineDead,
	"ReasonBadArgs":       ReasonBadArgs,
	"ReasonBootCrash":     ReasonBootCrash,
	"ReasonExited":        ReasonExited,
	"ReasonCrashLoop":     ReasonCrashLoop,
	"ReasonUnhealthy":     ReasonUnhealthy,
	"ReasonHealthTimeout": ReasonHealthTimeout,
	"ReasonUnreachable":   ReasonUnreachable,
	"ReasonConfigDrift":   ReasonConfigDrift,
	"ReasonImageMissing":  ReasonImageMissing,
	"ReasonNoGPURuntime":  ReasonNoGPURuntime,
	"ReasonCreate":        ReasonCreate,
	"ReasonForeignServer": ReasonForeignServer,
	"ReasonRender":        ReasonRender,
	"ReasonBenchmark":     ReasonBenchmark,
	"ReasonInfeasible":    ReasonInfeasible,
	"ReasonError":         ReasonError,
	"ReasonNCCL":          ReasonNCCL,
	"ReasonModelNotFound": ReasonModelNotFound,
	"ReasonGraphOOM":      ReasonGraphOOM,
	"ReasonQuantization":  ReasonQuantization,
	"ReasonUnknownFlag":   ReasonUnknownFlag,
	"ReasonEngineGone":    ReasonEngineGone,
	"ReasonPruned":        ReasonPruned,
	"ReasonDeadline":      ReasonDeadline,
	"ReasonStalled":       ReasonStalled,
	"ReasonUnschedulable": ReasonUnschedulable,
	"ReasonOOMKilled":     ReasonOOMKilled,
}
