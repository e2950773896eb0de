package main

import (
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gonum.org/v1/gonum/stat"

	"github.com/vgrid/vgrid/orchestrator"
	"github.com/vgrid/vgrid/store"
)

var (
	truthSeeds    = flag.Int("truth.seeds", 20, "BenchmarkTruth: seeds per grid and mode")
	truthFirst    = flag.Int("truth.first", 1, "BenchmarkTruth: the first seed (runs seeds first..first+seeds-1; to finish a record that was cut short)")
	truthGrids    = flag.String("truth.grids", "quickstart32,mission14", "BenchmarkTruth: which grids (comma-separated)")
	truthModes    = flag.String("truth.modes", "today,precision,confirm", "BenchmarkTruth: which modes (today, precision, confirm: precision and confirm, confirm-only)")
	truthMeasure  = flag.Bool("truth.measure", false, "BenchmarkTruth: measure the truth files (testdata/truth/NAME.csv) again")
	truthReps     = flag.Int("truth.reps", 3, "BenchmarkTruth -truth.measure: repetitions of each candidate")
	truthRecordTo = flag.String("truth.record", "", "BenchmarkTruth: append each run's outcome to this CSV file as it ends")
	truthJudge    = flag.String("truth.judge", "", "BenchmarkTruth: run nothing; judge the runs a -truth.record file keeps against the truth files")
	truthPar      = flag.Int("truth.parallel", 1, "BenchmarkTruth: runs at once (each its own simulator and store; a run uses about a sixth of a core)")
)

// The grids the truth benchmark judges vgrid on, both on the simulator
// with the quickstart's target (examples/quickstart.yaml):
//
//   - quickstart32: the quickstart's space extended to 32 candidates
//     (gpu-memory-utilization x prefix caching x max-num-seqs x
//     max-num-batched-tokens), every candidate run;
//   - mission14: the user's 12 Mission 14 candidates
//     (examples/mission14.yaml) on the simulator instead of their
//     compose profile, the kv-cache scenario (their objective's);
//   - blocks: block-size x gpu-memory-utilization (6 candidates), whose
//     truth has steps of a few percent instead of a plateau.
//
// All maximize kv-cache.acceleration, as the user's grids do.
func truthGrid(t testing.TB, name string, port int) string {
	src, err := os.ReadFile("../../examples/quickstart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(src), "8011", strconv.Itoa(port))
	// Serving at the simulator's own speed, so that the machine's timing
	// noise (a fraction of a millisecond) is small beside the simulated
	// one; boots 50 times faster (3.3 s).
	s = strings.Replace(s, `VLLM_SIM_TIME_SCALE: "0.02"       # a 165 s boot takes 3.3 s`, `VLLM_SIM_TIME_SCALE: "1"
    VLLM_SIM_BOOT_SLOWDOWN: "0.02"`, 1)
	s = strings.Replace(s, "name: quickstart", "name: "+name, 1)
	i, j := strings.Index(s, "space:\n"), strings.Index(s, "benchmark:\n")
	switch name {
	case "quickstart32":
		s = s[:i] + `space:
  axes:
    gpu-memory-utilization: [0.85, 0.95]
    enable-prefix-caching: [true, false]
    max-num-seqs: [8, 16, 64, 128]
    max-num-batched-tokens: [2048, 8192]
` + s[j:]
		s = strings.Replace(s, "scenarios: [kv-cache, load]", "scenarios: [kv-cache]", 1)
	case "blocks":
		// A harder grid than the two above, whose true values are not
		// a plateau: a prefix hit recomputes the part of the shared
		// prefix that does not fill a whole block, so the block size
		// sets the hit's time to first token by a few percent.
		s = s[:i] + `space:
  axes:
    block-size: [8, 16, 32]
    gpu-memory-utilization: [0.85, 0.9]
` + s[j:]
		s = strings.Replace(s, "scenarios: [kv-cache, load]", "scenarios: [kv-cache]", 1)
	case "mission14":
		m, err := os.ReadFile("../../examples/mission14.yaml")
		if err != nil {
			t.Fatal(err)
		}
		ms := string(m)
		space := ms[strings.Index(ms, "space:\n"):strings.Index(ms, "benchmark:\n")]
		s = s[:i] + space + s[j:]
		s = strings.Replace(s, "scenarios: [kv-cache, load]", "scenarios: [kv-cache]", 1)
	default:
		t.Fatalf("no truth grid %q", name)
	}
	return s
}

// truthMode adds a mode's settings to a grid and the simulator's noise.
func truthMode(grid, mode string, seed int, boots string) (string, error) {
	noise := fmt.Sprintf("    VLLM_SIM_NOISE: realistic\n    VLLM_SIM_SEED: \"%d\"\n    VLLM_SIM_BOOTS_FILE: %s\n", seed, boots)
	grid = strings.Replace(grid, "  env:\n", "  env:\n"+noise, 1)
	switch mode {
	case "precision":
		grid = strings.Replace(grid, "benchmark:\n", "benchmark:\n  precision: {objective: 3%, max_repetitions: 8}\n", 1)
		grid += "search: {prune: true}\n"
	case "confirm":
		grid = strings.Replace(grid, "benchmark:\n", "benchmark:\n  precision: {objective: 3%, max_repetitions: 8}\n", 1)
		grid += "search: {prune: true}\nconfirm: {top: 3, boots: 2}\n"
	case "confirm-only":
		grid += "confirm: {top: 3, boots: 2}\n"
	case "today":
	default: // confirm-only-TxB: confirm {top: T, boots: B} without precision
		var top, boots int
		if _, err := fmt.Sscanf(mode, "confirm-only-%dx%d", &top, &boots); err != nil {
			return "", fmt.Errorf("truth mode %q: want today, precision, confirm, confirm-only or confirm-only-TOPxBOOTS", mode)
		}
		grid += fmt.Sprintf("confirm: {top: %d, boots: %d}\n", top, boots)
	}
	return grid, nil
}

// A truth file: each candidate's noise-free value (the mean of its
// repetitions on the simulator without noise) and that mean's 95% half
// width.
type truthFile struct {
	value, half map[string]float64
	best        float64
	bestName    string
}

func readTruth(t testing.TB, name string) *truthFile {
	rows := readCSV(t, "testdata/truth/"+name+".csv")
	tf := &truthFile{value: map[string]float64{}, half: map[string]float64{}, best: math.Inf(-1)}
	for _, row := range rows[1:] {
		if row[1] == "" {
			continue
		}
		v, _ := strconv.ParseFloat(row[1], 64)
		h, _ := strconv.ParseFloat(row[3], 64)
		tf.value[row[0]], tf.half[row[0]] = v, h
		if v > tf.best {
			tf.best, tf.bestName = v, row[0]
		}
	}
	return tf
}

// truthScale is the simulator's time scale when it measures the truth.
const truthScale = 5.0

// measureTruth runs every candidate of the grid on the noise-free
// simulator, repetitions times, and writes the truth file.
func measureTruth(b *testing.B, name string, reps int) {
	grid := truthGrid(b, name, freePortT(b))
	grid = strings.Replace(grid, "benchmark:\n", fmt.Sprintf("benchmark:\n  repetitions: %d\n", reps), 1)
	// Five times slower than the runs: the machine's part of a request
	// (HTTP, tokenizing a 2,000-token prompt: a millisecond or two that
	// grows with the machine's load) is then a fifth of what it is in a
	// run, under 1% of a prefix hit's time to first token, so that the
	// truth is the simulator's model, not the machine's load at the hour
	// it was measured.
	grid = strings.Replace(grid, `VLLM_SIM_TIME_SCALE: "1"
    VLLM_SIM_BOOT_SLOWDOWN: "0.02"`, fmt.Sprintf(`VLLM_SIM_TIME_SCALE: "%g"
    VLLM_SIM_BOOT_SLOWDOWN: "%g"`, truthScale, 0.02/truthScale), 1)
	dir := b.TempDir()
	gf, db := filepath.Join(dir, name+".yaml"), filepath.Join(dir, "truth.db")
	os.WriteFile(gf, []byte(grid), 0o644)
	start := time.Now()
	if code, out, errs := vgrid(b, "run", gf, "--store", db, "--quiet"); code != 0 {
		b.Fatalf("truth run: code %d\n%s\n%s", code, out, errs)
	}
	st, run, trials := latestRun(b, db)
	defer st.Close()
	scored, err := orchestrator.Score(st, run, trials)
	if err != nil {
		b.Fatal(err)
	}
	metric := run.Grid.Objective.Maximize
	path := "testdata/truth/" + name + ".csv"
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintf(f, "# The truth of %s (cmd/vgrid/truth_test.go's grid): every candidate on the\n# simulator without noise (VLLM_SIM_NOISE=off), at VLLM_SIM_TIME_SCALE %g (the runs: 1),\n# %d repetitions, run %s (%s, %s),\n# written by go test ./cmd/vgrid -run '^$' -bench Truth -benchtime 1x -truth.measure -truth.grids %s\n# truth: the mean of %s over the repetitions; half_pct: its 95%% half-width in percent.\n",
		name, truthScale, reps, run.ID, run.Created.Format("2006-01-02"), time.Since(start).Round(time.Second), name, metric)
	w := csv.NewWriter(f)
	w.Write([]string{"candidate", "truth", "repetitions", "half_pct", "outcome"})
	for _, s := range scored {
		x := s.Reps[metric]
		if !s.Done || len(x) < 2 || s.Values["errors"] != 0 {
			w.Write([]string{s.Name, "", strconv.Itoa(len(x)), "", s.Outcome})
			continue
		}
		m, sd := stat.MeanStdDev(x, nil)
		half := 100 * 1.96 * sd / math.Sqrt(float64(len(x))) / m
		w.Write([]string{s.Name, strconv.FormatFloat(m, 'g', 8, 64), strconv.Itoa(len(x)), strconv.FormatFloat(half, 'f', 2, 64), "measured"})
	}
	w.Flush()
	b.Logf("%s: truth measured in %s, written to %s", name, time.Since(start).Round(time.Second), path)
}

// BenchmarkTruth judges vgrid's champion against the simulator's truth:
// on each grid, for each seed, with the simulator's noise at realistic
// levels (sim/noise.go: 5% step jitter, 2% boot spread), a run in each
// mode — today's (one repetition, no confirm), precision
// (benchmark.precision 3%, at most 8 repetitions, with search.prune),
// confirm (precision and confirm {top: 3, boots: 2}), confirm-only — and
// the champion's true value (testdata/truth/GRID.csv, the noise-free
// simulator's) against the true best. It prints, per grid and mode, the
// share of runs within 2% of the true best and the benchmark time spent,
// against today's; docs/search.md keeps the table.
//
//	go test ./cmd/vgrid -run '^$' -bench Truth -benchtime 1x -timeout 8h \
//	    [-truth.seeds 20] [-truth.grids mission14] [-truth.modes today,confirm] \
//	    [-truth.parallel 10] [-truth.record runs.csv] [-truth.judge runs.csv] [-truth.measure [-truth.reps 3]]
//
// A run is mostly the simulator sleeping through its simulated steps, so
// -truth.parallel runs several at once on a small machine; -truth.record
// keeps each run as it ends and -truth.judge judges a record again
// without running anything.
func BenchmarkTruth(b *testing.B) {
	var judged map[string][]truthResult
	if *truthJudge != "" {
		judged = readRecord(b, *truthJudge)
	}
	var record *truthRecord
	if *truthRecordTo != "" && *truthJudge == "" {
		record = openRecord(b, *truthRecordTo)
		defer record.close()
	}
	for _, name := range strings.Split(*truthGrids, ",") {
		if *truthMeasure {
			measureTruth(b, name, *truthReps)
		}
		var tf *truthFile
		if _, err := os.Stat("testdata/truth/" + name + ".csv"); err == nil || judged != nil {
			tf = readTruth(b, name)
			b.Logf("%s: true best %s %.3f; within 2%%: %s", name, tf.bestName, tf.best, strings.Join(tf.within(2), ", "))
		} else if record == nil {
			b.Fatalf("%s: no truth file (testdata/truth/%s.csv): measure it (-truth.measure), or record the runs (-truth.record FILE) to judge them once it is", name, name)
		}
		var todayBench time.Duration
		for _, mode := range strings.Split(*truthModes, ",") {
			if mode == "" {
				continue // -truth.modes "" with -truth.measure: the truth alone
			}
			var results []truthResult
			if judged != nil {
				results = judged[name+" "+mode]
				if len(results) == 0 {
					continue
				}
			} else {
				results = truthRuns(b, name, mode, record)
			}
			if tf == nil {
				continue // recorded, to be judged once the truth is measured
			}
			bench, _ := tf.judge(b, name, mode, results, todayBench)
			if mode == "today" {
				todayBench = bench
			}
		}
	}
}

// truthRuns runs the seeds of a grid in a mode, -truth.parallel at once,
// each recorded as it ends.
func truthRuns(b *testing.B, name, mode string, record *truthRecord) []truthResult {
	results := make([]truthResult, *truthSeeds)
	errs := make([]error, *truthSeeds)
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(*truthPar, 1))
	for i := range *truthSeeds {
		runSeed := truthRun(b, name, mode, *truthFirst+i)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			r, err := runSeed()
			results[i], errs[i] = r, err
			if err == nil {
				errs[i] = record.add(r)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
	return results
}

// judge prints each run's champion against the truth and the grid's row
// of the table; it returns the row and the runs' mean benchmark time
// (todayBench: today's, to compare with).
func (tf *truthFile) judge(b testing.TB, name, mode string, results []truthResult, todayBench time.Duration) (time.Duration, string) {
	within := 0
	var gaps []float64
	var bench, wall time.Duration
	for _, r := range results {
		v, ok := tf.value[r.champion]
		gap := 100.0 // a run without a champion, or one that failed
		if ok {
			gap = 100 * (tf.best - v) / tf.best
		}
		if gap <= 2 {
			within++
		}
		gaps = append(gaps, gap)
		bench += r.bench
		wall += r.wall
		b.Logf("%s %s seed %d: champion %s (true %.3f, gap %.1f%%; %s), %d trials, benchmark %s, run %s",
			name, mode, r.seed, r.champion, v, gap, r.verdict, r.trials, r.bench.Round(time.Second), r.wall.Round(time.Second))
	}
	slices.Sort(gaps)
	// What the runs said: separated, shown equivalent, or left open.
	said := map[string]int{}
	for _, r := range results {
		kind, _, _ := strings.Cut(r.verdict, ":")
		if kind == "" {
			kind = "none"
		}
		said[kind]++
	}
	var verdicts []string
	for _, k := range []string{"beats", "equivalent", "open", "none"} {
		if said[k] > 0 {
			verdicts = append(verdicts, fmt.Sprintf("%s %d", k, said[k]))
		}
	}
	n := len(results)
	perRun := bench / time.Duration(n)
	more := ""
	if todayBench > 0 {
		more = fmt.Sprintf(", %+.0f%% against today's", 100*(float64(perRun)/float64(todayBench)-1))
	}
	row := fmt.Sprintf("| %s | %s | %d/%d | %.1f%% | %.1f%% | %s%s | %s | %s |", name, mode, within, n, gaps[n/2], gaps[n-1],
		perRun.Round(time.Second), more, (wall / time.Duration(n)).Round(time.Second), strings.Join(verdicts, ", "))
	b.Log(row)
	return perRun, row
}

// A truth record keeps every run's outcome as it ends, a CSV line each
// (grid, mode, seed, champion, trials, benchmark seconds, wall seconds),
// so that hours of runs can be judged again (-truth.judge) against a
// truth measured anew, and nothing is lost to an interrupted benchmark.
type truthRecord struct {
	mu sync.Mutex
	f  *os.File
	w  *csv.Writer
}

func openRecord(b testing.TB, path string) *truthRecord {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	return &truthRecord{f: f, w: csv.NewWriter(f)}
}

func (r *truthRecord) add(t truthResult) error {
	fmt.Fprintf(os.Stderr, "truth: %s %s seed %d: champion %s, benchmark %s, run %s\n", t.grid, t.mode, t.seed, t.champion, t.bench.Round(time.Second), t.wall.Round(time.Second))
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.w.Write([]string{t.grid, t.mode, strconv.Itoa(t.seed), t.champion, strconv.Itoa(t.trials),
		strconv.FormatFloat(t.bench.Seconds(), 'f', 1, 64), strconv.FormatFloat(t.wall.Seconds(), 'f', 1, 64), t.verdict})
	r.w.Flush()
	return r.w.Error()
}

func (r *truthRecord) close() { r.f.Close() }

// readRecord reads a truth record: the runs of each "grid mode", by seed.
func readRecord(b testing.TB, path string) map[string][]truthResult {
	out := map[string][]truthResult{}
	for i, row := range readCSV(b, path) {
		if len(row) != 8 {
			b.Fatalf("%s: record %d has %d fields, want 8 (grid, mode, seed, champion, trials, benchmark_s, wall_s, verdict)", path, i+1, len(row))
		}
		seed, err1 := strconv.Atoi(row[2])
		trials, err2 := strconv.Atoi(row[4])
		bs, err3 := strconv.ParseFloat(row[5], 64)
		ws, err4 := strconv.ParseFloat(row[6], 64)
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			b.Fatalf("%s: record %d: %v", path, i+1, err)
		}
		key := row[0] + " " + row[1]
		out[key] = append(out[key], truthResult{grid: row[0], mode: row[1], seed: seed, champion: row[3], trials: trials,
			bench: time.Duration(bs * float64(time.Second)), wall: time.Duration(ws * float64(time.Second)), verdict: row[7]})
	}
	for _, rs := range out {
		slices.SortFunc(rs, func(a, b truthResult) int { return a.seed - b.seed })
	}
	return out
}

// within names the candidates within pct of the true best.
func (tf *truthFile) within(pct float64) []string {
	var out []string
	for n, v := range tf.value {
		if 100*(tf.best-v)/tf.best <= pct {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

type truthResult struct {
	grid, mode, champion string
	seed, trials         int
	bench, wall          time.Duration
	// verdict is what the run said of its champion: "beats" (separated
	// from every other candidate), "equivalent:K" (K candidates shown
	// equivalent, the tie rule chose), "open:K" (crowned on its point
	// estimate, K contenders neither beaten nor shown equivalent); "" when
	// the run crowned nobody (judged "none").
	verdict string
}

// truthRun prepares a run of the grid in a mode with the seed's noise
// (a fresh store, the simulator on a free port) and returns the function
// that runs it through vgrid run, safe to call from any goroutine.
func truthRun(b *testing.B, name, mode string, seed int) func() (truthResult, error) {
	dir := b.TempDir()
	grid, err := truthMode(truthGrid(b, name, freePortT(b)), mode, seed, filepath.Join(dir, "boots"))
	if err != nil {
		b.Fatal(err)
	}
	gf, db := filepath.Join(dir, name+".yaml"), filepath.Join(dir, "run.db")
	if err := os.WriteFile(gf, []byte(grid), 0o644); err != nil {
		b.Fatal(err)
	}
	return func() (truthResult, error) {
		start := time.Now()
		if code, out, errs := vgrid(b, "run", gf, "--store", db, "--quiet"); code != 0 {
			return truthResult{}, fmt.Errorf("%s %s seed %d: code %d\n%s\n%s", name, mode, seed, code, out, errs)
		}
		wall := time.Since(start)
		st, err := store.OpenReadOnly(db)
		if err != nil {
			return truthResult{}, err
		}
		defer st.Close()
		run, err := st.GetRun("latest")
		if err != nil {
			return truthResult{}, err
		}
		trials, err := st.Trials(run.ID)
		if err != nil {
			return truthResult{}, err
		}
		r := truthResult{grid: name, mode: mode, seed: seed, trials: len(trials), wall: wall}
		for _, t := range trials {
			r.bench += t.Timing().Bench
		}
		if v := run.Champion; v != nil {
			r.champion = v.Name
			switch {
			case len(v.Equivalent) > 0:
				r.verdict = fmt.Sprintf("equivalent:%d", len(v.Equivalent))
			case len(v.Contenders) > 1:
				r.verdict = fmt.Sprintf("open:%d", len(v.Contenders)-1)
			default:
				r.verdict = "beats"
			}
		}
		return r, nil
	}
}

// The record keeps what the judge needs, and the judge counts a run
// without a champion as a miss.
func TestTruthRecordJudged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runs.csv")
	rec := openRecord(t, path)
	runs := []truthResult{
		{grid: "g", mode: "today", seed: 1, champion: "a", trials: 3, bench: 10 * time.Second, wall: 12 * time.Second, verdict: "open:1"},
		{grid: "g", mode: "today", seed: 2, champion: "b", trials: 3, bench: 10 * time.Second, wall: 12 * time.Second, verdict: "beats"},
		{grid: "g", mode: "confirm", seed: 2, champion: "", trials: 5, bench: 30 * time.Second, wall: 33 * time.Second},
		{grid: "g", mode: "confirm", seed: 1, champion: "a", trials: 5, bench: 10 * time.Second, wall: 13 * time.Second, verdict: "equivalent:2"},
	}
	for _, r := range runs {
		if err := rec.add(r); err != nil {
			t.Fatal(err)
		}
	}
	rec.close()
	got := readRecord(t, path)
	if len(got["g today"]) != 2 || len(got["g confirm"]) != 2 || got["g confirm"][0].seed != 1 || got["g confirm"][1].bench != 30*time.Second {
		t.Fatalf("record read back: %+v", got)
	}
	tf := &truthFile{value: map[string]float64{"a": 10, "b": 9.7}, best: 10, bestName: "a"}
	bench, row := tf.judge(t, "g", "today", got["g today"], 0)
	if want := "| g | today | 1/2 | 3.0% | 3.0% | 10s | 12s | beats 1, open 1 |"; row != want || bench != 10*time.Second {
		t.Errorf("today: %q, want %q (bench %s)", row, want, bench)
	}
	_, row = tf.judge(t, "g", "confirm", got["g confirm"], bench)
	if want := "| g | confirm | 1/2 | 100.0% | 100.0% | 20s, +100% against today's | 23s | equivalent 1, none 1 |"; row != want {
		t.Errorf("confirm: %q, want %q", row, want)
	}
	if _, err := truthMode("env:\n", "confirm-only-3", 1, "x"); err == nil {
		t.Error("mode confirm-only-3 accepted")
	}
	if g, err := truthMode("  env:\nbenchmark:\n", "confirm-only-2x1", 1, "x"); err != nil || !strings.Contains(g, "confirm: {top: 2, boots: 1}") {
		t.Errorf("confirm-only-2x1: %v\n%s", err, g)
	}
}
