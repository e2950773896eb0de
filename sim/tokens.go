package sim

import (
	"container/list"
	"hash/fnv"
	"regexp"
)

// The simulator's tokenizer: a token is a run of letters/digits/underscore
// or one punctuation character; its id is the FNV-1a hash of its text
// modulo a Qwen-sized vocabulary. Deterministic, so equal prompts give equal
// token sequences and the prefix cache sees real repeats.
var tokenRe = regexp.MustCompile(`[\p{L}\p{N}_]+|[^\s\p{L}\p{N}_]`)

const vocab = 151936

// Tokenize returns the token ids of text.
func Tokenize(text string) []int {
	words := tokenRe.FindAllString(text, -1)
	out := make([]int, len(words))
	for i, w := range words {
		h := fnv.New32a()
		h.Write([]byte(w))
		out[i] = int(h.Sum32() % vocab)
	}
	return out
}

// PrefixCache is vLLM's automatic prefix caching reduced to its arithmetic:
// prompts are cut in full blocks, each block is identified by the hash of
// its tokens chained with its parent's hash, and at most Capacity blocks are
// kept, least recently used evicted first.
type PrefixCache struct {
	blockSize int
	capacity  int
	lru       *list.List // front: most recently used; values: uint64 hashes
	index     map[uint64]*list.Element
	Queries   int64 // prompt tokens looked up
	Hits      int64 // prompt tokens found cached
}

// NewPrefixCache makes a cache of capacity blocks (the KV blocks of the memory model).
func NewPrefixCache(blockSize, capacity int) *PrefixCache {
	return &PrefixCache{blockSize: blockSize, capacity: capacity, lru: list.New(), index: map[uint64]*list.Element{}}
}

func (c *PrefixCache) blockHashes(tokens []int) []uint64 {
	n := len(tokens) / c.blockSize
	out := make([]uint64, n)
	var parent uint64
	buf := make([]byte, 0, 8+4*c.blockSize)
	for b := 0; b < n; b++ {
		buf = buf[:0]
		for s := 0; s < 8; s++ {
			buf = append(buf, byte(parent>>(8*s)))
		}
		for _, t := range tokens[b*c.blockSize : (b+1)*c.blockSize] {
			buf = append(buf, byte(t), byte(t>>8), byte(t>>16), byte(t>>24))
		}
		h := fnv.New64a()
		h.Write(buf)
		parent = h.Sum64()
		out[b] = parent
	}
	return out
}

// Match returns how many leading tokens of a prompt are cached, in whole
// blocks, never the whole prompt (vLLM always computes the last token).
// It counts the lookup in Queries/Hits and marks hit blocks as recently used.
func (c *PrefixCache) Match(tokens []int) int {
	c.Queries += int64(len(tokens))
	if len(tokens) == 0 {
		return 0
	}
	hashes := c.blockHashes(tokens[:len(tokens)-1])
	hit := 0
	for _, h := range hashes {
		e, ok := c.index[h]
		if !ok {
			break
		}
		c.lru.MoveToFront(e)
		hit++
	}
	c.Hits += int64(hit * c.blockSize)
	return hit * c.blockSize
}

// Insert records the full blocks of a computed prompt, evicting the least
// recently used blocks beyond capacity.
func (c *PrefixCache) Insert(tokens []int) {
	for _, h := range c.blockHashes(tokens) {
		if e, ok := c.index[h]; ok {
			c.lru.MoveToFront(e)
			continue
		}
		c.index[h] = c.lru.PushFront(h)
		for c.lru.Len() > c.capacity {
			old := c.lru.Back()
			c.lru.Remove(old)
			delete(c.index, old.Value.(uint64))
		}
	}
}

// Blocks is the number of cached blocks.
func (c *PrefixCache) Blocks() int { return c.lru.Len() }
