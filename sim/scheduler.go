package sim

import (
	"context"
	"sync"
	"time"
)

// tok is one generated token handed to the HTTP side.
type tok struct {
	kind, text string
}

// seq is one request inside the engine.
type seq struct {
	ctx       context.Context
	prompt    []int
	out       []tok  // what it will generate
	finish    string // finish_reason once out is exhausted
	cached    int    // prompt tokens found in the prefix cache
	prefilled int    // prompt tokens computed so far (cached included)
	emitted   int    // tokens sent
	start     time.Time
	events    chan tok      // generated tokens, in order
	done      chan struct{} // closed when the sequence ends
	err       error         // set before done closes when it did not finish
}

func (s *seq) total() int { return len(s.prompt) + s.emitted }

// scheduler is a step-based model of vLLM V1's scheduler: at most
// max-num-seqs running sequences, a token budget of max-num-batched-tokens
// per step shared by decodes (one token each) and prefills; with chunked
// prefill a long prompt is split across steps, without it the whole prompt
// runs in one step and every decode waits for it.
type scheduler struct {
	e *Engine

	mu      sync.Mutex
	wake    chan struct{}
	waiting []*seq
	running []*seq
}

func newScheduler(e *Engine) *scheduler {
	return &scheduler{e: e, wake: make(chan struct{}, 1)}
}

func (s *scheduler) submit(q *seq) {
	s.mu.Lock()
	s.waiting = append(s.waiting, q)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *scheduler) counts() (running, waiting int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.running), len(s.waiting)
}

// loop runs steps until ctx ends. It is the only writer of running/waiting
// besides submit.
func (s *scheduler) loop(ctx context.Context) {
	for {
		s.mu.Lock()
		idle := len(s.running) == 0 && len(s.waiting) == 0
		s.mu.Unlock()
		if idle {
			select {
			case <-ctx.Done():
				s.abortAll(ctx.Err())
				return
			case <-s.wake:
			}
		}
		if ctx.Err() != nil {
			s.abortAll(ctx.Err())
			return
		}
		if s.e.stalled.Load() {
			// The injected wedge: no forward pass ever completes.
			<-ctx.Done()
			continue
		}
		s.step(ctx)
	}
}

func (s *scheduler) abortAll(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, q := range append(s.running, s.waiting...) {
		q.err = err
		close(q.done)
	}
	s.running, s.waiting = nil, nil
}

// plan is the work of one step.
type plan struct {
	prefill  map[*seq]int // tokens of prompt computed this step
	decode   []*seq
	prefillN int
}

func (s *scheduler) step(ctx context.Context) {
	e := s.e
	c := e.Config
	budget := c.BatchedTokens(e.Mem.MaxModelLen)

	s.mu.Lock()
	// Drop cancelled sequences.
	keep := s.running[:0]
	for _, q := range s.running {
		if q.ctx.Err() != nil {
			q.err = q.ctx.Err()
			close(q.done)
			continue
		}
		keep = append(keep, q)
	}
	s.running = keep
	keepW := s.waiting[:0]
	for _, q := range s.waiting {
		if q.ctx.Err() != nil {
			q.err = q.ctx.Err()
			close(q.done)
			continue
		}
		keepW = append(keepW, q)
	}
	s.waiting = keepW
	// Admit first come, first served.
	for len(s.waiting) > 0 && len(s.running) < c.MaxNumSeqs {
		q := s.waiting[0]
		s.waiting = s.waiting[1:]
		if c.PrefixCaching {
			e.cacheMu.Lock()
			q.cached = e.cache.Match(q.prompt)
			e.cacheMu.Unlock()
		}
		q.prefilled = q.cached
		s.running = append(s.running, q)
	}
	// KV capacity: preempt the newest sequences (recompute later) while the
	// running set needs more tokens than the cache holds.
	for len(s.running) > 1 && s.kvTokens() > e.Mem.KVTokens {
		q := s.running[len(s.running)-1]
		s.running = s.running[:len(s.running)-1]
		q.prefilled, q.cached = 0, 0
		s.waiting = append([]*seq{q}, s.waiting...)
		e.preemptions.Add(1)
	}
	p := plan{prefill: map[*seq]int{}}
	for _, q := range s.running {
		if q.prefilled >= len(q.prompt) {
			p.decode = append(p.decode, q)
		}
	}
	left := budget - len(p.decode)
	for _, q := range s.running {
		need := len(q.prompt) - q.prefilled
		if need <= 0 || left <= 0 {
			continue
		}
		n := need
		if n > left {
			if !c.ChunkedPrefill {
				continue // the whole prompt must fit in one step
			}
			n = left
		}
		p.prefill[q] = n
		p.prefillN += n
		left -= n
	}
	s.mu.Unlock()

	if len(p.decode) == 0 && p.prefillN == 0 {
		// Nothing schedulable (e.g. a prompt waiting for budget): yield.
		sleep(ctx, time.Millisecond)
		return
	}
	ms := 0.0
	if p.prefillN > 0 {
		ms += e.Env.BaseMs + float64(p.prefillN)*e.Env.PrefillMsPT
	}
	if len(p.decode) > 0 {
		ms += e.Env.ITLMs * (1 + e.Env.ITLGrowth*float64(len(p.decode)-1))
	}
	ms *= e.noise.step()
	if sleep(ctx, e.Env.scaled(ms/1000)) != nil {
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	for q, n := range p.prefill {
		q.prefilled += n
		if q.prefilled >= len(q.prompt) {
			if c.PrefixCaching {
				e.cacheMu.Lock()
				e.cache.Insert(q.prompt)
				e.cacheMu.Unlock()
			}
			e.ttft.Observe(time.Since(q.start).Seconds())
			s.emit(q) // the prefill step samples the first token
		}
	}
	for _, q := range p.decode {
		s.emit(q)
	}
	keep = s.running[:0]
	for _, q := range s.running {
		if q.emitted >= len(q.out) && q.prefilled >= len(q.prompt) {
			close(q.done)
			s.e.finished()
			continue
		}
		keep = append(keep, q)
	}
	s.running = keep
}

// kvTokens is the KV cache the running set needs (s.mu held).
func (s *scheduler) kvTokens() int {
	n := 0
	for _, q := range s.running {
		n += q.total()
	}
	return n
}

// emit hands the next token of q to its reader (s.mu held). The channel is
// buffered for the whole output, so the engine never waits on a client.
func (s *scheduler) emit(q *seq) {
	if q.emitted >= len(q.out) {
		return
	}
	q.events <- q.out[q.emitted]
	q.emitted++
	s.e.generated.Add(1)
}
