package daemon

import (
	"sync"

	"github.com/vgrid/vgrid/orchestrator"
	"github.com/vgrid/vgrid/store"
)

// hub tells the live event streams that a run has news, so they read the
// store when something happened instead of polling it each.
type hub struct {
	mu sync.Mutex
	ch map[string]chan struct{}
}

// wait returns a channel closed at the run's next event.
func (h *hub) wait(runID string) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ch == nil {
		h.ch = map[string]chan struct{}{}
	}
	c, ok := h.ch[runID]
	if !ok {
		c = make(chan struct{})
		h.ch[runID] = c
	}
	return c
}

// notify wakes the run's streams.
func (h *hub) notify(runID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c, ok := h.ch[runID]; ok {
		close(c)
		delete(h.ch, runID)
	}
}

// notifying is the store the daemon's orchestrators write through: each
// event recorded wakes the run's streams.
type notifying struct {
	*store.Store
	hub *hub
}

func (n notifying) AddEvent(runID string, e orchestrator.Event) error {
	err := n.Store.AddEvent(runID, e)
	n.hub.notify(runID)
	return err
}

var _ orchestrator.Store = notifying{}
