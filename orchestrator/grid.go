package orchestrator

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/url"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"go.yaml.in/yaml/v3"

	"github.com/vgrid/vgrid/internal/yamlerr"

	"github.com/vgrid/vgrid/benchmark"
	"github.com/vgrid/vgrid/vllm"
)

// Grid is a grid file: what to tune, how to measure, how to choose.
type Grid struct {
	Name        string      `yaml:"name" json:"name"`
	Target      Target      `yaml:"target" json:"target"`
	Space       Space       `yaml:"space" json:"space"`
	Benchmark   BenchConfig `yaml:"benchmark" json:"benchmark"`
	Constraints []string    `yaml:"constraints" json:"constraints,omitempty"`
	Objective   Objective   `yaml:"objective" json:"objective"`
	Tie         string      `yaml:"tie" json:"tie,omitempty"` // "prefer lower gpu-memory-utilization"
	Timeouts    Timeouts    `yaml:"timeouts" json:"timeouts"`
	End         string      `yaml:"end" json:"end"`                     // crown (default) or restore
	Feasibility Hardware    `yaml:"hardware" json:"hardware,omitempty"` // for pre-flight estimates
	Search      Search      `yaml:"search" json:"search"`
	// Confirm re-deploys the contenders when the leader is not separated
	// from them (confirm.go); nil: the verdict uses the trials as they are.
	Confirm *Confirm `yaml:"confirm" json:"confirm,omitempty"`
	// Deadline: no trial starts that cannot end by then: "07:00" (the next
	// 07:00, local time), "2026-11-24 07:00", or a duration from the run's
	// creation ("8h").
	Deadline string `yaml:"deadline" json:"deadline,omitempty"`

	source []byte // the file as written (LoadGrid); a run stores it
	dir    string // what relative paths were resolved against
}

// Target is where candidates run.
type Target struct {
	Driver string `yaml:"driver" json:"driver"` // compose, process or kubernetes

	// compose
	Files   []string `yaml:"files" json:"files,omitempty"`
	EnvFile string   `yaml:"env_file" json:"env_file,omitempty"`
	Project string   `yaml:"project" json:"project,omitempty"`
	Service string   `yaml:"service" json:"service,omitempty"`
	GPUs    string   `yaml:"gpus" json:"gpus,omitempty"` // "off" strips GPU reservations
	// DockerHost is the engine that runs the service: a DOCKER_HOST-style
	// address (unix://, npipe://, tcp://, ssh://user@host) or a docker
	// context name; "" is the environment's (DOCKER_HOST, the current
	// context, else the platform's default socket).
	DockerHost string `yaml:"docker_host" json:"docker_host,omitempty"`

	// process: a vllm serve-style command; candidate flags are rendered into its arguments
	Command []string          `yaml:"command" json:"command,omitempty"`
	Env     map[string]string `yaml:"env" json:"env,omitempty"`

	// kubernetes: the user's manifest is the profile; each trial is a copy
	// of its workload that the cluster schedules.
	Manifest   string `yaml:"manifest" json:"manifest,omitempty"`
	Workload   string `yaml:"workload" json:"workload,omitempty"`     // KIND/NAME, as kubectl names it (deployment/vllm)
	Container  string `yaml:"container" json:"container,omitempty"`   // default: the workload's one container running vLLM
	Namespace  string `yaml:"namespace" json:"namespace,omitempty"`   // default: the manifest's, else the context's
	Context    string `yaml:"context" json:"context,omitempty"`       // kubeconfig context (default: the current one)
	Kubeconfig string `yaml:"kubeconfig" json:"kubeconfig,omitempty"` // default: $KUBECONFIG, ~/.kube/config, else in-cluster
	// Parallel caps the trials in flight on the cluster (default 1);
	// where they run is the scheduler's choice.
	Parallel int `yaml:"parallel" json:"parallel,omitempty"`
	// Connect is how vgrid reaches a trial's server: auto (the pod's IP
	// when it routes from here, else a port-forward), pod-ip or
	// port-forward.
	Connect string `yaml:"connect" json:"connect,omitempty"`

	// Slots run trials at once, each on its GPUs and port (slots.go);
	// none: one trial at a time on the target itself.
	Slots []SlotDef `yaml:"slots" json:"slots,omitempty"`

	Endpoint  string `yaml:"endpoint" json:"endpoint,omitempty"`       // default: derived (compose: published port)
	APIKeyEnv string `yaml:"api_key_env" json:"api_key_env,omitempty"` // default VLLM_API_KEY
}

// Key identifies the target for locks and the daemon's per-target queue:
// one run at a time per Docker engine, compose project and service, or per
// endpoint. Pure: it needs no engine.
func (t Target) Key() string {
	switch t.Driver {
	case "process":
		return "process:" + strings.TrimRight(t.Endpoint, "/")
	case "kubernetes":
		ctx := t.Context
		if ctx == "" {
			ctx = "(current context)"
		}
		ns := t.Namespace
		if ns == "" {
			ns = "(manifest's namespace)"
		}
		return "kubernetes:" + ctx + "/" + ns + "/" + strings.ToLower(t.Workload)
	}
	host := ""
	if t.DockerHost != "" {
		host = t.DockerHost + "#"
	}
	project := t.Project
	if project == "" && len(t.Files) > 0 {
		project = filepath.Base(filepath.Dir(t.Files[0]))
	}
	service := t.Service
	if service == "" && len(t.Files) > 0 {
		service = "(vLLM service of " + filepath.Base(t.Files[0]) + ")"
	}
	return "compose:" + host + project + "/" + service
}

// Space is the search space: the cartesian product of Axes, plus Candidates.
type Space struct {
	Axes       yaml.Node      `yaml:"axes" json:"-"`
	Candidates []CandidateDef `yaml:"candidates" json:"candidates,omitempty"`
	AxesJSON   []Axis         `yaml:"-" json:"axes,omitempty"`
}

// Axis is one flag and its values, in file order. A null value leaves the
// flag as the profile has it.
type Axis struct {
	Flag   string    `json:"flag"`
	Values []*string `json:"values"`
}

// CandidateDef is an explicit candidate.
type CandidateDef struct {
	Name  string             `yaml:"name" json:"name"`
	Flags map[string]*string `yaml:"flags" json:"flags"`
	Unset []string           `yaml:"unset" json:"unset,omitempty"`
}

// BenchConfig selects scenarios and sizes.
type BenchConfig struct {
	Scenarios   []string  `yaml:"scenarios" json:"scenarios"`
	Repetitions int       `yaml:"repetitions" json:"repetitions"`
	Requests    int       `yaml:"requests" json:"requests,omitempty"`       // kv-cache pairs and load requests per level
	Concurrency []int     `yaml:"concurrency" json:"concurrency,omitempty"` // load levels
	Rates       []float64 `yaml:"rates" json:"rates"`                       // nil: the defaults; []: none
	// Workload is what load and sweep send (default: the built-in prompt).
	Workload *benchmark.Workload `yaml:"workload" json:"workload,omitempty"`
	// SLO bounds goodput and the sweep (default TTFT 2 s, TPOT 100 ms).
	SLO *benchmark.SLO `yaml:"slo" json:"slo,omitempty"`
	// Sweep tunes the rate sweep; fields left out keep their defaults.
	Sweep *benchmark.SweepConfig `yaml:"sweep" json:"sweep,omitempty"`
	// Language of the tool-calling cases' prompts: en (default) or fr.
	Language string `yaml:"language" json:"language,omitempty"`
	// Precision, when set, repeats the objective's scenario after the
	// repetitions until the objective is known to the precision asked.
	Precision *Precision `yaml:"precision" json:"precision,omitempty"`
}

// Precision asks each trial to measure its objective until the 95%
// interval of its mean over repetitions is within Objective percent of it
// (half-width), or MaxRepetitions repetitions ran (the first
// benchmark.repetitions of the whole suite, the others of the objective's
// scenario alone).
type Precision struct {
	Objective      Percent `yaml:"objective" json:"objective"`
	MaxRepetitions int     `yaml:"max_repetitions" json:"max_repetitions"`
}

// MaxRepetitions is the most repetitions a trial of the grid runs.
func (b BenchConfig) MaxRepetitions() int {
	if b.Precision != nil && b.Precision.MaxRepetitions > b.Repetitions {
		return b.Precision.MaxRepetitions
	}
	return max(b.Repetitions, 1)
}

// scenarioNames are the scenarios a suite runs (nil: the default suite's).
func scenarioNames(s []string) []string {
	names, _ := benchmark.CheckNames(s)
	return names
}

// Percent is a percentage, written 3% or 3 (both 3 percent).
type Percent float64

func (p *Percent) UnmarshalYAML(n *yaml.Node) error {
	v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(n.Value), "%")), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Errorf("line %d: %q is not a percentage (write 3%% or 3)", n.Line, n.Value)
	}
	*p = Percent(v)
	return nil
}

// Resolve is the benchmark suite a trial of this grid runs: the built-in
// suite with the grid's sizes. Every trial of a run, resumed or not, from
// the CLI or the daemon, runs exactly this.
func (b BenchConfig) Resolve() benchmark.Config {
	cfg := benchmark.Defaults()
	if b.Requests > 0 {
		cfg.KVCache.Pairs, cfg.Load.RequestsPerLevel, cfg.Load.RequestsPerRate = b.Requests, b.Requests, b.Requests
	}
	if len(b.Concurrency) > 0 {
		cfg.Load.Concurrency = b.Concurrency
	}
	if b.Rates != nil {
		cfg.Load.Rates = b.Rates
	}
	if b.Workload != nil {
		cfg.Load.Workload = *b.Workload
		if cfg.Load.Workload.Kind == "" {
			cfg.Load.Workload.Kind = "builtin"
		}
	}
	if b.SLO != nil {
		cfg.Load.SLO = *b.SLO
	}
	if b.Language != "" {
		cfg.Tools.Language = b.Language
	}
	if s := b.Sweep; s != nil {
		d := &cfg.Sweep
		if s.Concurrency != 0 {
			d.Concurrency = s.Concurrency
		}
		if s.Requests != 0 {
			d.Requests = s.Requests
		}
		if s.Steps != 0 {
			d.Steps = s.Steps
		}
		if s.Attainment != 0 {
			d.Attainment = s.Attainment
		}
		if s.MinRate != 0 {
			d.MinRate = s.MinRate
		}
	}
	return cfg
}

// Settings is what the grid's trials are measured under.
func (b BenchConfig) Settings() benchmark.Settings {
	names, _ := benchmark.CheckNames(b.Scenarios)
	return benchmark.Settings{Scenarios: names, Config: b.Resolve()}
}

// Objective names the metric to maximize or minimize.
type Objective struct {
	Maximize string `yaml:"maximize" json:"maximize,omitempty"`
	Minimize string `yaml:"minimize" json:"minimize,omitempty"`
}

// Timeouts bound a trial.
type Timeouts struct {
	Ready Duration `yaml:"ready" json:"ready"` // boot to ready (default 30m)
	Bench Duration `yaml:"bench" json:"bench"` // the benchmark of one trial (default 1h)
	// Stall: requests under way and nothing received for this long ends
	// the trial "stalled" (default 3m; a long prompt's prefill sends
	// nothing until its first token, so keep it above the slowest TTFT).
	Stall Duration `yaml:"stall" json:"stall,omitempty"`
	// Engine: how long a run waits for a Docker engine that stopped
	// answering (restarted) before it gives up on it (default 10m); the
	// trial it broke is redone once it is back.
	Engine Duration `yaml:"engine" json:"engine,omitempty"`
	// Schedule: how long a trial's pod may wait for a node (GPUs free)
	// before it fails unschedulable (kubernetes; default 30m).
	Schedule Duration `yaml:"schedule" json:"schedule,omitempty"`
}

// Hardware describes the GPUs for pre-flight estimates.
type Hardware struct {
	GPUMemoryMiB float64   `yaml:"gpu_memory_mib" json:"gpu_memory_mib,omitempty"`
	GPUUsedMiB   []float64 `yaml:"gpu_used_mib" json:"gpu_used_mib,omitempty"`
	Model        string    `yaml:"model" json:"model,omitempty"` // model table name when --model is a path
}

// Duration is a time.Duration written as "30m" in YAML and JSON.
type Duration time.Duration

func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (e.g. 30m, 2h)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(strconv.Quote(time.Duration(d).String())), nil
}

func (d *Duration) UnmarshalJSON(b []byte) error {
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	*d = Duration(v)
	return err
}

// GridErrors are several grid file problems, each with its position.
type GridErrors []*GridError

func (es GridErrors) Error() string {
	var parts []string
	for _, e := range es {
		parts = append(parts, e.Error())
	}
	return strings.Join(parts, "\n")
}

// GridError is a grid file problem, with its position.
type GridError struct {
	File string
	Line int
	Col  int // 0: the line is enough
	Msg  string
}

func (e *GridError) Error() string {
	if e.Line > 0 && e.Col > 0 {
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
	}
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// LoadGrid parses a grid file's bytes exactly as written and resolves its
// relative paths (target.files, env_file, manifest, kubeconfig) against dir, the grid file's
// directory. It is the one grid loader: the CLI, the daemon and a resumed
// run (from the bytes the run stored) all go through it.
func LoadGrid(name string, src []byte, dir string) (*Grid, error) {
	g, err := ParseGrid(name, src)
	if err != nil {
		return nil, err
	}
	if dir != "" {
		if abs, err := filepath.Abs(dir); err == nil {
			dir = abs
		}
	}
	resolve := func(p string) string {
		if p == "" || dir == "" {
			return p
		}
		if filepath.IsAbs(p) {
			return filepath.Clean(p) // C:/x/y.yml is C:\x\y.yml on Windows
		}
		return filepath.Join(dir, p)
	}
	for i, f := range g.Target.Files {
		g.Target.Files[i] = resolve(f)
	}
	g.Target.EnvFile = resolve(g.Target.EnvFile)
	g.Target.Manifest = resolve(g.Target.Manifest)
	g.Target.Kubeconfig = resolve(g.Target.Kubeconfig)
	if w := g.Benchmark.Workload; w != nil {
		w.Path = resolve(w.Path)
	}
	g.source, g.dir = append([]byte(nil), src...), dir
	return g, nil
}

var (
	yamlLine     = regexp.MustCompile(`line (\d+): (.*)`)
	unknownField = regexp.MustCompile(`^field (\S+) not found in type orchestrator\.(\w+)$`)
)

// sections names where each grid type sits, for messages about its keys.
var sections = map[string]any{"Grid": Grid{}, "Target": Target{}, "Space": Space{}, "CandidateDef": CandidateDef{},
	"BenchConfig": BenchConfig{}, "Precision": Precision{}, "Objective": Objective{}, "Timeouts": Timeouts{}, "Hardware": Hardware{}, "Search": Search{}, "SlotDef": SlotDef{}, "Confirm": Confirm{}}

var sectionNames = map[string]string{"Grid": "the grid", "Target": "target", "Space": "space", "CandidateDef": "a space.candidates entry",
	"BenchConfig": "benchmark", "Precision": "benchmark.precision", "Objective": "objective", "Timeouts": "timeouts", "Hardware": "hardware", "Search": "search", "SlotDef": "a target.slots entry", "Confirm": "confirm"}

// yamlKeys lists the keys a grid type accepts.
func yamlKeys(v any) []string {
	t := reflect.TypeOf(v)
	var out []string
	for i := 0; i < t.NumField(); i++ {
		if k, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); k != "" && k != "-" {
			out = append(out, k)
		}
	}
	return out
}

// explainYAML turns a yaml.v3 message into one for people: an unknown key
// names the section and the nearest known key, not a Go type.
func explainYAML(msg string) string {
	m := unknownField.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	key, typ := m[1], m[2]
	where := sectionNames[typ]
	if where == "" {
		where = typ
	}
	keys := yamlKeys(sections[typ])
	out := fmt.Sprintf("unknown key `%s` in %s", key, where)
	if best := nearest(key, keys); best != "" {
		return out + fmt.Sprintf(" (did you mean `%s`?)", best)
	}
	return out + fmt.Sprintf(" (keys: %s)", strings.Join(keys, ", "))
}

// nearest returns the candidate closest to s by edit distance, when it is
// close enough to be a typo (at most a third of the key's letters).
func nearest(s string, candidates []string) string {
	best, bestD := "", -1
	for _, c := range candidates {
		if d := vllm.EditDistance(s, c); bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	if bestD < 0 || bestD > max(1, len(best)/3) {
		return ""
	}
	return best
}

// ParseGrid reads a grid file (YAML or JSON). Unknown keys and invalid
// values are errors with file:line; every unknown key is reported.
// MaxGridBytes is the largest grid file vgrid reads (the CLI, the API,
// the dashboard): a larger one is refused, never truncated.
const MaxGridBytes = 4 << 20

func ParseGrid(name string, src []byte) (*Grid, error) {
	if len(src) > MaxGridBytes {
		return nil, fmt.Errorf("%s: %d bytes, more than a grid file may have (%d bytes); a grid lists axes and values, not data", name, len(src), MaxGridBytes)
	}
	var g Grid
	dec := yaml.NewDecoder(bytes.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&g); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			var errs GridErrors
			for _, e := range te.Errors {
				if m := yamlLine.FindStringSubmatch(e); m != nil {
					n, _ := strconv.Atoi(m[1])
					errs = append(errs, &GridError{File: name, Line: n, Msg: explainYAML(strings.TrimSpace(m[2]))})
				} else {
					errs = append(errs, &GridError{File: name, Msg: explainYAML(e)})
				}
			}
			if len(errs) == 1 {
				return nil, errs[0]
			}
			return nil, errs
		}
		if line, col, msg, ok := yamlerr.Syntax(src, err); ok {
			return nil, &GridError{File: name, Line: line, Col: col, Msg: msg}
		}
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if n := backslashLine(src); n > 0 && (strings.Contains(msg, "unknown escape character") || strings.Contains(msg, "expected hexdecimal number")) {
			return nil, &GridError{File: name, Line: n, Msg: msg + windowsPathHint}
		}
		if errors.Is(err, io.EOF) {
			msg = "the file is empty; a grid needs at least target, space and objective (docs/grid-file.md)"
		}
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			n, _ := strconv.Atoi(m[1])
			return nil, &GridError{File: name, Line: n, Msg: strings.TrimSpace(m[2])}
		}
		return nil, &GridError{File: name, Msg: msg}
	}
	var root yaml.Node
	yaml.Unmarshal(src, &root) // it decoded above: only its positions are wanted
	if err := g.validate(name, &root); err != nil {
		return nil, err
	}
	return &g, nil
}

// validate fills the grid's defaults, then checks it.
func (g *Grid) validate(file string, root *yaml.Node) error {
	g.setDefaults()
	return g.check(file, keyLines(root))
}

// setDefaults fills what a grid may leave out.
func (g *Grid) setDefaults() {
	if g.Target.APIKeyEnv == "" {
		g.Target.APIKeyEnv = "VLLM_API_KEY"
	}
	if g.Benchmark.Repetitions == 0 {
		g.Benchmark.Repetitions = 1
	}
	g.Search.setDefaults()
	if g.End == "" {
		g.End = "crown"
	}
	for _, t := range []struct {
		d   *Duration
		def time.Duration
	}{{&g.Timeouts.Ready, 30 * time.Minute}, {&g.Timeouts.Bench, time.Hour}, {&g.Timeouts.Stall, 3 * time.Minute}, {&g.Timeouts.Engine, DefaultEngineWait}} {
		if *t.d == 0 {
			*t.d = Duration(t.def)
		}
	}
}

// check reports every mistake of the grid at once, each at the line of
// the key it concerns (lines, from the file; 0 when it has none). A check
// that depends on a part already found wrong is skipped.
func (g *Grid) check(file string, lines keyLineMap) error {
	var errs GridErrors
	bad := func(path string, line int, format string, a ...any) {
		if line == 0 {
			line = lines.at(path)
		}
		errs = append(errs, &GridError{File: file, Line: line, Msg: fmt.Sprintf(format, a...)})
	}
	switch g.Target.Driver {
	case "compose":
		if len(g.Target.Files) == 0 {
			bad("target.files", 0, "target.files: the compose driver needs at least one profile file")
		}
	case "process":
		if len(g.Target.Command) == 0 {
			bad("target.command", 0, "target.command: the process driver needs a vllm serve-style command")
		}
	case "kubernetes":
		if g.Target.Manifest == "" {
			bad("target.manifest", 0, "target.manifest: the kubernetes driver needs the manifest that defines the vLLM workload")
		}
		if k, n, ok := strings.Cut(g.Target.Workload, "/"); g.Target.Workload != "" && (!ok || k == "" || n == "") {
			bad("target.workload", 0, "target.workload %q: want KIND/NAME, such as deployment/vllm", g.Target.Workload)
		}
		if g.Target.Parallel < 0 {
			bad("target.parallel", 0, "target.parallel %d: want the number of trials in flight (1 or more)", g.Target.Parallel)
		}
		switch g.Target.Connect {
		case "", "auto", "pod-ip", "port-forward":
		default:
			bad("target.connect", 0, "target.connect %q: want auto (the pod's IP when it routes from here, else a port-forward), pod-ip or port-forward", g.Target.Connect)
		}
		if len(g.Target.Slots) > 0 {
			bad("target.slots", 0, "target.slots: on Kubernetes the scheduler places trials; cap them with target.parallel instead")
		}
	case "":
		bad("target", 0, "target.driver is missing: want compose (a compose profile), process (a vllm serve command) or kubernetes (a manifest)")
	default:
		bad("target.driver", 0, "target.driver %q: want compose, process or kubernetes", g.Target.Driver)
	}
	if g.Target.Driver != "kubernetes" {
		for key, v := range map[string]string{"manifest": g.Target.Manifest, "workload": g.Target.Workload, "container": g.Target.Container, "namespace": g.Target.Namespace, "context": g.Target.Context, "kubeconfig": g.Target.Kubeconfig, "connect": g.Target.Connect} {
			if v != "" {
				bad("target."+key, 0, "target.%s applies to the kubernetes driver, not %s", key, g.Target.Driver)
			}
		}
	}
	if err := g.Target.checkSlots(); err != nil {
		bad("target.slots", 0, "%v", err)
	}
	paths := map[string]string{"target.env_file": g.Target.EnvFile, "target.manifest": g.Target.Manifest, "target.kubeconfig": g.Target.Kubeconfig}
	for i, f := range g.Target.Files {
		paths[fmt.Sprintf("target.files[%d]", i)] = f
	}
	if w := g.Benchmark.Workload; w != nil {
		paths["benchmark.workload.path"] = w.Path
	}
	for _, key := range slices.Sorted(maps.Keys(paths)) {
		if err := checkPath(paths[key]); err != nil {
			bad(key, 0, "%s: %v", key, err)
		}
	}
	if g.Target.GPUs != "" && g.Target.GPUs != "off" && g.Target.GPUs != "on" {
		bad("target.gpus", 0, "target.gpus %q: want on or off", g.Target.GPUs)
	}
	if ep := g.Target.Endpoint; ep != "" {
		if err := CheckEndpoint(ep); err != nil {
			bad("target.endpoint", 0, "target.endpoint: %v", err)
		}
	}
	// Axes: a mapping flag -> list of values, in file order.
	ax := &g.Space.Axes
	if ax.Kind != 0 {
		if ax.Kind != yaml.MappingNode {
			bad("space.axes", ax.Line, "space.axes: want a mapping of flag: [values]")
		}
		for i := 0; ax.Kind == yaml.MappingNode && i+1 < len(ax.Content); i += 2 {
			k, v := ax.Content[i], ax.Content[i+1]
			if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
				bad("", v.Line, "space.axes.%s: want a non-empty list of values", k.Value)
				continue
			}
			a := Axis{Flag: vllm.CanonicalName(k.Value)}
			ok := true
			for _, item := range v.Content {
				if item.Tag == "!!null" {
					a.Values = append(a.Values, nil)
					continue
				}
				norm, err := vllm.Normalize(a.Flag, item.Value)
				if err != nil {
					bad("", item.Line, "space.axes.%s: %v", k.Value, err)
					ok = false
					continue
				}
				a.Values = append(a.Values, &norm)
			}
			if ok {
				g.Space.AxesJSON = append(g.Space.AxesJSON, a)
			}
		}
	}
	for i, c := range g.Space.Candidates {
		for _, flag := range slices.Sorted(maps.Keys(c.Flags)) {
			if v := c.Flags[flag]; v != nil {
				if _, err := vllm.Normalize(flag, *v); err != nil {
					bad(fmt.Sprintf("space.candidates[%d]", i), 0, "space.candidates[%d] (%s): %v", i, c.Name, err)
				}
			}
		}
	}
	if len(g.Space.AxesJSON) == 0 && len(g.Space.Candidates) == 0 && len(errs) == 0 {
		bad("space", 0, "space: no axes and no candidates: nothing to search")
	}
	if g.Benchmark.Repetitions < 0 {
		bad("benchmark.repetitions", 0, "benchmark.repetitions must be at least 1")
	}
	if pr := g.Benchmark.Precision; pr != nil {
		metric := g.Objective.Maximize + g.Objective.Minimize
		switch {
		case pr.Objective < 0.5 || pr.Objective > 50:
			bad("benchmark.precision.objective", 0, "benchmark.precision.objective %g%%: want a half-width between 0.5%% and 50%% of the objective (3%% is a usual target; below 0.5%% the machine's own noise is larger than the target, above 50%% the interval says little)", float64(pr.Objective))
		case pr.MaxRepetitions < 2:
			bad("benchmark.precision.max_repetitions", 0, "benchmark.precision.max_repetitions %d: want at least 2 (an interval needs two repetitions); 8 is a usual cap", pr.MaxRepetitions)
		case pr.MaxRepetitions > 50:
			bad("benchmark.precision.max_repetitions", 0, "benchmark.precision.max_repetitions %d: at most 50 (each adds a run of the objective's scenario to every trial; a target that needs more is below what this machine can measure)", pr.MaxRepetitions)
		case pr.MaxRepetitions < g.Benchmark.Repetitions:
			bad("benchmark.precision.max_repetitions", 0, "benchmark.precision.max_repetitions %d is below benchmark.repetitions %d: the cap counts every repetition, the first %d included", pr.MaxRepetitions, g.Benchmark.Repetitions, g.Benchmark.Repetitions)
		case metric != "" && objectiveScenario(metric) == "":
			bad("benchmark.precision", 0, "benchmark.precision: the objective %s is not measured by one scenario that could be repeated alone; use a scenario's metric (e.g. load.max_output_throughput_tok_s)", metric)
		case metric != "" && !slices.Contains(scenarioNames(g.Benchmark.Scenarios), objectiveScenario(metric)):
			bad("benchmark.precision", 0, "benchmark.precision: the objective %s is measured by the %s scenario, which benchmark.scenarios does not run", metric, objectiveScenario(metric))
		}
	}
	if c := g.Confirm; c != nil {
		switch {
		case c.Top < 2:
			bad("confirm.top", 0, "confirm.top %d: want at least 2 (the leader and one contender re-deployed); 3 is usual", c.Top)
		case c.Top > MaxConfirmTop:
			bad("confirm.top", 0, "confirm.top %d: at most %d (each contender is booted again confirm.boots times)", c.Top, MaxConfirmTop)
		case c.Boots < 1 || c.Boots > MaxConfirmBoots:
			bad("confirm.boots", 0, "confirm.boots %d: want 1 to %d fresh boots per contender (2 is usual)", c.Boots, MaxConfirmBoots)
		case c.Within != 0 && (c.Within < 0.5 || c.Within > 20):
			bad("confirm.within", 0, "confirm.within %g%%: want an equivalence margin between 0.5%% and 20%% (default %g%%)", float64(c.Within), DefaultWithin)
		}
	}
	if _, err := benchmark.CheckNames(g.Benchmark.Scenarios); err != nil {
		bad("benchmark.scenarios", 0, "benchmark.scenarios: %v", err)
	} else {
		cfg := g.Benchmark.Resolve()
		if err := cfg.Load.Workload.Check(); err != nil {
			bad("benchmark.workload", 0, "benchmark.workload: %v", err)
		}
		if err := cfg.Tools.Check(); err != nil {
			bad("benchmark", 0, "benchmark.%v", err)
		}
		if err := cfg.Sweep.Check(); err != nil {
			bad("benchmark", 0, "benchmark.%v", err)
		}
	}
	for i, c := range g.Constraints {
		if _, err := ParseConstraint(c); err != nil {
			bad(fmt.Sprintf("constraints[%d]", i), 0, "constraints: %v", err)
		}
	}
	searchOK := true
	if err := g.Search.check(); err != nil {
		bad("search", 0, "%v", err)
		searchOK = false
	}
	if _, err := ParseDeadline(g.Deadline, time.Now()); err != nil {
		bad("deadline", 0, "%v", err)
	}
	switch {
	case g.Objective.Maximize != "" && g.Objective.Minimize != "":
		bad("objective", 0, "objective: set maximize or minimize, not both")
	case g.Objective.Maximize == "" && g.Objective.Minimize == "":
		bad("objective", 0, "objective: set maximize: METRIC or minimize: METRIC (e.g. maximize: load.output_throughput_tok_s)")
	default:
		if err := KnownMetric(g.Objective.Maximize + g.Objective.Minimize); err != nil {
			path := "objective.maximize"
			if g.Objective.Minimize != "" {
				path = "objective.minimize"
			}
			bad(path, 0, "objective: %v", err)
		} else if g.Search.Prune && searchOK {
			if _, err := g.pruneLooks(); err != nil {
				bad("search.prune", 0, "%v", err)
			}
		}
	}
	if g.Tie != "" {
		if _, err := ParseTie(g.Tie); err != nil {
			bad("tie", 0, "tie: %v", err)
		}
	}
	if g.End != "crown" && g.End != "restore" {
		bad("end", 0, "end %q: want crown or restore", g.End)
	}
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return errs
}

// keyLineMap is where each key of a YAML file is: "objective.maximize",
// "constraints[1]" -> its line.
type keyLineMap map[string]int

// keyLines maps every key and list item of a YAML document to its line.
func keyLines(root *yaml.Node) keyLineMap {
	out := keyLineMap{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				p := n.Content[i].Value
				if path != "" {
					p = path + "." + p
				}
				out[p] = n.Content[i].Line
				walk(n.Content[i+1], p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				out[p] = c.Line
				walk(c, p)
			}
		}
	}
	if root != nil {
		walk(root, "")
	}
	return out
}

// at is the line of path, or of its nearest parent the file writes; 0
// when none (a key left out).
func (m keyLineMap) at(path string) int {
	for path != "" {
		if l, ok := m[path]; ok {
			return l
		}
		i := max(strings.LastIndexAny(path, ".["), 0)
		path = path[:i]
	}
	return 0
}

// CheckEndpoint says what is wrong with an endpoint URL: it needs a scheme
// (http or https) and a host.
func CheckEndpoint(ep string) error {
	u, err := url.Parse(ep)
	if err != nil || u.Scheme == "" || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		if !strings.Contains(ep, "://") {
			return fmt.Errorf("%q has no scheme: write http://%s", ep, ep)
		}
		return fmt.Errorf("%q is not an http:// or https:// URL with a host, e.g. http://127.0.0.1:8000", ep)
	}
	if u.Path != "" && u.Path != "/" {
		return fmt.Errorf("%q: give the server's base URL without a path (vgrid adds /v1/...), e.g. %s://%s", ep, u.Scheme, u.Host)
	}
	return nil
}

// Duplicates lists groups of candidates (by index in Expand's order) whose
// flags are identical: each will run, and their spread is run-to-run noise.
func Duplicates(cands []Candidate) [][]int {
	byKey := map[string][]int{}
	var order []string
	for i, c := range cands {
		k := fmt.Sprint(c.Settings)
		if _, ok := byKey[k]; !ok {
			order = append(order, k)
		}
		byKey[k] = append(byKey[k], i)
	}
	var out [][]int
	for _, k := range order {
		if len(byKey[k]) > 1 {
			out = append(out, byKey[k])
		}
	}
	return out
}

// Candidate is one point of the search space.
type Candidate struct {
	Name     string         `json:"name"`
	Settings vllm.Candidate `json:"settings"`
}

// Get returns the candidate's value for a flag, if it sets one.
func (c Candidate) Get(flag string) (string, bool) {
	flag = vllm.CanonicalName(flag)
	for _, s := range c.Settings {
		if s.Name == flag && !s.Unset {
			return s.Value, true
		}
	}
	return "", false
}

// Expand lists the candidates: explicit ones first, in file order, then the
// cartesian product of the axes (first axis varies slowest), without the
// points already listed. Pure.
func (g *Grid) Expand() []Candidate {
	var out []Candidate
	seen := map[string]bool{}
	// Explicit candidates are kept even when identical (the user asked for
	// each; the pair shows run-to-run spread); axis points already listed
	// are not run twice.
	add := func(c Candidate, explicit bool) {
		key := fmt.Sprint(c.Settings)
		if explicit || !seen[key] {
			seen[key] = true
			out = append(out, c)
		}
	}
	for _, d := range g.Space.Candidates {
		c := Candidate{Name: d.Name}
		flags := make([]string, 0, len(d.Flags))
		for f := range d.Flags {
			flags = append(flags, f)
		}
		sort.Strings(flags)
		for _, f := range flags {
			if v := d.Flags[f]; v != nil {
				norm, _ := vllm.Normalize(f, *v)
				c.Settings = append(c.Settings, vllm.Setting{Name: vllm.CanonicalName(f), Value: norm})
			}
		}
		for _, f := range d.Unset {
			c.Settings = append(c.Settings, vllm.Setting{Name: vllm.CanonicalName(f), Unset: true})
		}
		if c.Name == "" {
			c.Name = nameOf(c.Settings)
		}
		add(c, true)
	}
	if len(g.Space.AxesJSON) == 0 {
		return out
	}
	idx := make([]int, len(g.Space.AxesJSON))
	for {
		var c Candidate
		for i, a := range g.Space.AxesJSON {
			if v := a.Values[idx[i]]; v != nil {
				c.Settings = append(c.Settings, vllm.Setting{Name: a.Flag, Value: *v})
			}
		}
		c.Name = nameOf(c.Settings)
		add(c, false)
		// next index, last axis fastest
		i := len(idx) - 1
		for ; i >= 0; i-- {
			idx[i]++
			if idx[i] < len(g.Space.AxesJSON[i].Values) {
				break
			}
			idx[i] = 0
		}
		if i < 0 {
			return out
		}
	}
}

func nameOf(s vllm.Candidate) string {
	if len(s) == 0 {
		return "as-profiled"
	}
	var parts []string
	for _, x := range s {
		parts = append(parts, x.String())
	}
	return strings.Join(parts, " ")
}

// Tie is a tie rule: prefer the lower or higher value of a flag.
type Tie struct {
	Flag   string
	Higher bool
}

var tieRe = regexp.MustCompile(`^prefer (lower|higher) ([a-z0-9_-]+)$`)

// ParseTie reads "prefer lower gpu-memory-utilization".
func ParseTie(s string) (Tie, error) {
	m := tieRe.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return Tie{}, fmt.Errorf("%q: want \"prefer lower FLAG\" or \"prefer higher FLAG\"", s)
	}
	return Tie{Flag: vllm.CanonicalName(m[2]), Higher: m[1] == "higher"}, nil
}

// Constraint is "METRIC OP VALUE".
type Constraint struct {
	Metric string
	Op     string
	Value  float64
}

var constraintRe = regexp.MustCompile(`^\s*([a-z0-9_.-]+)\s*(==|!=|<=|>=|<|>)\s*(-?[0-9.]+)\s*$`)

// ParseConstraint reads "errors == 0", "ttft_p95_ms < 1500".
func ParseConstraint(s string) (Constraint, error) {
	m := constraintRe.FindStringSubmatch(s)
	if m == nil {
		return Constraint{}, fmt.Errorf("%q: want METRIC OP NUMBER, e.g. \"errors == 0\" or \"kv-cache.ttft_p95_ms < 1500\"", s)
	}
	v, err := strconv.ParseFloat(m[3], 64)
	if err != nil {
		return Constraint{}, fmt.Errorf("%q: %v", s, err)
	}
	return Constraint{Metric: m[1], Op: m[2], Value: v}, nil
}

// Holds evaluates the constraint on a metric value; a missing metric fails.
func (c Constraint) Holds(metrics map[string]float64) (bool, string) {
	v, ok := metrics[c.Metric]
	if !ok {
		return false, fmt.Sprintf("%s was not measured", c.Metric)
	}
	ok = map[string]bool{"==": v == c.Value, "!=": v != c.Value, "<": v < c.Value, "<=": v <= c.Value, ">": v > c.Value, ">=": v >= c.Value}[c.Op]
	if ok {
		return true, ""
	}
	return false, fmt.Sprintf("%s = %g, constraint %s %s %g", c.Metric, v, c.Metric, c.Op, c.Value)
}

// windowsPathHint follows YAML's complaint about a Windows path written in
// double quotes, where a backslash starts an escape ("\U" wants eight hex
// digits).
const windowsPathHint = `; a Windows path in double quotes reads its backslashes as escapes: write it unquoted (C:\models\medium.yml), in single quotes, or with forward slashes (C:/models/medium.yml)`

// backslashLine is the first line (1-based) holding a double-quoted scalar
// with a backslash, or 0.
func backslashLine(src []byte) int {
	for i, line := range strings.Split(string(src), "\n") {
		if q := strings.IndexByte(line, '"'); q >= 0 && strings.Contains(line[q:], `\`) {
			return i + 1
		}
	}
	return 0
}

// checkPath refuses a path with control characters: in a double-quoted
// YAML string "C:\temp\new.yml" silently becomes a tab and a newline.
func checkPath(p string) error {
	if i := strings.IndexFunc(p, unicode.IsControl); i >= 0 {
		return fmt.Errorf("%q holds the control character %q%s", p, p[i], windowsPathHint)
	}
	return nil
}
