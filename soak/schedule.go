package soak

import (
	"math/rand/v2"
	"time"
)

// Kind is a kind of fault the soak injects.
type Kind string

const (
	EngineDeath      Kind = "engine_death"      // the vLLM engine dies mid-benchmark (sim: SIGUSR1)
	DecodeStall      Kind = "decode_stall"      // decoding stops, /health stays 200 (sim: SIGUSR2)
	OOMKill          Kind = "oom_kill"          // the server's process gets SIGKILL, as from the OOM killer
	ContainerRestart Kind = "container_restart" // the engine's start crashes; restart: unless-stopped restarts it
	DockerRestart    Kind = "docker_restart"    // the Docker engine is stopped and started (dockerd SIGTERM, start)
	DaemonKill       Kind = "daemon_sigkill"    // vgrid serve killed with SIGKILL, then started again
	DaemonTerm       Kind = "daemon_sigterm"    // vgrid serve stopped with SIGTERM mid-trial, then started again
	StoreFull        Kind = "store_full"        // the store's file system full for a while, then freed
	ProfileReadOnly  Kind = "profile_read_only" // the profile's directory read-only for a while
)

// Kinds lists every kind, in the order the figures print them.
var Kinds = []Kind{EngineDeath, DecodeStall, OOMKill, ContainerRestart, DockerRestart, DaemonKill, DaemonTerm, StoreFull, ProfileReadOnly}

// The phases a fault waits for: a trial's (as the API names them), and
// Crowning, a run whose trials have all ended while its end policy (the
// champion deployed, or the original restored) is applied.
const (
	Deploying    = "deploying"
	WaitingReady = "waiting-ready"
	Verifying    = "verifying-config"
	Benchmarking = "benchmarking"
	Crowning     = "crowning"
)

// Phases lists the phases in the order the figures print them.
var Phases = []string{Deploying, WaitingReady, Verifying, Benchmarking, Crowning}

// phases is every phase each kind can strike: the soak waits for a trial
// (or a run, for Crowning) in one of them before it injects. A kind is
// left out of a phase where it means nothing: a decode stall outside a
// benchmark, a crashed start once the engine runs, a server's signal
// before its container exists.
var phases = map[Kind][]string{
	EngineDeath:      {Verifying, Benchmarking},
	DecodeStall:      {Benchmarking},
	OOMKill:          {WaitingReady, Verifying, Benchmarking, Crowning},
	ContainerRestart: {WaitingReady, Crowning},
	DockerRestart:    {Deploying, WaitingReady, Verifying, Benchmarking, Crowning},
	DaemonKill:       {Deploying, WaitingReady, Verifying, Benchmarking, Crowning},
	DaemonTerm:       {Deploying, WaitingReady, Verifying, Benchmarking, Crowning},
	StoreFull:        {Deploying, WaitingReady, Benchmarking, Crowning},
	ProfileReadOnly:  {Benchmarking, Crowning}, // held past the trial's end: the next write (a trial's or the crown's) meets it
}

// PhasesOf lists the phases kind k can strike.
func PhasesOf(k Kind) []string { return phases[k] }

// Pairs lists every (kind, phase) the long form covers, in Kinds' order.
func Pairs() []Fault {
	var out []Fault
	for _, k := range Kinds {
		for _, p := range phases[k] {
			out = append(out, Fault{Kind: k, Phase: p})
		}
	}
	return out
}

// Fault is one injection of the schedule.
type Fault struct {
	Kind  Kind
	Phase string        // the phase it waits for
	After time.Duration // long form: not before this long into the night
	Gap   time.Duration // quiet time before it starts waiting for its phase
	Hold  time.Duration // how long a lasting fault lasts (disk full, read-only, engine or daemon down)
	Cover bool          // long form: a (kind, phase) it must cover; kept pending until placed
}

// Schedule draws the short form's n faults from seed. The first
// len(Kinds) are every kind once, in a random order, each at a phase
// drawn from its own; the rest are drawn uniformly. The same seed gives
// the same schedule.
func Schedule(seed uint64, n int, gap time.Duration) []Fault {
	r := rand.New(rand.NewPCG(seed, 0x50a6))
	var kinds []Kind
	for len(kinds) < n {
		if len(kinds) < len(Kinds) {
			kinds = append(kinds, Kinds...)
			r.Shuffle(len(Kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
			continue
		}
		kinds = append(kinds, Kinds[r.IntN(len(Kinds))])
	}
	kinds = kinds[:n]
	out := make([]Fault, n)
	for i, k := range kinds {
		ph := shortPhases[k]
		out[i] = draw(r, k, ph[r.IntN(len(ph))], gap)
	}
	return out
}

// shortPhases are the phases the short form draws from: trial phases that
// last long enough to be caught by a poll on a loaded machine (its seeds
// drew from these before the long form covered every phase, and still do).
var shortPhases = map[Kind][]string{
	EngineDeath:      {Benchmarking},
	DecodeStall:      {Benchmarking},
	OOMKill:          {WaitingReady, Benchmarking},
	ContainerRestart: {WaitingReady},
	DockerRestart:    {WaitingReady, Benchmarking},
	DaemonKill:       {Deploying, WaitingReady, Benchmarking},
	DaemonTerm:       {WaitingReady, Benchmarking},
	StoreFull:        {WaitingReady, Benchmarking},
	ProfileReadOnly:  {Benchmarking},
}

// Plan is the long form's schedule for a night of length d: every (kind,
// phase) pair once, in a random order (Cover set), then pairs drawn
// uniformly until about one fault per every; each is placed at an even
// share of d (After), so that the faults are spread over the whole night.
// The same seed gives the same plan.
func Plan(seed uint64, d, every time.Duration) []Fault {
	r := rand.New(rand.NewPCG(seed, 0x50a7))
	pairs := Pairs()
	r.Shuffle(len(pairs), func(i, j int) { pairs[i], pairs[j] = pairs[j], pairs[i] })
	n := max(len(pairs), int(d/every))
	out := make([]Fault, 0, n)
	for i := range n {
		var f Fault
		if i < len(pairs) {
			f = draw(r, pairs[i].Kind, pairs[i].Phase, 2*time.Second)
			f.Cover = true
		} else {
			p := pairs[r.IntN(len(pairs))]
			f = draw(r, p.Kind, p.Phase, 2*time.Second)
		}
		out = append(out, f)
	}
	// Covering pairs and drawn ones alternate over the night, so that the
	// pairs are not all met in its first minutes.
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	for i := range out {
		out[i].After = time.Duration(i) * d / time.Duration(n)
	}
	return out
}

func draw(r *rand.Rand, k Kind, phase string, gap time.Duration) Fault {
	f := Fault{Kind: k, Phase: phase, Gap: time.Duration(r.Float64() * float64(gap))}
	switch k {
	case StoreFull, ProfileReadOnly:
		f.Hold = 3*time.Second + time.Duration(r.IntN(4000))*time.Millisecond
	case DockerRestart, DaemonKill, DaemonTerm:
		f.Hold = time.Duration(r.IntN(2000)) * time.Millisecond
	}
	return f
}
