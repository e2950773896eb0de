package benchmark

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strings"

	"gonum.org/v1/gonum/stat/distuv"
)

// Workload is what the load and sweep scenarios send: the built-in prompt
// (the default), synthetic prompts of chosen token lengths, or the
// conversations of a ShareGPT-format file the user has. Never downloaded.
type Workload struct {
	Kind       string `json:"kind" yaml:"kind"`                             // builtin, synthetic or sharegpt
	Input      Length `json:"input_tokens,omitempty" yaml:"input_tokens"`   // synthetic
	Output     Length `json:"output_tokens,omitempty" yaml:"output_tokens"` // synthetic
	Path       string `json:"path,omitempty" yaml:"path"`                   // sharegpt
	MaxPrompts int    `json:"max_prompts,omitempty" yaml:"max_prompts"`     // sharegpt: how many conversations to sample (default all)
	Seed       uint64 `json:"seed" yaml:"seed"`                             // the same seed sends the same requests
	IgnoreEOS  *bool  `json:"ignore_eos,omitempty" yaml:"ignore_eos"`       // ask vLLM to generate exactly the output length (default true for synthetic)
	Digest     string `json:"sharegpt_sha256,omitempty" yaml:"-"`           // sharegpt: the file's content, for comparisons
	Prompts    int    `json:"sharegpt_prompts,omitempty" yaml:"-"`          // sharegpt: conversations kept
}

// Length is a token length: fixed, or drawn from a distribution.
// In YAML: 512, or {dist: normal, mean: 512, std: 128, min: 16, max: 2048},
// {dist: uniform, min: 64, max: 256}, {dist: lognormal, mean: 400, std: 300}.
type Length struct {
	Dist string  `json:"dist,omitempty" yaml:"dist"` // fixed (default), uniform, normal, lognormal
	Mean float64 `json:"mean,omitempty" yaml:"mean"`
	Std  float64 `json:"std,omitempty" yaml:"std"`
	Min  float64 `json:"min,omitempty" yaml:"min"`
	Max  float64 `json:"max,omitempty" yaml:"max"`
}

// UnmarshalYAML accepts a plain number for a fixed length.
func (l *Length) UnmarshalYAML(unmarshal func(any) error) error {
	var n float64
	if err := unmarshal(&n); err == nil {
		*l = Length{Dist: "fixed", Mean: n}
		return nil
	}
	type plain Length
	return unmarshal((*plain)(l))
}

// Check says what is wrong with a length.
func (l Length) Check(name string) error {
	switch l.Dist {
	case "", "fixed":
		if l.Mean < 1 {
			return fmt.Errorf("%s: want a length of at least 1 token", name)
		}
	case "uniform":
		if l.Min < 1 || l.Max < l.Min {
			return fmt.Errorf("%s: uniform needs 1 <= min <= max", name)
		}
	case "normal", "lognormal":
		if l.Mean < 1 || l.Std <= 0 {
			return fmt.Errorf("%s: %s needs mean >= 1 and std > 0", name, l.Dist)
		}
	default:
		return fmt.Errorf("%s: dist %q: want fixed, uniform, normal or lognormal", name, l.Dist)
	}
	return nil
}

func (l Length) String() string {
	switch l.Dist {
	case "uniform":
		return fmt.Sprintf("uniform %g-%g", l.Min, l.Max)
	case "normal", "lognormal":
		return fmt.Sprintf("%s mean %g std %g", l.Dist, l.Mean, l.Std)
	}
	return fmt.Sprintf("%g", l.Mean)
}

// draw takes one length, at least 1, within [Min, Max] when they are set.
func (l Length) draw(src rand.Source) int {
	var v float64
	switch l.Dist {
	case "uniform":
		v = distuv.Uniform{Min: l.Min, Max: l.Max + 1, Src: src}.Rand()
	case "normal":
		v = distuv.Normal{Mu: l.Mean, Sigma: l.Std, Src: src}.Rand()
	case "lognormal":
		// The mean and std are of the length itself, not of its log.
		s2 := math.Log(1 + l.Std*l.Std/(l.Mean*l.Mean))
		v = distuv.LogNormal{Mu: math.Log(l.Mean) - s2/2, Sigma: math.Sqrt(s2), Src: src}.Rand()
	default:
		v = l.Mean
	}
	if l.Min > 0 {
		v = math.Max(v, l.Min)
	}
	if l.Max > 0 {
		v = math.Min(v, l.Max)
	}
	return max(1, int(math.Floor(v)))
}

// Check says what is wrong with a workload.
func (w Workload) Check() error {
	switch w.Kind {
	case "", "builtin":
	case "synthetic":
		if err := w.Input.Check("input_tokens"); err != nil {
			return err
		}
		return w.Output.Check("output_tokens")
	case "sharegpt":
		if w.Path == "" {
			return errors.New("a sharegpt workload needs path: the dataset file (vgrid never downloads one)")
		}
	default:
		return fmt.Errorf("workload kind %q: want builtin, synthetic or sharegpt", w.Kind)
	}
	return nil
}

// Describe is the workload in a few words.
func (w Workload) Describe() string {
	switch w.Kind {
	case "synthetic":
		return fmt.Sprintf("synthetic prompts of %s input and %s output tokens, seed %d", w.Input, w.Output, w.Seed)
	case "sharegpt":
		return fmt.Sprintf("ShareGPT conversations from %s (%d kept, seed %d)", w.Path, w.Prompts, w.Seed)
	}
	return "the built-in prompt"
}

// Item is one request of a workload, with the lengths it asks for.
type Item struct {
	Request
	InputTokens  int // expected prompt tokens (synthetic: asked; sharegpt: estimated)
	OutputTokens int // the output length asked for
}

// words are common English words that most BPE tokenizers (Qwen, Llama,
// Mistral) encode as one token each, with their leading space.
var words = strings.Fields(`the of and to in is was for on that with as by at from it this be are or an
have not but had his they which you were her all she there would their we him been has when who will
more no if out so said what up its about into than them can only other new some could time these two
may then do first any my now such like our over man me even most made after also did many before must
through back years where much your way well down should because each just those people how too little
state good very make world still own see men work long get here between both life being under never day
same another know while last might us great old year off come since against go came right used take three`)

// synthesize builds a prompt of about n tokens from the word list.
func synthesize(n int, r *rand.Rand) string {
	var b strings.Builder
	b.Grow(n * 6)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(words[r.IntN(len(words))])
	}
	return b.String()
}

// sharegptEntry is one conversation of a ShareGPT-format file.
type sharegptEntry struct {
	Conversations []struct {
		From  string `json:"from"`
		Value string `json:"value"`
	} `json:"conversations"`
}

// estimateTokens guesses a text's token count: about 4 characters a token
// in English for the common BPE vocabularies.
func estimateTokens(s string) int { return max(1, (len(s)+3)/4) }

// loadShareGPT reads the file and keeps conversations the way vLLM's
// benchmark does: the first human turn is the prompt, the reply's length
// is the output length; too short (< 4 tokens) or too long (prompt > 1024,
// prompt + output > 2048 tokens) are left out.
func loadShareGPT(path string) ([]Item, string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, "", fmt.Errorf("ShareGPT file %s does not exist; vgrid never downloads datasets: put the file there (ShareGPT_V3_unfiltered_cleaned_split.json or any file of that format)", path)
		}
		return nil, "", err
	}
	var entries []sharegptEntry
	if err := json.Unmarshal(b, &entries); err != nil {
		return nil, "", fmt.Errorf("%s is not a ShareGPT-format file (a JSON list of {\"conversations\": [{\"from\", \"value\"}...]}): %w", path, err)
	}
	var items []Item
	for _, e := range entries {
		if len(e.Conversations) < 2 {
			continue
		}
		prompt, reply := e.Conversations[0].Value, e.Conversations[1].Value
		in, out := estimateTokens(prompt), estimateTokens(reply)
		if in < 4 || out < 4 || in > 1024 || in+out > 2048 {
			continue
		}
		items = append(items, Item{Request: Request{Messages: []Message{{Role: "user", Content: prompt}}, MaxTokens: out}, InputTokens: in, OutputTokens: out})
	}
	if len(items) == 0 {
		return nil, "", fmt.Errorf("%s has no usable conversation (each needs a prompt and a reply of 4 to 2048 tokens together)", path)
	}
	return items, digest(b), nil
}

// Items draws n requests from the workload, the same ones for the same
// seed. base is the built-in request.
func (w *Workload) Items(n int, base Request) ([]Item, error) {
	src := rand.NewPCG(w.Seed, w.Seed^0x2545f4914f6cdd1d)
	r := rand.New(src)
	out := make([]Item, 0, n)
	switch w.Kind {
	case "", "builtin":
		for range n {
			out = append(out, Item{Request: base, OutputTokens: base.MaxTokens})
		}
	case "synthetic":
		ignore := w.IgnoreEOS == nil || *w.IgnoreEOS
		for range n {
			in, outN := w.Input.draw(src), w.Output.draw(src)
			req := Request{Messages: []Message{{Role: "user", Content: synthesize(in, r)}}, MaxTokens: outN}
			if ignore {
				req.Extra = map[string]any{"ignore_eos": true, "min_tokens": outN}
			}
			out = append(out, Item{Request: req, InputTokens: in, OutputTokens: outN})
		}
	case "sharegpt":
		all, _, err := loadShareGPT(w.Path)
		if err != nil {
			return nil, err
		}
		r.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		if w.MaxPrompts > 0 && w.MaxPrompts < len(all) {
			all = all[:w.MaxPrompts]
		}
		for i := range n {
			out = append(out, all[i%len(all)])
		}
	default:
		return nil, w.Check()
	}
	return out, nil
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// prepare reads a ShareGPT file once, so that the settings a report records
// name its content, and a missing file stops the run before any request.
func (w *Workload) prepare() error {
	if err := w.Check(); err != nil {
		return err
	}
	if w.Kind != "sharegpt" {
		return nil
	}
	all, sum, err := loadShareGPT(w.Path)
	if err != nil {
		return err
	}
	w.Digest, w.Prompts = sum, len(all)
	if w.MaxPrompts > 0 && w.MaxPrompts < len(all) {
		w.Prompts = w.MaxPrompts
	}
	return nil
}
