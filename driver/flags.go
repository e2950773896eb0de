package driver

import (
	"context"
	"sync"

	"github.com/vgrid/vgrid/vllm"
)

// HelpCache keeps what vLLM builds printed for --help (the store's help/
// bucket), so each build is asked once.
type HelpCache interface {
	GetHelp(key string) (text string, ok bool)
	PutHelp(key, text string, args []string)
}

// FlagCheck asks a vLLM build for the flags it accepts, once: the answer is
// kept in memory and in Cache, by a key that names the build (an image ID
// and entry point, an executable's identity).
type FlagCheck struct {
	Cache HelpCache // may be nil

	mu    sync.Mutex
	known map[string]*vllm.Help
}

// Help returns the help of the build named by key, asking it through run
// (vllm.AskHelp) when neither memory nor the cache has it. program is the
// command asked, for the cache's record.
func (f *FlagCheck) Help(ctx context.Context, key string, program []string, run func(ctx context.Context, arg string) (string, int, error)) (*vllm.Help, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if h, ok := f.known[key]; ok {
		return h, nil
	}
	if f.Cache != nil {
		if text, ok := f.Cache.GetHelp(key); ok {
			if h, err := vllm.ParseHelp(text); err == nil {
				f.remember(key, h)
				return h, nil
			}
		}
	}
	h, text, arg, err := vllm.AskHelp(ctx, run)
	if err != nil {
		return nil, err
	}
	f.remember(key, h)
	if f.Cache != nil {
		f.Cache.PutHelp(key, text, append(append([]string(nil), program...), arg))
	}
	return h, nil
}

func (f *FlagCheck) remember(key string, h *vllm.Help) {
	if f.known == nil {
		f.known = map[string]*vllm.Help{}
	}
	f.known[key] = h
}

// Refusals checks vLLM's argument words against a build's help and
// describes each refusal; of names the build ("the vLLM in image sha256:...").
func Refusals(h *vllm.Help, of string, words []string) []string {
	var out []string
	for _, r := range h.Check(words) {
		out = append(out, r.Describe(of))
	}
	return out
}

// SetHelpCache gives a driver's flag check its cache (the store).
func SetHelpCache(d any, c HelpCache) {
	if f, ok := d.(interface{ FlagCheck() *FlagCheck }); ok {
		f.FlagCheck().Cache = c
	}
}
