package sim

import (
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vgrid/vgrid/vllm"
)

// The noise's two parts have the documented shape: over many boots the
// offset's median is 1 and its spread the asked one; within a boot the
// step factor's mean is 1 and its coefficient of variation the asked one.
// The same seed, configuration and boot number draw the same noise.
func TestNoiseShape(t *testing.T) {
	n := Noise{StepJitter: 0.05, BootSpread: 0.02, Seed: 7}
	var logs []float64
	for b := range uint64(4000) {
		logs = append(logs, math.Log(n.boot("max-num-seqs=64", b).offset))
	}
	mean, sd := meanSD(logs)
	if math.Abs(mean) > 0.002 || math.Abs(sd-sigmaOf(0.02))/sigmaOf(0.02) > 0.05 {
		t.Errorf("boot offsets: log mean %.4f (want 0), log sd %.4f (want %.4f)", mean, sd, sigmaOf(0.02))
	}
	d := Noise{StepJitter: 0.05, Seed: 7}.boot("k", 0)
	var steps []float64
	for range 40000 {
		steps = append(steps, d.step())
	}
	mean, sd = meanSD(steps)
	if math.Abs(mean-1) > 0.002 || math.Abs(sd-0.05) > 0.002 {
		t.Errorf("step factors: mean %.4f (want 1), sd %.4f (want 0.05)", mean, sd)
	}
	a, b := n.boot("k", 3), n.boot("k", 3)
	if a.offset != b.offset || a.step() != b.step() {
		t.Error("the same seed, configuration and boot drew different noise")
	}
	if n.boot("k", 3).offset == n.boot("k", 4).offset || n.boot("k", 3).offset == n.boot("other", 3).offset {
		t.Error("another boot or another configuration drew the same offset")
	}
	if (Noise{}).boot("k", 0).step() != 1 {
		t.Error("without noise a step is not its noise-free duration")
	}
}

func meanSD(xs []float64) (float64, float64) {
	m := 0.0
	for _, x := range xs {
		m += x
	}
	m /= float64(len(xs))
	v := 0.0
	for _, x := range xs {
		v += (x - m) * (x - m)
	}
	return m, math.Sqrt(v / float64(len(xs)-1))
}

func TestNoiseFromGetenv(t *testing.T) {
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	if n, err := noiseFromGetenv(env()); err != nil || n.On() {
		t.Errorf("no variables: %+v, %v; want no noise", n, err)
	}
	n, err := noiseFromGetenv(env("VLLM_SIM_NOISE", "realistic", "VLLM_SIM_SEED", "12", "VLLM_SIM_BOOT_SPREAD", "0.04"))
	if err != nil || n.StepJitter != RealisticStepJitter || n.BootSpread != 0.04 || n.Seed != 12 {
		t.Errorf("realistic with a wider boot spread: %+v, %v", n, err)
	}
	for _, c := range [][]string{
		{"VLLM_SIM_NOISE", "loud"}, {"VLLM_SIM_STEP_JITTER", "-0.1"}, {"VLLM_SIM_BOOT_SPREAD", "3"}, {"VLLM_SIM_SEED", "x"},
	} {
		if _, err := noiseFromGetenv(env(c...)); err == nil || !strings.Contains(err.Error(), c[0]) {
			t.Errorf("%s=%s: %v, want an error naming the variable", c[0], c[1], err)
		}
	}
}

// The boots file numbers each configuration's boots apart, whatever the
// port; a link planted in its place is refused.
func TestBootNumbers(t *testing.T) {
	dir := t.TempDir()
	n := Noise{BootSpread: 0.02, BootsFile: filepath.Join(dir, "boots")}
	key := func(port string) string {
		c, err := vllm.ParseServeArgs([]string{"--model", "Qwen/Qwen3-0.6B", "--port", port, "--max-num-seqs", "64"})
		if err != nil {
			t.Fatal(err)
		}
		return noiseKey(c.Flags)
	}
	var got []uint64
	for _, k := range []string{key("8000"), key("8001"), "other", key("8002")} {
		b, err := n.bootNumber(k)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, b)
	}
	if want := []uint64{0, 1, 0, 2}; !equalU(got, want) {
		t.Errorf("boot numbers %v, want %v", got, want)
	}
	link := filepath.Join(dir, "planted")
	if err := os.Symlink(filepath.Join(dir, "victim"), link); err != nil {
		t.Fatal(err)
	}
	if _, err := (Noise{BootSpread: 0.02, BootsFile: link}).bootNumber("k"); err == nil {
		t.Error("a boots file that is a link was followed")
	}
	if _, err := os.Stat(filepath.Join(dir, "victim")); err == nil {
		t.Error("the link's target was created")
	}
}

func equalU(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A served request takes its boot's offset: decoding on a boot drawn
// slow takes longer, by the drawn factor, than on the noise-free server.
func TestBootOffsetSlowsServing(t *testing.T) {
	args := append(smallArgs, "--max-num-seqs", "4")
	env := map[string]string{"VLLM_SIM_TIME_SCALE": "1", "VLLM_SIM_ITL_MS": "20"}
	decode := func(s *simServer) time.Duration {
		r := post(t, s.url, "", chatBody("m", "hello", 40))
		return r.arrivals[len(r.arrivals)-1].Sub(r.arrivals[0])
	}
	plain := decode(startSim(t, args, env))
	// A seed whose first boot is slow by more than 20% at a spread of 0.3.
	c, _ := vllm.ParseServeArgs(args)
	var seed uint64
	for seed = 1; (Noise{BootSpread: 0.3, Seed: seed}).boot(noiseKey(c.Flags), 0).offset < 1.2; seed++ {
	}
	want := (Noise{BootSpread: 0.3, Seed: seed}).boot(noiseKey(c.Flags), 0).offset
	env["VLLM_SIM_BOOT_SPREAD"], env["VLLM_SIM_SEED"] = "0.3", strconv.FormatUint(seed, 10)
	s := startSim(t, args, env)
	if s.e.noise == nil || s.e.noise.offset != want {
		t.Fatalf("the engine drew %+v, want offset %.3f", s.e.noise, want)
	}
	slow := decode(s)
	if ratio := float64(slow) / float64(plain); math.Abs(ratio-want)/want > 0.1 {
		t.Errorf("decoding took %v on the boot drawn %.3fx, %v noise-free: ratio %.3f", slow, want, plain, ratio)
	}
}
