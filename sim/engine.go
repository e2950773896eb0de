package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vgrid/vgrid/vllm"
)

// Env is the simulator's environment (VLLM_SIM_* variables).
type Env struct {
	TimeScale   float64 // VLLM_SIM_TIME_SCALE: multiplies every simulated duration (default 1)
	GPUs        []vllm.GPU
	Arch        vllm.Arch
	PrefillMsPT float64 // VLLM_SIM_PREFILL_MS_PER_TOKEN: per uncached prompt token (default 0.15)
	BaseMs      float64 // VLLM_SIM_BASE_MS: fixed cost before the first token (default 20)
	ITLMs       float64 // VLLM_SIM_ITL_MS: decode step with one running request (default 25)
	ITLGrowth   float64 // VLLM_SIM_ITL_GROWTH: extra decode step time per additional running request, as a fraction (default 0.02)

	// Fault injection (off unless set).
	DieAfterRequests   int     // VLLM_SIM_DIE_AFTER_REQUESTS: the engine dies after N finished requests
	DieAfterSeconds    float64 // VLLM_SIM_DIE_AFTER_SECONDS: ... or N wall seconds after it is ready
	StallAfterRequests int     // VLLM_SIM_STALL_AFTER_REQUESTS: decoding stops after N requests, /health stays 200
	BootSlowdown       float64 // VLLM_SIM_BOOT_SLOWDOWN: multiplies boot durations (default 1)

	// Noise: seeded step jitter and boot offset (noise.go); none by
	// default.
	Noise Noise

	// The vLLM release played (VLLM_SIM_VERSION, default DefaultVersion):
	// metric names, the reasoning field, the help's shape.
	Personality Personality
}

// EnvFromGetenv reads the VLLM_SIM_* variables for a config.
func EnvFromGetenv(c *vllm.Config, getenv func(string) string) (Env, error) {
	e := Env{TimeScale: 1, PrefillMsPT: 0.15, BaseMs: 20, ITLMs: 25, ITLGrowth: 0.02}
	var err error
	if e.Personality, err = PersonalityOf(getenv("VLLM_SIM_VERSION")); err != nil {
		return e, err
	}
	for name, dst := range map[string]*float64{"VLLM_SIM_TIME_SCALE": &e.TimeScale, "VLLM_SIM_PREFILL_MS_PER_TOKEN": &e.PrefillMsPT,
		"VLLM_SIM_BASE_MS": &e.BaseMs, "VLLM_SIM_ITL_MS": &e.ITLMs, "VLLM_SIM_ITL_GROWTH": &e.ITLGrowth} {
		if v := getenv(name); v != "" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 {
				return e, fmt.Errorf("%s=%q: want a non-negative number", name, v)
			}
			*dst = f
		}
	}
	if e.Noise, err = noiseFromGetenv(getenv); err != nil {
		return e, err
	}
	e.BootSlowdown = 1
	for name, dst := range map[string]*float64{"VLLM_SIM_DIE_AFTER_SECONDS": &e.DieAfterSeconds, "VLLM_SIM_BOOT_SLOWDOWN": &e.BootSlowdown} {
		if v := getenv(name); v != "" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 {
				return e, fmt.Errorf("%s=%q: want a non-negative number", name, v)
			}
			*dst = f
		}
	}
	for name, dst := range map[string]*int{"VLLM_SIM_DIE_AFTER_REQUESTS": &e.DieAfterRequests, "VLLM_SIM_STALL_AFTER_REQUESTS": &e.StallAfterRequests} {
		if v := getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return e, fmt.Errorf("%s=%q: want a non-negative integer", name, v)
			}
			*dst = n
		}
	}
	n := max(c.TP, 1)
	if v := getenv("VLLM_SIM_GPU_COUNT"); v != "" {
		if k, err := strconv.Atoi(v); err == nil && k > 0 {
			n = k
		}
	}
	if e.GPUs, err = vllm.ParseGPUs(n, getenv("VLLM_SIM_GPU_MEMORY_MIB"), getenv("VLLM_SIM_GPU_USED_MIB"), getenv("VLLM_SIM_GPU_USED_GROWTH_MIB")); err != nil {
		return e, err
	}
	if e.Arch, err = vllm.LookupArch(c.Model, getenv("VLLM_SIM_MODEL_ARCH")); err != nil {
		return e, err
	}
	return e, nil
}

func (e Env) scaled(seconds float64) time.Duration {
	return time.Duration(seconds * e.TimeScale * float64(time.Second))
}

func (e Env) bootScaled(seconds float64) time.Duration { return e.scaled(seconds * e.BootSlowdown) }

// Engine is a booted simulated engine.
type Engine struct {
	Config *vllm.Config
	Env    Env
	Mem    *vllm.Memory

	cacheMu sync.Mutex
	cache   *PrefixCache
	noise   *draws // nil without noise

	sched        *scheduler
	promptTokens atomic.Int64
	generated    atomic.Int64
	preemptions  atomic.Int64
	completed    atomic.Int64
	reg          *prometheus.Registry
	ttft         prometheus.Histogram

	log     io.Writer
	dieOnce sync.Once
	dead    chan struct{} // closed when the engine dies
	stalled atomic.Bool
}

// EngineDeadError is the engine core dying while serving.
type EngineDeadError struct{ Cause string }

func (e *EngineDeadError) Error() string {
	return "vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue. See stack trace (above) for the root cause."
}

// die kills the engine: /health turns 503, requests fail, the server exits.
func (e *Engine) die(cause string) {
	e.dieOnce.Do(func() {
		logf(e.log, "ERROR", "EngineCore encountered a fatal error: %s", cause)
		fmt.Fprintln(e.log, (&EngineDeadError{}).Error())
		close(e.dead)
	})
}

// Die kills the engine as EngineCore's fatal error does (an injected
// fault): /health turns 503, requests fail, the server exits with 1.
func (e *Engine) Die(cause string) { e.die("injected: " + cause) }

// Stall stops decoding for good while /health keeps answering 200 (an
// injected fault: a hung collective, a wedged scheduler).
func (e *Engine) Stall() {
	if !e.stalled.Swap(true) {
		logf(e.log, "WARNING", "injected: decoding stalled; /health still answers 200")
	}
}

// finished counts a finished request and fires the injected faults.
func (e *Engine) finished() {
	n := int(e.completed.Add(1))
	if e.Env.DieAfterRequests > 0 && n >= e.Env.DieAfterRequests {
		e.die(fmt.Sprintf("injected: engine death after %d requests (VLLM_SIM_DIE_AFTER_REQUESTS)", n))
	}
	if e.Env.StallAfterRequests > 0 && n >= e.Env.StallAfterRequests {
		e.stalled.Store(true)
	}
}

func logf(w io.Writer, level, format string, a ...any) {
	fmt.Fprintf(w, "%s %s [vllm-sim] %s\n", level, time.Now().Format("01-02 15:04:05"), fmt.Sprintf(format, a...))
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Boot runs the startup sequence, logging vLLM's phases to w with simulated
// durations, and returns the engine or the vllm.BootError that ends it.
func Boot(ctx context.Context, c *vllm.Config, env Env, w io.Writer) (*Engine, error) {
	logf(w, "INFO", "vLLM API server version 0.11.0 (vllm-sim)")
	logf(w, "INFO", "non-default args: model=%s tensor_parallel_size=%d gpu_memory_utilization=%g max_model_len=%d kv_cache_dtype=%s enable_prefix_caching=%v enable_chunked_prefill=%v",
		c.Model, c.TP, c.GPUUtil, c.MaxModelLen, c.KVCacheDtype, c.PrefixCaching, c.ChunkedPrefill)
	fail := func(be *vllm.BootError) error {
		logf(w, "ERROR", "EngineCore failed to start.")
		fmt.Fprintln(w, "Traceback (most recent call last):")
		fmt.Fprintln(w, `  File "/usr/local/lib/python3.12/dist-packages/vllm/v1/engine/core.py", line 691, in run_engine_core`)
		for _, l := range be.Lines {
			fmt.Fprintln(w, l)
		}
		fmt.Fprintln(w, "RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}")
		return be
	}
	// The free-memory check happens at device init, before loading weights.
	mem, err := vllm.PlanMemory(c, env.Arch, env.GPUs)
	be, _ := err.(*vllm.BootError)
	if be != nil && (be.Phase == "init" || be.Phase == "config") {
		return nil, fail(be)
	}
	if err != nil && be == nil {
		return nil, err
	}
	weightsGiB := env.Arch.WeightBytes / float64(max(c.TP, 1)) / vllm.GiB
	logf(w, "INFO", "Starting to load model %s...", c.Model)
	load := weightsGiB * vllm.GiB / (vllm.LoadGBps * 1e9)
	if err := sleep(ctx, env.bootScaled(load)); err != nil {
		return nil, err
	}
	logf(w, "INFO", "Model loading took %.4f GiB and %.6f seconds", weightsGiB, load)
	if !c.EnforceEager {
		if err := sleep(ctx, env.bootScaled(vllm.CompileSeconds)); err != nil {
			return nil, err
		}
		logf(w, "INFO", "torch.compile takes %.2f s in total", float64(vllm.CompileSeconds))
	}
	if err := sleep(ctx, env.bootScaled(vllm.ProfileSeconds)); err != nil {
		return nil, err
	}
	if be != nil && be.Phase == "profile" {
		return nil, fail(be)
	}
	logf(w, "INFO", "Available KV cache memory: %.2f GiB", mem.KVGiB)
	if err := sleep(ctx, env.bootScaled(vllm.KVAllocSeconds)); err != nil {
		return nil, err
	}
	if be != nil { // kv_alloc
		return nil, fail(be)
	}
	logf(w, "INFO", "GPU KV cache size: %s tokens", thousands(mem.KVTokens))
	logf(w, "INFO", "Maximum concurrency for %s tokens per request: %.2fx", thousands(mem.MaxModelLen), mem.MaxConcurrency)
	if !c.EnforceEager {
		if err := sleep(ctx, env.bootScaled(vllm.GraphSeconds)); err != nil {
			return nil, err
		}
		logf(w, "INFO", "Graph capturing finished in %d secs, took %.2f GiB", vllm.GraphSeconds, vllm.GraphsGiB)
	}
	logf(w, "INFO", "init engine (profile, create kv cache, warmup model) took %.2f seconds", float64(vllm.ProfileSeconds+vllm.KVAllocSeconds+vllm.GraphSeconds))
	if err := sleep(ctx, env.bootScaled(vllm.APISeconds)); err != nil {
		return nil, err
	}
	cacheBlocks := 0
	if c.PrefixCaching {
		cacheBlocks = mem.NumBlocks
	}
	e := &Engine{Config: c, Env: env, Mem: mem, cache: NewPrefixCache(c.BlockSize, cacheBlocks), log: w, dead: make(chan struct{})}
	if env.Noise.On() {
		key := noiseKey(c.Flags)
		n, err := env.Noise.bootNumber(key)
		if err != nil {
			return nil, err
		}
		e.noise = env.Noise.boot(key, n)
		logf(w, "INFO", "vllm-sim noise: seed %d, boot %d of this configuration, offset %.4f, step jitter %g", env.Noise.Seed, n, e.noise.offset, env.Noise.StepJitter)
	}
	e.sched = newScheduler(e)
	e.reg = e.registry()
	logf(w, "INFO", "Starting vLLM API server 0 on http://%s:%d", c.Host, c.Port)
	return e, nil
}

func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// Serve runs the scheduler and the HTTP API on ln until ctx ends, then
// shuts the server down. It returns once both have stopped.
func (e *Engine) Serve(ctx context.Context, ln net.Listener) error {
	loopCtx, stopLoop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); e.sched.loop(loopCtx) }()
	srv := &http.Server{Handler: e.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if e.Env.DieAfterSeconds > 0 {
		t := time.AfterFunc(time.Duration(e.Env.DieAfterSeconds*float64(time.Second)), func() {
			e.die(fmt.Sprintf("injected: engine death %gs after startup (VLLM_SIM_DIE_AFTER_SECONDS)", e.Env.DieAfterSeconds))
		})
		defer t.Stop()
	}
	var err error
	select {
	case <-e.dead:
		stopLoop() // in-flight requests fail now
		shutCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		srv.Shutdown(shutCtx)
		cancel()
		<-errc
		err = &EngineDeadError{}
	case <-ctx.Done():
		shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = srv.Shutdown(shutCtx)
		cancel()
		<-errc
	case err = <-errc:
	}
	stopLoop()
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
