package sim

import (
	"bufio"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"github.com/vgrid/vgrid/vllm"
)

// Noise is the simulator's seeded randomness, shaped like a real vLLM
// server's (docs/sim.md "Noise", sources in testdata/noise/INDEX.md):
//
//   - every scheduler step's duration is multiplied by a log-normal factor
//     of mean 1 and coefficient of variation StepJitter (GPU kernels, host
//     scheduling, Python overhead vary step to step);
//   - every boot multiplies all its steps by one log-normal factor of
//     median 1 and spread BootSpread (CUDA graph capture, memory placement
//     and clocks make one instance a few percent faster or slower than
//     the next, for its whole life).
//
// The noise is a function of Seed, the serving configuration and the
// boot's number: the same seed replays the same boots. Without noise
// (both zero, the default) the simulator is what it always was, and that
// noise-free server is the truth the noisy one scatters around: a
// candidate's true value is what it measures with VLLM_SIM_NOISE=off (the
// median boot and steps at their mean).
type Noise struct {
	StepJitter float64 // VLLM_SIM_STEP_JITTER
	BootSpread float64 // VLLM_SIM_BOOT_SPREAD
	Seed       uint64  // VLLM_SIM_SEED
	// BootsFile (VLLM_SIM_BOOTS_FILE) counts the boots of each
	// configuration across processes, so that the second boot of a
	// candidate draws another offset than the first; without it every
	// boot of a configuration is its first.
	BootsFile string
}

// The levels VLLM_SIM_NOISE=realistic sets (see docs/sim.md for the
// public measurements behind them).
const (
	RealisticStepJitter = 0.05
	RealisticBootSpread = 0.02
)

// On reports whether the simulator draws any noise.
func (n Noise) On() bool { return n.StepJitter > 0 || n.BootSpread > 0 }

// noiseFromGetenv reads VLLM_SIM_NOISE (off, realistic), then the
// levels one by one, which override the preset.
func noiseFromGetenv(getenv func(string) string) (Noise, error) {
	var n Noise
	switch v := getenv("VLLM_SIM_NOISE"); v {
	case "", "off":
	case "realistic":
		n.StepJitter, n.BootSpread = RealisticStepJitter, RealisticBootSpread
	default:
		return n, fmt.Errorf("VLLM_SIM_NOISE=%q: want off or realistic (or set VLLM_SIM_STEP_JITTER and VLLM_SIM_BOOT_SPREAD)", v)
	}
	for name, dst := range map[string]*float64{"VLLM_SIM_STEP_JITTER": &n.StepJitter, "VLLM_SIM_BOOT_SPREAD": &n.BootSpread} {
		if v := getenv(name); v != "" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 || f > 1 {
				return n, fmt.Errorf("%s=%q: want a coefficient of variation between 0 and 1 (0.05 is 5%%)", name, v)
			}
			*dst = f
		}
	}
	if v := getenv("VLLM_SIM_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return n, fmt.Errorf("VLLM_SIM_SEED=%q: want a non-negative integer", v)
		}
		n.Seed = s
	}
	n.BootsFile = getenv("VLLM_SIM_BOOTS_FILE")
	return n, nil
}

// draws is one boot's noise: its offset and the generator of its steps'
// jitter (owned by the scheduler's single goroutine).
type draws struct {
	offset float64
	jitter float64 // log-normal sigma of the step factor
	rng    *rand.Rand
}

// step returns a step's multiplier.
func (d *draws) step() float64 {
	if d == nil {
		return 1
	}
	f := d.offset
	if d.jitter > 0 {
		f *= math.Exp(d.jitter*d.rng.NormFloat64() - d.jitter*d.jitter/2) // mean 1
	}
	return f
}

// boot draws the noise of the boot-th boot of the configuration named by
// key.
func (n Noise) boot(key string, boot uint64) *draws {
	if !n.On() {
		return nil
	}
	h := fnv.New64a()
	h.Write([]byte(key))
	r := rand.New(rand.NewPCG(n.Seed^h.Sum64(), boot))
	d := &draws{offset: 1, jitter: sigmaOf(n.StepJitter), rng: r}
	if n.BootSpread > 0 {
		d.offset = math.Exp(sigmaOf(n.BootSpread) * r.NormFloat64()) // median 1
	}
	return d
}

// sigmaOf is the log-normal sigma whose coefficient of variation is cv.
func sigmaOf(cv float64) float64 { return math.Sqrt(math.Log1p(cv * cv)) }

// noiseKey names a serving configuration for the noise: its flags,
// sorted, without where it listens or its key.
func noiseKey(flags vllm.Flags) string {
	var out []string
	for _, a := range flags {
		switch a.Name {
		case "host", "port", "api-key":
			continue
		}
		out = append(out, a.Name+"="+a.Value())
	}
	slices.Sort(out)
	return strings.Join(out, "\x00")
}

// bootNumber counts this boot of key in the boots file (0 for the first
// boot, and when there is no file): the count of key's earlier lines,
// then a line for this boot, under an exclusive lock so that parallel
// slots number their boots apart. The file is the test's or benchmark's
// own (O_NOFOLLOW: a link planted there is refused).
func (n Noise) bootNumber(key string) (uint64, error) {
	if n.BootsFile == "" {
		return 0, nil
	}
	f, err := openBoots(n.BootsFile)
	if err != nil {
		return 0, fmt.Errorf("VLLM_SIM_BOOTS_FILE: %w", err)
	}
	defer f.Close()
	h := fnv.New64a()
	h.Write([]byte(key))
	id := strconv.FormatUint(h.Sum64(), 16)
	var count uint64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if sc.Text() == id {
			count++
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("VLLM_SIM_BOOTS_FILE: %w", err)
	}
	if _, err := f.Seek(0, 2); err != nil {
		return 0, err
	}
	if _, err := fmt.Fprintln(f, id); err != nil {
		return 0, fmt.Errorf("VLLM_SIM_BOOTS_FILE: %w", err)
	}
	return count, nil
}
