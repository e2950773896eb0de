//go:build linux

package soak

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"github.com/vgrid/vgrid/failure"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pmezard/go-difflib/difflib"
	"github.com/vgrid/vgrid/internal/dockertest"
	"github.com/vgrid/vgrid/orchestrator"
	"github.com/vgrid/vgrid/profiles"
	"github.com/vgrid/vgrid/store"
)

var (
	flagDuration = flag.Duration("soak.duration", 0, "the long form: keep queueing the night's grids and injecting faults for this long (0: the short form, one night, every fault kind once)")
	flagSeed     = flag.Uint64("soak.seed", 1, "the fault schedule's seed (and the search's)")
	flagScale    = flag.String("soak.scale", "0.004", "the simulator's time scale: boots and decoding take this share of real time")
	flagBaseline = flag.Bool("soak.baseline", true, "first run the same night without faults, for the wall-time comparison")
	flagOnly     = flag.String("soak.only", "", "inject only these fault kinds (comma-separated), to chase one")
)

const (
	service   = "vllm-medium-qwen3"
	container = "myia_vllm-medium-qwen3"
)

// TestNight runs a night (the user's Mission 14 grid and a TPE search over
// their profile) through `vgrid serve` on the simulator's image, on a
// Docker engine of its own, injecting the seeded schedule's faults, and
// checks the invariants all along and at the end. The figures are logged
// and written to the test's artifact directory (figures.txt).
func TestNight(t *testing.T) {
	dockertest.NeedRoot(t, "the night soak (mounts, a network namespace, a second dockerd)")
	waitAlone(t)
	img := dockertest.BuildSimImage(t)
	e2 := dockertest.IsolatedEngine(t, img)
	t.Cleanup(func() { // the engine's log, before the engine's cleanup removes it
		if b, err := os.ReadFile(e2.LogFile()); err == nil {
			os.WriteFile(filepath.Join(t.ArtifactDir(), "dockerd-soak.log"), b, 0o644)
		}
	})
	bin := buildVgrid(t)
	seed := *flagSeed

	var faultFree time.Duration
	var baseline []record
	if *flagBaseline {
		w := newWorld(t, bin, img, e2, "baseline")
		start := time.Now()
		w.night(t, nil, time.Time{}, seed)
		faultFree = time.Since(start)
		w.check(t)
		baseline = w.records
		t.Logf("fault-free night: %s, %d trials", faultFree.Round(100*time.Millisecond), w.trials)
	}

	w := newWorld(t, bin, img, e2, "faults")
	var faults []Fault
	var until time.Time
	if *flagDuration > 0 {
		until = time.Now().Add(*flagDuration)
		faults = Plan(seed, *flagDuration, 15*time.Second)
	} else {
		faults = Schedule(seed, len(Kinds), 2*time.Second)
	}
	if *flagOnly != "" {
		var only []Fault
		for _, f := range faults {
			if slices.Contains(strings.Split(*flagOnly, ","), string(f.Kind)) {
				only = append(only, f)
			}
		}
		faults = only
	}
	start := time.Now()
	inj := w.night(t, faults, until, seed)
	wall := time.Since(start)
	w.check(t)

	// Each struck trial's outcome beside its candidate's without faults:
	// the fault-free night's trials, and this night's trials no fault
	// struck.
	struck := map[string]bool{}
	for _, i := range inj {
		if i.Skipped == "" && i.Trial != "" {
			struck[i.Run+"/"+strings.SplitN(i.Trial, ":", 2)[0]] = true
		}
	}
	ref := map[string]map[string]int{}
	for _, rec := range append(slices.Clone(baseline), w.records...) {
		if struck[rec.trial] {
			continue
		}
		if ref[rec.candidate] == nil {
			ref[rec.candidate] = map[string]int{}
		}
		ref[rec.candidate][rec.outcome]++
	}

	n := Night{Seed: seed, Trials: w.trials, Lost: w.lost, Duplicates: w.duplicates, Violations: w.violations, Wall: wall, FaultFree: faultFree, Injections: inj, Differences: Compare(inj, ref), Pairs: *flagDuration > 0}
	if *flagDuration > 0 {
		n.FaultFree = 0 // one fault-free night says nothing of a longer one
	}
	var fig bytes.Buffer
	n.Print(&fig)
	fmt.Fprintln(&fig)
	for _, i := range inj {
		rec := "no progress seen"
		if d := i.Recovery(); d >= 0 {
			rec = "recovered in " + d.Round(10*time.Millisecond).String()
		}
		if i.Skipped != "" {
			rec = "not injected: " + i.Skipped
		}
		if i.AfterEnd {
			rec = "cleared after the runs' end: nothing left to do"
		}
		fmt.Fprintf(&fig, "  %s at %s (%s %s): %s, %s\n", i.Kind, i.Phase, i.Run, i.Trial, i.Outcome, rec)
	}
	t.Logf("\n%s", fig.String())
	os.WriteFile(filepath.Join(t.ArtifactDir(), "figures.txt"), fig.Bytes(), 0o644)
	for _, f := range Summarize(inj) {
		if f.Injected == 0 && (*flagOnly == "" || strings.Contains(*flagOnly, string(f.Kind))) {
			t.Errorf("fault %s was never injected: %v", f.Kind, f.NotInjectedWhy)
		}
		if f.NotRecovered > 0 {
			t.Errorf("fault %s: vgrid made no progress after %d of its %d injections", f.Kind, f.NotRecovered, f.Injected)
		}
	}
	for _, d := range n.Differences {
		if d.Explained == "" {
			t.Errorf("a struck trial ended unlike without faults: %s", d)
		}
	}
}

// waitAlone waits, up to 15 minutes, until no other Go test binary runs
// on this machine: go test ./... runs packages side by side, and on a
// small machine the soak's load (its own dockerd, simulator, daemon)
// would skew the timing-sensitive tests of other packages, and theirs
// the soak's recovery times.
func waitAlone(t *testing.T) {
	deadline := time.Now().Add(15 * time.Minute)
	for {
		others := otherTests()
		if len(others) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Logf("running beside %v after waiting 15 minutes for them", others)
			return
		}
		time.Sleep(2 * time.Second)
	}
}

// otherTests lists the Go test binaries running now, this one excepted.
func otherTests() []string {
	self := os.Getpid()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var out []string
	for _, p := range procs {
		var pid int
		if _, err := fmt.Sscanf(p, "/proc/%d/cmdline", &pid); err != nil || pid == self {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil || len(b) == 0 {
			continue
		}
		argv0, _, _ := strings.Cut(string(b), "\x00")
		if strings.HasSuffix(argv0, ".test") || strings.HasSuffix(argv0, ".test.exe") {
			out = append(out, fmt.Sprintf("%s (pid %d)", filepath.Base(argv0), pid))
		}
	}
	return out
}

func buildVgrid(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "vgrid")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/vgrid")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build vgrid: %v\n%s", err, out)
	}
	return bin
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// world is one night's files, store and daemon: the profile's directory
// is bind-mounted on itself (so that it can be remounted read-only: chmod
// does not stop root) and the store lives on a 64 MiB tmpfs (so that it
// can be filled).
type world struct {
	bin, img string
	e2       *dockertest.Engine2
	dir      string // the profile's directory
	storeDir string // the tmpfs
	original []byte
	d        *daemonProc
	logs     string // the daemon's log

	progress Watch      // what the polls saw, to judge progress after a fault
	pollMu   sync.Mutex // one poll at a time

	mu      sync.Mutex
	runs    []string            // submitted, in order
	state   map[string]runView  // run -> as last seen
	content map[[32]byte][]byte // every profile content seen
	readErr int

	trials, lost, duplicates int
	violations               []string
	records                  []record // every trial's outcome, for the comparison with a fault-free night
}

// record is a trial's final outcome.
type record struct {
	trial     string // run/seq
	candidate string // grid/candidate
	outcome   string
}

func newWorld(t *testing.T, bin, img string, e2 *dockertest.Engine2, name string) *world {
	w := &world{bin: bin, img: img, e2: e2, state: map[string]runView{}, content: map[[32]byte][]byte{}}
	w.dir = t.TempDir()
	w.storeDir = t.TempDir()
	run(t, "mount", "-t", "tmpfs", "-o", "size=64m", "vgrid-soak-"+name, w.storeDir)
	t.Cleanup(func() { exec.Command("umount", "-l", w.storeDir).Run() })
	run(t, "mount", "--bind", w.dir, w.dir)
	t.Cleanup(func() { exec.Command("umount", "-l", w.dir).Run() })

	var err error
	if w.original, err = os.ReadFile("../profiles/testdata/fixtures/medium.yml"); err != nil {
		t.Fatal(err)
	}
	env, _ := os.ReadFile("../profiles/testdata/fixtures/env.example")
	os.WriteFile(filepath.Join(w.dir, "medium.yml"), w.original, 0o644)
	os.WriteFile(filepath.Join(w.dir, ".env"), env, 0o600)
	os.WriteFile(filepath.Join(w.dir, "sim.override.yml"), []byte(fmt.Sprintf(`services:
  %s:
    image: %s
    restart: unless-stopped
    ports: !override
      - "127.0.0.1:5002:5002"
    environment:
      - VLLM_SIM_TIME_SCALE=%s
`, service, img, *flagScale)), 0o644)
	w.logs = filepath.Join(t.ArtifactDir(), "vgrid-serve-"+name+".log")
	// The daemon runs in the engine's network namespace, as vgrid serve
	// runs beside the user's Docker engine; the soak reaches its API there.
	w.d = &daemonProc{e2: e2, bin: bin, store: filepath.Join(w.storeDir, "vgrid.db"), listen: e2.Addr + ":8787", log: w.logs}
	if err := w.d.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.d.stop(syscall.SIGKILL) })
	return w
}

// target is the grids' target: the user's profile with the simulator's
// override, on the soak's own engine.
func (w *world) target() string {
	return fmt.Sprintf(`target:
  driver: compose
  files: [%s, %s]
  env_file: %s
  project: myia_vllm
  service: %s
  api_key_env: VLLM_API_KEY_MEDIUM
  gpus: off
  docker_host: %s
`, filepath.Join(w.dir, "medium.yml"), filepath.Join(w.dir, "sim.override.yml"), filepath.Join(w.dir, ".env"), service, w.e2.Host)
}

const bench = `benchmark:
  scenarios: [kv-cache]
  requests: 10
timeouts: {ready: 2m, bench: 5m, stall: 3s, engine: 2m}
`

// grids are the night: the user's Mission 14 comparison (12 configs), then
// a TPE search over the same profile that restores the original at its
// end: the crown and the restore both meet faults.
func (w *world) grids(t *testing.T, seed uint64) []string {
	src, err := os.ReadFile("../examples/mission14.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m := string(src)
	i, j := strings.Index(m, "target:"), strings.Index(m, "space:")
	k := strings.Index(m, "benchmark:")
	m = m[:i] + w.target() + m[j:k] + bench + "constraints:\n  - errors == 0\nobjective:\n  maximize: kv-cache.acceleration\ntie: prefer lower gpu-memory-utilization\nend: crown\n"
	tpe := "name: soak-tpe\n" + w.target() + `space:
  axes:
    gpu-memory-utilization: ["0.85", "0.9"]
    enable-prefix-caching: [true, false]
    max-num-seqs: [32, 64, 128]
` + fmt.Sprintf("search: {strategy: tpe, max_trials: 6, startup: 3, seed: %d}\n", seed) + bench +
		"constraints: [\"errors == 0\"]\nobjective: {maximize: kv-cache.acceleration}\nend: restore\n"
	return []string{m, tpe}
}

// night queues the grids (again and again until until, in the long
// form), watches, injects the faults, and waits for every run to end.
//
// The long form keeps each covering fault (a kind at a phase) pending
// until it is placed: one whose phase no trial reached is tried again
// later, up to 3 times, and a kind not yet injected is tried at its other
// phases, while grids are queued again; the night lasts at most twice its
// duration for them.
func (w *world) night(t *testing.T, faults []Fault, until time.Time, seed uint64) []Injection {
	stop := make(chan struct{})
	var watched sync.WaitGroup
	watched.Add(1)
	go func() { defer watched.Done(); w.watch(stop) }()
	defer func() { close(stop); watched.Wait() }()

	long := !until.IsZero()
	start := time.Now()
	hardStop := until.Add(until.Sub(start))
	w.submit(t, seed)
	more := func() bool { // long form: keep a night going while faults wait
		if long && time.Now().Before(hardStop) {
			w.submit(t, seed)
			return true
		}
		return false
	}
	var inj []Injection
	injected := map[Kind]bool{}
	tries := map[Fault]int{}
	queue := slices.Clone(faults)
	for len(queue) > 0 {
		f := queue[0]
		queue = queue[1:]
		if long {
			if time.Now().After(until) && !f.Cover && injected[f.Kind] {
				continue // a drawn fault past the night's end
			}
			if time.Now().After(hardStop) {
				inj = append(inj, Injection{Fault: f, Skipped: "the night ran out (twice -soak.duration) before a try at " + f.Phase})
				continue
			}
			if d := time.Until(start.Add(f.After)); d > 0 {
				w.sleep(t, d, more)
			}
		}
		in := w.inject(t, f, more)
		inj = append(inj, in)
		if in.Skipped == "" {
			injected[f.Kind] = true
			continue
		}
		if !long || !f.Cover && injected[f.Kind] {
			continue
		}
		pair := Fault{Kind: f.Kind, Phase: f.Phase}
		tries[pair]++
		switch {
		case tries[pair] < 3:
			queue = append(queue, f) // again, later in the night
		case !injected[f.Kind]:
			for _, p := range PhasesOf(f.Kind) { // the kind at a phase not yet exhausted
				if tries[Fault{Kind: f.Kind, Phase: p}] < 3 {
					g := f
					g.Phase, g.Cover = p, false
					queue = append(queue, g)
					break
				}
			}
		}
	}
	for {
		if w.ended() {
			if long && time.Now().Before(until) {
				w.submit(t, seed)
				continue
			}
			break
		}
		if w.d.exited() {
			t.Fatalf("the daemon exited on its own:\n%s", tail(w.logs))
		}
		time.Sleep(200 * time.Millisecond)
	}
	w.outcomes(inj)
	return inj
}

// submit queues the night's grids.
func (w *world) submit(t *testing.T, seed uint64) {
	for _, g := range w.grids(t, seed) {
		id, err := w.d.submit(g)
		if err != nil {
			t.Fatalf("submit: %v\n%s", err, tail(w.logs))
		}
		w.mu.Lock()
		w.runs = append(w.runs, id)
		w.mu.Unlock()
	}
}

// sleep waits d, queueing the grids again (more) whenever the runs end.
func (w *world) sleep(t *testing.T, d time.Duration, more func() bool) {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if w.ended() && !more() {
			return
		}
	}
}

// watch polls the profile (every 20 ms) and the runs (every 40 ms) until
// stop: every distinct content of the profile is kept for the end's
// check, and a trial's phase going backwards from a final phase is a
// violation.
func (w *world) watch(stop <-chan struct{}) {
	profile := filepath.Join(w.dir, "medium.yml")
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		b, err := os.ReadFile(profile)
		w.mu.Lock()
		if err != nil {
			w.readErr++
			w.violations = append(w.violations, fmt.Sprintf("the profile could not be read: %v", err))
		} else if _, ok := w.content[sha256.Sum256(b)]; !ok {
			w.content[sha256.Sum256(b)] = b
		}
		w.mu.Unlock()
		if n%2 == 0 {
			w.poll()
		}
	}
}

// poll reads the runs not yet ended, as last seen, through the API. Polls
// are one at a time (the watcher's and an injector's): an answer read
// before another must not be recorded after it.
func (w *world) poll() {
	w.pollMu.Lock()
	defer w.pollMu.Unlock()
	w.mu.Lock()
	var live []string
	for _, id := range w.runs {
		if !finalState(w.state[id].state) {
			live = append(live, id)
		}
	}
	w.mu.Unlock()
	for _, id := range live {
		run, trials, err := w.d.show(id)
		if err != nil {
			continue // the daemon is down, or restarting
		}
		w.observe(id, run, trials)
	}
}

func finalState(s string) bool { return s == "done" || s == "failed" || s == "cancelled" }

// runView is a run as the watcher last saw it.
type runView struct {
	state  string
	run    *orchestrator.Run
	trials []orchestrator.Trial
}

// crowning reports a run whose trials have all ended, applying its end
// policy (the champion deployed, or the original restored).
func (v runView) crowning() bool {
	if v.run == nil || v.run.State != orchestrator.RunRunning || len(v.trials) == 0 {
		return false
	}
	booted := 0
	for _, tr := range v.trials {
		if !tr.Phase.Final() {
			return false
		}
		if tr.Phase != orchestrator.PhaseSkipped {
			booted++
		}
	}
	if v.run.Grid.Search.Adaptive() {
		return booted >= v.run.Grid.Search.MaxTrials
	}
	return len(v.trials) == len(v.run.Grid.Space.Candidates)
}

func (w *world) observe(id string, run *orchestrator.Run, trials []orchestrator.Trial) {
	seen := make([]TrialState, len(trials))
	for i, tr := range trials {
		seen[i] = TrialState{Seq: tr.Seq, Phase: tr.Phase.String(), Final: tr.Phase.Final(), Attempts: tr.Attempts, Name: tr.Candidate.Name}
	}
	bad := w.progress.Observe(time.Now(), id, run.State.String(), seen)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.state[id] = runView{run.State.String(), run, trials}
	w.violations = append(w.violations, bad...)
}

// ended reports whether every submitted run has ended, as the watcher
// last saw them.
func (w *world) ended() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, id := range w.runs {
		if !finalState(w.state[id].state) {
			return false
		}
	}
	return true
}

// inject waits for a trial (or, for Crowning, a run) in the fault's
// phase, injects it, and waits for vgrid's next progress after the fault
// cleared. When the runs end first, the long form queues the grids again
// (more) and goes on waiting; the short form gives up.
func (w *world) inject(t *testing.T, f Fault, more func() bool) Injection {
	in := Injection{Fault: f}
	time.Sleep(f.Gap)
	const patience = 3 * time.Minute
	deadline := time.Now().Add(patience)
	var crownFrom time.Time
	for in.Run == "" {
		if time.Now().After(deadline) {
			in.Skipped = fmt.Sprintf("no %s reached %s within %s", map[bool]string{true: "run", false: "trial"}[f.Phase == Crowning], f.Phase, patience)
			return in
		}
		if w.ended() && !more() {
			in.Skipped = "the runs ended before a " + f.Phase
			return in
		}
		w.poll() // fresher than the watcher's: some phases last a few polls
		w.mu.Lock()
		for _, id := range w.runs {
			v := w.state[id]
			if in.Run != "" {
				break
			}
			if f.Phase == Crowning {
				if v.crowning() {
					in.Run, in.Trial = id, "crown"
					for _, tr := range v.trials { // the crown began as the last trial ended
						if n := len(tr.Phases); n > 0 && tr.Phases[n-1].At.After(crownFrom) {
							crownFrom = tr.Phases[n-1].At
						}
					}
				}
				continue
			}
			for _, tr := range v.trials {
				if tr.Phase.String() == f.Phase {
					in.Run, in.Trial = id, fmt.Sprintf("%d:%s", tr.Seq, tr.Candidate.Name)
					in.Candidate = v.run.Grid.Name + "/" + tr.Candidate.Name
					break
				}
			}
		}
		w.mu.Unlock()
		if in.Run == "" {
			time.Sleep(10 * time.Millisecond)
		}
	}
	in.At = time.Now()
	// The server's faults are signals to its process, sent from here as
	// the kernel or a crash would: `docker kill` marks the container as
	// stopped by hand, and its restart policy then does not restart it.
	// A server between two containers (one removed, the next not yet
	// started) has no process: the fault is not injected, and the long
	// form tries it again later.
	signal := func(sig syscall.Signal) bool {
		pid, out, err := w.serverPid()
		if f.Phase == Crowning { // the crown replaces the server: strike the champion's (or the original's) once it runs
			for wait := time.Now().Add(10 * time.Second); (err != nil || pid <= 0 || w.startedBefore(crownFrom)) && time.Now().Before(wait); time.Sleep(20 * time.Millisecond) {
				w.poll()
				if w.runEnded(in.Run) {
					in.Skipped = "the crown started no server (the champion already ran) or ended before it ran"
					return false
				}
				pid, out, err = w.serverPid()
			}
		}
		if err != nil || pid <= 0 {
			in.Skipped = fmt.Sprintf("the server had no process to signal at %s (%s)", f.Phase, strings.TrimSpace(string(out)+" "+fmt.Sprint(err)))
			return false
		}
		if err := syscall.Kill(pid, sig); err != nil {
			in.Skipped = fmt.Sprintf("the server's process %d at %s: %v", pid, f.Phase, err)
			return false
		}
		return true
	}
	switch f.Kind {
	case EngineDeath, ContainerRestart, DecodeStall, OOMKill:
		sig := map[Kind]syscall.Signal{EngineDeath: syscall.SIGUSR1, ContainerRestart: syscall.SIGUSR1, DecodeStall: syscall.SIGUSR2, OOMKill: syscall.SIGKILL}[f.Kind]
		if !signal(sig) {
			return in
		}
	case DockerRestart:
		if err := w.e2.Stop(); err != nil {
			t.Fatalf("stop the engine: %v", err)
		}
		time.Sleep(f.Hold)
		if err := w.e2.Start(); err != nil {
			t.Fatalf("start the engine: %v", err)
		}
		if exec.Command("ip", "link", "show", "docker0").Run() != nil {
			t.Fatal("restarting the soak's engine removed the first engine's docker0")
		}
	case DaemonKill, DaemonTerm:
		sig := syscall.SIGKILL
		if f.Kind == DaemonTerm {
			sig = syscall.SIGTERM
		}
		if err := w.d.stop(sig); err != nil {
			w.violations = append(w.violations, fmt.Sprintf("%s: %v", f.Kind, err))
		}
		time.Sleep(f.Hold)
		if err := w.d.start(); err != nil {
			t.Fatalf("restart the daemon: %v\n%s", err, tail(w.logs))
		}
	case StoreFull:
		fill(t, filepath.Join(w.storeDir, "filler"))
		time.Sleep(f.Hold)
		os.Remove(filepath.Join(w.storeDir, "filler"))
	case ProfileReadOnly:
		// The kernel refuses (EBUSY) while a file there is open for
		// writing (vgrid writing a rendering or a backup): the folder turns
		// read-only as soon as none is, a few milliseconds later.
		for try := 0; ; try++ {
			out, err := exec.Command("mount", "-o", "remount,bind,ro", w.dir).CombinedOutput()
			if err == nil {
				break
			}
			if try == 500 || !strings.Contains(string(out), "busy") {
				t.Fatalf("mount -o remount,bind,ro %s: %v\n%s", w.dir, err, out)
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(f.Hold)
		run(t, "mount", "-o", "remount,bind,rw", w.dir)
	}
	in.Cleared = time.Now()
	switch f.Kind {
	case EngineDeath, DecodeStall, OOMKill, ContainerRestart:
		in.At = in.Cleared // a signal: delivered once docker kill returned
	}
	// Progress is what vgrid did after the fault: a trial's next phase or
	// attempt, a run started or ended. Two minutes without any, while
	// runs remain, is a stall. When every run had ended before the fault
	// cleared, the long form queues the grids again and judges vgrid on
	// them (the next run must start); the short form has nothing left to
	// judge: the fault came after vgrid's last step.
	for wait := time.Now().Add(2 * time.Minute); time.Now().Before(wait); time.Sleep(50 * time.Millisecond) {
		if at, ok := w.progress.ProgressAfter(in.Cleared); ok {
			in.Recovered = at
			break
		}
		if w.ended() {
			w.poll()
			if at, ok := w.progress.ProgressAfter(in.Cleared); ok {
				in.Recovered = at
				break
			}
			if !more() {
				in.Recovered, in.AfterEnd = in.Cleared, true
				break
			}
		}
	}
	return in
}

// serverPid is the vLLM container's process, as its engine reports it.
func (w *world) serverPid() (int, string, error) {
	out, err := exec.Command("docker", "-H", w.e2.Host, "inspect", "-f", "{{.State.Pid}}", container).Output()
	pid, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return pid, string(out), err
}

// startedBefore reports whether the vLLM container (re)started before t,
// or cannot be read.
func (w *world) startedBefore(t time.Time) bool {
	out, err := exec.Command("docker", "-H", w.e2.Host, "inspect", "-f", "{{.State.StartedAt}}", container).Output()
	if err != nil {
		return true
	}
	at, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(out)))
	return err != nil || at.Before(t)
}

// runEnded reports whether run id has ended, as last seen.
func (w *world) runEnded(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return finalState(w.state[id].state)
}

// fill writes until the file system is full.
func fill(t *testing.T, path string) {
	f, err := os.Create(path)
	if err != nil {
		t.Fatalf("fill the store's file system: %v", err)
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i)
	}
	for {
		if _, err := f.Write(chunk); err != nil {
			break
		}
	}
	for {
		if _, err := f.Write(chunk[:4096]); err != nil {
			return
		}
	}
}

// outcomes says how each struck trial (or crowned run) ended.
func (w *world) outcomes(inj []Injection) {
	for i := range inj {
		if inj[i].Skipped != "" {
			continue
		}
		run, trials, err := w.d.show(inj[i].Run)
		if err != nil {
			continue
		}
		if inj[i].Trial == "crown" {
			inj[i].Outcome = fmt.Sprintf("run %s, left running: %s", run.State, run.EndAction)
			if run.EndAction != "champion" && run.EndAction != "original" {
				w.violate("%s while run %s was crowning: the run ended %s, left running %q: %s", inj[i].Kind, run.ID, run.State, run.EndAction, run.Error)
			}
			continue
		}
		var seq int
		fmt.Sscanf(inj[i].Trial, "%d:", &seq)
		for _, tr := range trials {
			if tr.Seq != seq {
				continue
			}
			inj[i].Final = tr.Outcome()
			inj[i].Outcome = tr.Outcome()
			if tr.Attempts > 1 {
				inj[i].Outcome = "redone, " + inj[i].Outcome
			}
			// A fault aimed at the server that strikes as the trial's
			// requests have all ended leaves it measured: say whether its
			// samples are intact, or carry the errors that rule it out.
			if k := inj[i].Kind; (k == EngineDeath || k == DecodeStall || k == OOMKill || k == ContainerRestart) && tr.Phase == orchestrator.PhaseDone {
				inj[i].Outcome += w.requestErrors(inj[i].Run, tr.Seq)
			}
		}
	}
}

// requestErrors says how a measured trial's stored requests ended.
func (w *world) requestErrors(run string, seq int) string {
	st, err := store.OpenReadOnly(w.d.store)
	if err != nil {
		return ""
	}
	defer st.Close()
	reps, err := st.Reports(run, seq)
	if err != nil {
		return ""
	}
	n, failed := 0, 0
	for _, rep := range reps {
		for _, sc := range rep.Scenarios {
			for _, r := range sc.Results {
				n++
				if !r.OK() {
					failed++
				}
			}
		}
	}
	if failed == 0 {
		return fmt.Sprintf(" (struck after its last request: %d samples intact)", n)
	}
	return fmt.Sprintf(" (%d of %d requests failed: errors == 0 rules it out)", failed, n)
}

// check stops the daemon and checks the invariants on what it left: the
// store, the profile, the service, and the reports.
func (w *world) check(t *testing.T) {
	t.Helper()
	// The reports as the daemon served them at the end ...
	printed := map[string]string{}
	for _, id := range w.runs {
		md, err := w.d.get("/v1/runs/" + id + "/report?format=md")
		if err != nil {
			t.Fatalf("report %s: %v", id, err)
		}
		printed[id] = md
	}
	if err := w.d.stop(syscall.SIGTERM); err != nil {
		t.Errorf("stopping the daemon at the end: %v", err)
	}
	// ... equal the reports rebuilt from the store.
	for _, id := range w.runs {
		out, err := exec.Command(w.bin, "report", id, "--store", w.d.store, "--format", "md").Output()
		if err != nil {
			t.Errorf("vgrid report %s: %v", id, err)
		} else if string(out) != printed[id] {
			w.violate("run %s: the report rebuilt from the store differs from the one served at the end:\n%s", id, diffLines(printed[id], string(out)))
		}
	}
	st, err := store.OpenReadOnly(w.d.store)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	renderings := map[[32]byte]string{sha256.Sum256(w.original): "the original"}
	var last *orchestrator.Run
	var lastTrials []*orchestrator.Trial
	var lastOriginal []byte
	var doc *profiles.Document
	for _, id := range w.runs {
		r, err := st.GetRun(id)
		if err != nil {
			t.Fatal(err)
		}
		// A run's original is the profile as the run found it (its backup):
		// the previous run's champion, when that one was crowned. Its
		// candidates are rendered from it.
		original, err := os.ReadFile(r.Backup)
		if err != nil {
			w.violate("run %s: its backup %q: %v", id, r.Backup, err)
			continue
		}
		renderings[sha256.Sum256(original)] = "the original of run " + id
		if doc, err = profiles.ParseDocument("medium.yml", original); err != nil {
			t.Fatal(err)
		}
		trials, err := st.Trials(id)
		if err != nil {
			t.Fatal(err)
		}
		if r.State != orchestrator.RunDone && r.State != orchestrator.RunFailed {
			w.violate("run %s (%s) ended %s: %s", id, r.Grid.Name, r.State, r.Error)
		}
		want := len(r.Grid.Space.Candidates)
		if r.Grid.Search.Adaptive() {
			want = r.Grid.Search.MaxTrials
		}
		booted := 0
		for i, tr := range trials {
			w.trials++
			if tr.Seq != i {
				w.violate("run %s: trial %d found at %d (a trial lost)", id, tr.Seq, i)
			}
			if !tr.Phase.Final() {
				w.lost++
				w.violate("run %s trial %d (%s) did not end: %s", id, tr.Seq, tr.Candidate.Name, tr.Phase)
			}
			if tr.Phase != orchestrator.PhaseDone && (tr.Failure == nil || tr.Failure.Reason == failure.ReasonNone) {
				w.violate("run %s trial %d (%s) ended %s without a reason", id, tr.Seq, tr.Candidate.Name, tr.Phase)
			}
			if tr.Phase != orchestrator.PhaseSkipped {
				booted++
			}
			if b, _, err := doc.Render(service, tr.Candidate.Settings); err == nil {
				renderings[sha256.Sum256(b)] = tr.Candidate.Name
			}
			w.duplicates += w.samples(st, r, tr)
			w.records = append(w.records, record{trial: fmt.Sprintf("%s/%d", id, tr.Seq), candidate: r.Grid.Name + "/" + tr.Candidate.Name, outcome: tr.Outcome()})
		}
		if r.Grid.Search.Adaptive() && booted < want || !r.Grid.Search.Adaptive() && len(trials) != want {
			w.lost += want - booted
			w.violate("run %s (%s): %d trials (%d booted), want %d", id, r.Grid.Name, len(trials), booted, want)
		}
		last, lastTrials, lastOriginal = r, trials, original
	}
	// Every content the profile had was an original or a rendering.
	w.mu.Lock()
	var strange [][]byte
	for h, b := range w.content {
		if _, ok := renderings[h]; !ok {
			strange = append(strange, b)
		}
	}
	w.mu.Unlock()
	for _, b := range strange {
		w.violate("the profile held a content that is neither a run's original nor a candidate's rendering:\n%s", diffLines(string(w.original), string(b)))
	}
	if last == nil {
		t.Fatalf("no run could be checked: %v", w.violations)
	}
	// It ends on the last run's champion (crowned) or its original.
	now, _ := os.ReadFile(filepath.Join(w.dir, "medium.yml"))
	want := lastOriginal
	if last.EndAction == "champion" && last.Champion != nil && last.Champion.Champion >= 0 {
		want, _, _ = doc.Render(service, lastTrials[last.Champion.Champion].Candidate.Settings)
	}
	if !bytes.Equal(now, want) {
		w.violate("the profile at the end is not the last run's %s:\n%s", last.EndAction, diffLines(string(want), string(now)))
	}
	// The service runs at the end.
	state, err := exec.Command("docker", "-H", w.e2.Host, "inspect", "-f", "{{.State.Status}} {{index .Config.Labels \"io.vgrid.run\"}}", container).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(state), "running ") {
		w.violate("the vLLM service at the end: %s %v", state, err)
	}
	for _, v := range w.violations {
		t.Error(v)
	}
}

// samples checks a trial's stored reports: each scenario's requests are
// counted once (their sequence numbers distinct, no more than planned),
// and a measured trial has every repetition, complete. It returns the
// number of samples counted twice.
func (w *world) samples(st *store.Store, r *orchestrator.Run, tr *orchestrator.Trial) int {
	reps, err := st.Reports(r.ID, tr.Seq)
	if err != nil {
		w.violate("run %s trial %d: reports: %v", r.ID, tr.Seq, err)
		return 0
	}
	cfg := r.Grid.Benchmark.Resolve()
	dup := 0
	if tr.Phase == orchestrator.PhaseDone && len(reps) != r.Grid.Benchmark.Repetitions {
		w.violate("run %s trial %d (%s) done with %d reports, want %d", r.ID, tr.Seq, tr.Candidate.Name, len(reps), r.Grid.Benchmark.Repetitions)
	}
	for _, rep := range reps {
		for _, sc := range rep.Scenarios {
			seen := map[int]bool{}
			for _, res := range sc.Results {
				if seen[res.Seq] {
					dup++
				}
				seen[res.Seq] = true
			}
			total := cfg.Total(sc.Name)
			if len(sc.Results) > total {
				dup += len(sc.Results) - total
			}
			if tr.Phase == orchestrator.PhaseDone && len(sc.Results) != total {
				w.violate("run %s trial %d (%s) done with %d samples of %s, want %d", r.ID, tr.Seq, tr.Candidate.Name, len(sc.Results), sc.Name, total)
			}
		}
	}
	if dup > 0 {
		w.violate("run %s trial %d (%s): %d samples counted twice", r.ID, tr.Seq, tr.Candidate.Name, dup)
	}
	return dup
}

func (w *world) violate(format string, a ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.violations = append(w.violations, fmt.Sprintf(format, a...))
}

// diffLines is a unified diff of what was wanted and what was found.
func diffLines(want, got string) string {
	d, _ := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{A: difflib.SplitLines(want), B: difflib.SplitLines(got), FromFile: "want", ToFile: "got", Context: 1})
	return d
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// daemonProc is `vgrid serve` as a process that the soak kills and starts.
type daemonProc struct {
	e2                      *dockertest.Engine2
	bin, store, listen, log string
	token                   string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

func (d *daemonProc) url() string { return "http://" + d.listen }

func (d *daemonProc) start() error {
	logf, err := os.OpenFile(d.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "=== soak: vgrid serve starts at %s\n", time.Now().Format(time.RFC3339Nano))
	// Its own network namespace, reached by the test alone: plain HTTP on
	// that address is what --insecure-listen allows.
	cmd := d.e2.Command(d.bin, "serve", "--listen", d.listen, "--insecure-listen", "--store", d.store, "--log-format", "json")
	cmd.Env = append(os.Environ(), "VLLM_API_KEY_MEDIUM=soak-key")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	d.mu.Lock()
	d.cmd, d.done = cmd, done
	d.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("vgrid serve exited at start")
		default:
		}
		if resp, err := http.Get(d.url() + "/healthz"); err == nil {
			resp.Body.Close()
			b, err := os.ReadFile(filepath.Join(filepath.Dir(d.store), "token"))
			if err != nil {
				return err
			}
			d.token = strings.TrimSpace(string(b))
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("vgrid serve did not answer within 30 s")
}

// stop sends sig and waits for the process to exit (60 s, then SIGKILL).
func (d *daemonProc) stop(sig syscall.Signal) error {
	d.mu.Lock()
	cmd, done := d.cmd, d.done
	d.mu.Unlock()
	if cmd == nil {
		return nil
	}
	cmd.Process.Signal(sig)
	select {
	case <-done:
		return nil
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("vgrid serve did not exit within 60 s of %s", sig)
	}
}

func (d *daemonProc) exited() bool {
	d.mu.Lock()
	done := d.done
	d.mu.Unlock()
	select {
	case <-done:
		return true
	default:
		return false
	}
}

func (d *daemonProc) do(method, path, body string) (int, []byte, error) {
	req, _ := http.NewRequest(method, d.url()+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+d.token)
	c := http.Client{Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func (d *daemonProc) get(path string) (string, error) {
	code, b, err := d.do("GET", path, "")
	if err != nil {
		return "", err
	}
	if code != 200 {
		return "", fmt.Errorf("GET %s: %d %s", path, code, b)
	}
	return string(b), nil
}

func (d *daemonProc) submit(grid string) (string, error) {
	code, b, err := d.do("POST", "/v1/runs?name=night.yaml", grid)
	if err != nil {
		return "", err
	}
	if code != 202 {
		return "", fmt.Errorf("POST /v1/runs: %d %s", code, b)
	}
	var r struct{ ID string }
	return r.ID, json.Unmarshal(b, &r)
}

func (d *daemonProc) show(id string) (*orchestrator.Run, []orchestrator.Trial, error) {
	b, err := d.get("/v1/runs/" + id)
	if err != nil {
		return nil, nil, err
	}
	var v struct {
		Run    *orchestrator.Run    `json:"run"`
		Trials []orchestrator.Trial `json:"trials"`
	}
	if err := json.Unmarshal([]byte(b), &v); err != nil {
		return nil, nil, err
	}
	if v.Run == nil {
		return nil, nil, fmt.Errorf("GET /v1/runs/%s: no run in %.200s", id, b)
	}
	return v.Run, v.Trials, nil
}
