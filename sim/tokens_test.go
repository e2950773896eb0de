package sim

import (
	"fmt"
	"strings"
	"testing"
)

func TestTokenize(t *testing.T) {
	got := Tokenize("Hello, world! 42 times.")
	if len(got) != 7 { // Hello , world ! 42 times .
		t.Fatalf("got %d tokens, want 7", len(got))
	}
	if fmt.Sprint(Tokenize("Hello, world!")) != fmt.Sprint(got[:4]) {
		t.Error("tokenizer is not deterministic")
	}
}

func words(n int, seed string) []int {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "%s%d ", seed, i)
	}
	return Tokenize(b.String())
}

func TestPrefixCacheHitAfterRepeat(t *testing.T) {
	c := NewPrefixCache(16, 1000)
	prefix := words(100, "doc") // 6 full blocks + 4 tokens
	q1 := append(append([]int{}, prefix...), words(5, "first")...)
	if hit := c.Match(q1); hit != 0 {
		t.Fatalf("cold cache hit %d tokens", hit)
	}
	c.Insert(q1)
	q2 := append(append([]int{}, prefix...), words(5, "second")...)
	if hit := c.Match(q2); hit != 96 {
		t.Errorf("repeat of a 100-token prefix: hit %d tokens, want 96 (6 full blocks)", hit)
	}
	if hit := c.Match(prefix[:32]); hit != 16 {
		t.Errorf("a prompt that is exactly 2 cached blocks: hit %d, want 16 (the last token is always computed)", hit)
	}
	if c.Queries != int64(len(q1)+len(q2)+32) || c.Hits != 96+16 {
		t.Errorf("queries %d hits %d", c.Queries, c.Hits)
	}
	// A different first block breaks the chain even if later blocks match.
	other := append(words(16, "x"), prefix[16:]...)
	if hit := c.Match(other); hit != 0 {
		t.Errorf("chain with a different first block hit %d", hit)
	}
}

func TestPrefixCacheEvictsUnderPressure(t *testing.T) {
	c := NewPrefixCache(16, 8) // 8 blocks of KV
	a, b := words(64, "a"), words(64, "b")
	c.Insert(a) // 4 blocks
	c.Insert(b) // 4 blocks: full
	c.Match(append(a, 1))
	c.Insert(words(64, "c")) // evicts the 4 least recently used: b's
	if c.Blocks() != 8 {
		t.Errorf("blocks %d, want capacity 8", c.Blocks())
	}
	if hit := c.Match(append(a, 1)); hit != 64 {
		t.Errorf("recently used a: hit %d, want 64", hit)
	}
	if hit := c.Match(append(b, 1)); hit != 0 {
		t.Errorf("evicted b: hit %d, want 0", hit)
	}
}
