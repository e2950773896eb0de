package profiles

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/vgrid/vgrid/vllm"
)

// Project is a set of compose files loaded the way `docker compose -f A -f B
// --env-file E -p NAME` loads them.
type Project struct {
	Files    []string // merged in order
	EnvFiles []string // default: .env next to the first file, if present
	Name     string   // project name; default from the first file's directory
	Environ  []string // process environment (KEY=VALUE); it wins over env files
	// Content replaces what is read from disk for some files: the
	// orchestrator renders every candidate from the original profile bytes,
	// never from the previous trial's rendering.
	Content map[string][]byte
	// Before, when set, memoizes the original's effective flags per
	// service across renders (valid while Content pins the original).
	Before *BeforeCache
}

// BeforeCache holds the original profile's effective flags per service.
type BeforeCache struct {
	mu    sync.Mutex
	flags map[string]vllm.Flags
}

func (p Project) read(file string) ([]byte, error) {
	if b, ok := p.Content[file]; ok {
		return b, nil
	}
	return os.ReadFile(file)
}

// Loaded is a project as compose resolved it.
type Loaded struct {
	*types.Project
	// Missing lists variables that were referenced without a default and
	// are not set: compose substitutes an empty string for them.
	Missing []string
}

// Load parses and interpolates the files. overrides replaces the content of
// a file (by path) without writing it, to check a rendering before saving.
func (p Project) Load(ctx context.Context, overrides map[string][]byte) (*Loaded, error) {
	if len(p.Files) == 0 {
		return nil, errors.New("no compose file given; pass -f FILE")
	}
	opts, err := cli.NewProjectOptions(p.Files,
		cli.WithWorkingDirectory(filepath.Dir(p.Files[0])),
		cli.WithEnv(p.Environ),
		cli.WithEnvFiles(p.EnvFiles...),
		cli.WithDotEnv,
	)
	if err != nil {
		return nil, fmt.Errorf("env files %v: %w", p.EnvFiles, err)
	}
	wd, err := filepath.Abs(filepath.Dir(p.Files[0]))
	if err != nil {
		return nil, err
	}
	details := types.ConfigDetails{WorkingDir: wd, Environment: opts.Environment}
	for _, f := range p.Files {
		b, ok := overrides[f]
		if !ok {
			if b, err = p.read(f); err != nil {
				return nil, fmt.Errorf("read compose file: %w", err)
			}
		}
		abs, _ := filepath.Abs(f)
		details.ConfigFiles = append(details.ConfigFiles, types.ConfigFile{Filename: abs, Content: b})
	}
	name := p.Name
	if name == "" {
		name = loader.NormalizeProjectName(filepath.Base(wd))
	}
	var missing []string
	proj, err := loader.LoadWithContext(ctx, details, func(o *loader.Options) {
		o.SetProjectName(name, p.Name != "")
		lookup := o.Interpolate.LookupValue
		o.Interpolate.LookupValue = func(k string) (string, bool) {
			v, ok := lookup(k)
			if !ok && !slices.Contains(missing, k) {
				missing = append(missing, k)
			}
			return v, ok
		}
	})
	if err != nil {
		var contents [][]byte
		for _, f := range details.ConfigFiles {
			contents = append(contents, f.Content)
		}
		if where := explainLoad(p.Files, contents, err); where != "" {
			return nil, fmt.Errorf("compose could not load %s: %s", strings.Join(p.Files, " + "), where)
		}
		return nil, fmt.Errorf("compose could not load %s: %w", strings.Join(p.Files, " + "), err)
	}
	for _, f := range details.ConfigFiles {
		proj.ComposeFiles = append(proj.ComposeFiles, f.Filename)
	}
	// Looked up but unset is not yet missing: ${X:-default} asks too.
	return &Loaded{Project: proj, Missing: missing}, nil
}

// Flags returns the vLLM flags a service receives once compose resolved it.
func (l *Loaded) Flags(service string) (vllm.Flags, error) {
	svc, ok := l.Services[service]
	if !ok {
		return nil, fmt.Errorf("compose project has no service %q", service)
	}
	words, err := effectiveWords(service, svc.Entrypoint, svc.Command)
	if err != nil {
		return nil, err
	}
	return vllm.ParseArgs(words), nil
}

// Program returns the words that start vLLM's server for a service as
// compose resolved it ([vllm serve], [python3 -m
// vllm.entrypoints.openai.api_server]), or nil when the service gives only
// arguments and the image's entrypoint starts the server. Asking the same
// program for --help tells which flags that vLLM accepts.
func (l *Loaded) Program(service string) ([]string, error) {
	svc, ok := l.Services[service]
	if !ok {
		return nil, fmt.Errorf("compose project has no service %q", service)
	}
	return ProgramOf(service, svc.Entrypoint, svc.Command)
}

// ProgramOf is Program for an entrypoint and command as compose resolved
// them (a container's Entrypoint and Cmd).
func ProgramOf(service string, entrypoint, command []string) ([]string, error) {
	program, _, err := effectiveProgram(service, entrypoint, command)
	return program, err
}

// unsetVars returns the variables of text referenced without a default
// (${X} or $X, not ${X:-d} / ${X-d}) that are in missing.
func unsetVars(text string, missing []string) []string {
	var out []string
	for _, m := range varRef.FindAllStringSubmatch(text, -1) {
		name, hasDefault := m[1]+m[3], m[2] != ""
		if !hasDefault && slices.Contains(missing, name) && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

// ${NAME}, ${NAME:-x}, ${NAME-x}, ${NAME:?x}, $NAME; $$ is an escaped dollar.
var varRef = regexp.MustCompile(`(?:^|[^$])\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?+][^}]*)?\}|([A-Za-z_][A-Za-z0-9_]*))`)

// Plan is a verified rendering of a candidate into one profile file.
type Plan struct {
	File      string     `json:"file"`
	Service   string     `json:"service"`
	Changes   []Change   `json:"changes"`
	Before    []byte     `json:"-"`
	After     []byte     `json:"-"`
	Effective vllm.Flags `json:"-"` // what vLLM receives after the change
	// Loaded is the project with the rendering in place of the file, as
	// compose-go loaded it to verify the rendering: what a deploy converts.
	Loaded *Loaded `json:"-"`
}

// Changed reports whether the file changes at all.
func (p *Plan) Changed() bool { return string(p.Before) != string(p.After) }

// DriftError says that compose would not pass vLLM what the candidate asks.
type DriftError struct {
	File, Service string
	Detail        string
	Problems      []string
}

func (e *DriftError) Error() string {
	s := fmt.Sprintf("%s: after rendering, docker compose would not give service %q the intended flags:%s", e.File, e.Service, e.Detail)
	for _, p := range e.Problems {
		s += "\n  cause: " + p
	}
	return s + "\nnothing was written"
}

// Render renders cand into the file that defines service's vLLM arguments
// (the last of p.Files that does), then loads the result with compose-go
// and checks that vLLM would receive exactly the original flags with cand
// applied. Nothing is written.
func (p Project) Render(ctx context.Context, service string, cand vllm.Candidate) (*Plan, error) {
	var (
		doc  *Document
		file string
	)
	var firstErr error
	for i := len(p.Files) - 1; i >= 0; i-- {
		src, err := p.read(p.Files[i])
		if err != nil {
			return nil, fmt.Errorf("read profile: %w", err)
		}
		d, err := ParseDocument(p.Files[i], src)
		if err != nil {
			return nil, err
		}
		svc, err := d.ResolveService(service)
		if err != nil {
			firstErr = cmpErr(firstErr, err)
			continue
		}
		if _, err := d.region(svc); err != nil {
			firstErr = cmpErr(firstErr, err)
			continue
		}
		doc, file, service = d, p.Files[i], svc
		break
	}
	if doc == nil {
		return nil, firstErr
	}
	after, changes, err := doc.Render(service, cand)
	if err != nil {
		return nil, err
	}
	plan := &Plan{File: file, Service: service, Changes: changes, Before: doc.src, After: after}
	r, _ := doc.region(service)

	before, err := p.beforeFlags(ctx, service, r.problems)
	if err != nil {
		return nil, err
	}
	rendered, err := p.Load(ctx, map[string][]byte{file: after})
	if err != nil {
		return nil, fmt.Errorf("%s: the rendered profile does not load: %w; nothing was written", file, err)
	}
	if vars := unsetVars(argText(doc, r), rendered.Missing); len(vars) > 0 {
		return nil, fmt.Errorf("%s: service %q: variable %s is not set and has no default, so docker compose would pass vLLM an empty value; set it in the environment or pass --env-file (nothing was written)",
			file, service, strings.Join(vars, ", "))
	}
	got, err := rendered.Flags(service)
	if err != nil {
		return nil, err
	}
	plan.Effective, plan.Loaded = got, rendered
	want := before.Apply(cand)
	if d := got.Diff(want); d != "" {
		return nil, &DriftError{File: file, Service: service, Detail: d, Problems: r.problems}
	}
	if dups := got.Duplicates(); len(dups) > 0 {
		return nil, &DriftError{File: file, Service: service, Detail: "\n  flags given more than once (argparse keeps the last): --" + strings.Join(dups, ", --"), Problems: r.problems}
	}
	return plan, nil
}

func cmpErr(first, err error) error {
	if first == nil {
		return err
	}
	return first
}

// argText is the raw text of a region's arguments (for variable checks).
func argText(d *Document, r *region) string {
	if len(r.words) == 0 {
		return ""
	}
	return string(d.src[r.words[0].start:r.words[len(r.words)-1].end])
}

// explain adds what vgrid found in the file to a compose load error.
func explain(err error, problems []string) error {
	if len(problems) == 0 {
		return err
	}
	return fmt.Errorf("%w\n  cause: %s", err, strings.Join(problems, "\n  cause: "))
}

// Show loads the project and returns the effective vLLM flags of service
// (or of the only vLLM service), and the variables looked up but not set.
func (p Project) Show(ctx context.Context, service string) (string, vllm.Flags, []string, error) {
	var problems []string
	var firstErr error
	found := false
	for i := len(p.Files) - 1; i >= 0 && !found; i-- {
		src, err := os.ReadFile(p.Files[i])
		if err != nil {
			return "", nil, nil, fmt.Errorf("read profile: %w", err)
		}
		d, err := ParseDocument(p.Files[i], src)
		if err != nil {
			return "", nil, nil, err
		}
		s, err := d.ResolveService(service)
		if err != nil {
			firstErr = cmpErr(firstErr, err)
			continue
		}
		r, err := d.region(s)
		if err != nil {
			firstErr = cmpErr(firstErr, err)
			continue
		}
		service, problems, found = s, r.problems, true
	}
	if !found {
		return "", nil, nil, firstErr
	}
	l, err := p.Load(ctx, nil)
	if err != nil {
		return "", nil, nil, explain(err, problems)
	}
	f, err := l.Flags(service)
	if err != nil {
		return "", nil, nil, err
	}
	return service, f, l.Missing, nil
}

// beforeFlags is the original's effective flags, from the cache if any.
func (p Project) beforeFlags(ctx context.Context, service string, problems []string) (vllm.Flags, error) {
	if c := p.Before; c != nil {
		c.mu.Lock()
		defer c.mu.Unlock()
		if f, ok := c.flags[service]; ok {
			return f, nil
		}
	}
	orig, err := p.Load(ctx, nil)
	if err != nil {
		return nil, explain(err, problems)
	}
	f, err := orig.Flags(service)
	if err != nil {
		return nil, err
	}
	if c := p.Before; c != nil {
		if c.flags == nil {
			c.flags = map[string]vllm.Flags{}
		}
		c.flags[service] = f
	}
	return f, nil
}
