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
	OOMKill          Kind = "oom_kill"          // the container is killed as the OOM killer does (docker kill -s KILL)
	ContainerRestart Kind = "container_restart" // the engine's start crashes; restart: unless-stopped restarts it
	DockerRestart    Kind = "docker_restart"    // the Docker engine is stopped and started (dockerd SIGTERM, start)
	DaemonKill       Kind = "daemon_sigkill"    // vgrid serve killed with SIGKILL, then started again
	DaemonTerm       Kind = "daemon_sigterm"    // vgrid serve stopped with SIGTERM mid-trial, then started again
	StoreFull        Kind = "store_full"        // the store's file system full for a while, then freed
	ProfileReadOnly  Kind = "profile_read_only" // the profile's directory read-only for a while
)

// Kinds lists every kind, in the order the figures print them.
var Kinds = []Kind{EngineDeath, DecodeStall, OOMKill, ContainerRestart, DockerRestart, DaemonKill, DaemonTerm, StoreFull, ProfileReadOnly}

// phases is where in a trial each kind may strike: the soak waits for a
// trial in one of them (drawn from the seed) before it injects.
var phases = map[Kind][]string{
	EngineDeath:      {"benchmarking"},
	DecodeStall:      {"benchmarking"},
	OOMKill:          {"waiting-ready", "benchmarking"},
	ContainerRestart: {"waiting-ready"},
	DockerRestart:    {"waiting-ready", "benchmarking"},
	DaemonKill:       {"deploying", "waiting-ready", "benchmarking"},
	DaemonTerm:       {"waiting-ready", "benchmarking"},
	StoreFull:        {"waiting-ready", "benchmarking"},
	ProfileReadOnly:  {"benchmarking"}, // held past the trial's end: the next trial's write meets it
}

// Fault is one injection of the schedule.
type Fault struct {
	Kind  Kind
	Phase string        // the trial phase it waits for
	Gap   time.Duration // quiet time before it starts waiting for that phase
	Hold  time.Duration // how long a lasting fault lasts (disk full, read-only, engine or daemon down)
}

// Schedule draws n faults from seed. The first len(Kinds) are every kind
// once, in a random order (so that even a short soak injects each); the
// rest are drawn uniformly. The same seed gives the same schedule.
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
		ph := phases[k]
		out[i] = Fault{Kind: k, Phase: ph[r.IntN(len(ph))], Gap: time.Duration(r.Float64() * float64(gap))}
		switch k {
		case StoreFull, ProfileReadOnly:
			out[i].Hold = 3*time.Second + time.Duration(r.IntN(4000))*time.Millisecond
		case DockerRestart, DaemonKill, DaemonTerm:
			out[i].Hold = time.Duration(r.IntN(2000)) * time.Millisecond
		}
	}
	return out
}
