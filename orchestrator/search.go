package orchestrator

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/gonum/stat/distuv"
)

// Search says how a run chooses what to try: every candidate in order
// (grid), a seeded uniform draw (random), the Tree-structured Parzen
// Estimator (tpe) or a Gaussian process with expected improvement (gp),
// for at most MaxTrials boots.
type Search struct {
	// Strategy: grid (the default without max_trials), random, tpe or gp
	// (the default with max_trials: it came within 2% of the best in more
	// seeds on both measured surfaces, docs/search.md).
	Strategy  string `yaml:"strategy" json:"strategy,omitempty"`
	MaxTrials int    `yaml:"max_trials" json:"max_trials,omitempty"` // boots; infeasible candidates skipped unbooted do not count
	Seed      uint64 `yaml:"seed" json:"seed,omitempty"`
	// Startup is how many trials tpe or gp draws at random before it models
	// (default: a quarter of max_trials, at least 3).
	Startup int `yaml:"startup" json:"startup,omitempty"`
	// Gamma is the share of measured trials tpe calls good (default 0.25).
	Gamma float64 `yaml:"gamma" json:"gamma,omitempty"`
	// Prune stops a trial's benchmark early once it is worse than the
	// champion with confidence (prune.go); off unless asked for.
	Prune bool `yaml:"prune" json:"prune,omitempty"`
	// PruneAlpha bounds the chance that a candidate at least as good as the
	// champion is stopped (default 0.05).
	PruneAlpha float64 `yaml:"prune_alpha" json:"prune_alpha,omitempty"`
}

// DefaultStrategy is the search of a grid that sets max_trials and no
// strategy.
const DefaultStrategy = "gp"

// Strategies vgrid knows.
var strategies = []string{"grid", "random", "tpe", "gp"}

// Adaptive reports whether candidates are proposed one at a time from the
// trials so far (random, tpe) rather than all laid out at the start.
func (s Search) Adaptive() bool {
	return s.Strategy != "grid" && slices.Contains(strategies, s.Strategy)
}

// setDefaults fills what a search may leave out.
func (s *Search) setDefaults() {
	if s.Strategy == "" {
		s.Strategy = "grid"
		if s.MaxTrials > 0 {
			s.Strategy = DefaultStrategy
		}
	}
	if s.Gamma == 0 {
		s.Gamma = 0.25
	}
	if s.PruneAlpha == 0 && s.Prune {
		s.PruneAlpha = 0.05
	}
	if s.Startup == 0 {
		s.Startup = max(3, s.MaxTrials/4)
	}
}

func (s *Search) check() error {
	if !slices.Contains(strategies, s.Strategy) {
		return fmt.Errorf("search.strategy %q: want grid, random, tpe or gp", s.Strategy)
	}
	if !s.Adaptive() && s.MaxTrials != 0 {
		return fmt.Errorf("search.max_trials applies to random, tpe and gp; grid runs every candidate (leave strategy out, or set gp, tpe or random, to search within a budget)")
	}
	if s.Adaptive() && s.MaxTrials < 1 {
		return fmt.Errorf("search.max_trials %d: %s needs a budget of at least 1 trial (a night holds 15 to 40 real boots)", s.MaxTrials, s.Strategy)
	}
	if s.Startup < 0 {
		return fmt.Errorf("search.startup %d: want 0 or more random trials before tpe or gp models", s.Startup)
	}
	if s.Gamma < 0 || s.Gamma >= 1 {
		return fmt.Errorf("search.gamma %g: want a share between 0 and 1 (default 0.25)", s.Gamma)
	}
	if s.PruneAlpha < 0 || s.PruneAlpha > 0.5 {
		return fmt.Errorf("search.prune_alpha %g: want an error rate between 0 and 0.5 (default 0.05)", s.PruneAlpha)
	}
	if s.PruneAlpha != 0 && !s.Prune {
		return fmt.Errorf("search.prune_alpha is set but prune is not: add prune: true to stop trials early")
	}
	return nil
}

// ParseDeadline resolves a grid's deadline against now, the moment the
// run is created: "07:00" is the next 07:00 local time, "2026-11-24 07:00"
// that moment, "8h" is now + 8h. The zero time means none.
func ParseDeadline(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("deadline %q: want a positive duration (8h) or a time of day (07:00)", s)
		}
		return now.Add(d), nil
	}
	if at, err := time.ParseInLocation("2006-01-02 15:04", s, now.Location()); err == nil {
		return at, nil // may have passed: the caller says so (a stored run's grid still loads)
	}
	clock, err := time.ParseInLocation("15:04", s, now.Location())
	if err != nil {
		return time.Time{}, fmt.Errorf("deadline %q: want a time of day (07:00, local time), a date and time (2026-11-24 07:00) or a duration (8h, 90m)", s)
	}
	at := time.Date(now.Year(), now.Month(), now.Day(), clock.Hour(), clock.Minute(), 0, 0, now.Location())
	if !at.After(now) {
		at = at.AddDate(0, 0, 1)
	}
	return at, nil
}

// Observation is what the search knows of one trial.
type Observation struct {
	Index int // in the space (Grid.Expand)
	// Loss is the objective, negated when it is maximised; meaningful when
	// Measured.
	Loss     float64
	Measured bool   // measured and within the constraints
	Outcome  string // "measured", "constraint", "failed (reason)", "infeasible", "running"
	// Pending: the trial runs now on another slot; its candidate is taken,
	// but it is no evidence yet.
	Pending bool
}

// Sampler proposes the next candidate to try: an index into space not in
// tried, or false when none is left. Its answer is a function of its
// configuration, the space and the observations, so a resumed run
// proposes what the interrupted one would have.
type Sampler interface {
	Next(space []Candidate, obs []Observation) (int, bool)
}

// NewSampler returns the grid's adaptive sampler.
func NewSampler(g *Grid) Sampler {
	switch g.Search.Strategy {
	case "tpe":
		return &TPE{Search: g.Search, Axes: axesOf(g)}
	case "gp":
		return &GP{Search: g.Search, Axes: axesOf(g)}
	}
	return &Random{Seed: g.Search.Seed}
}

// rng is the draw for the n-th proposal: seeded by the run's seed and n,
// so nothing of it is kept between proposals.
func rng(seed uint64, n int) *rand.Rand {
	return rand.New(rand.NewPCG(seed, uint64(n)*0x9e3779b97f4a7c15+1))
}

// untried lists the space's indices no observation covers.
func untried(space []Candidate, obs []Observation) []int {
	seen := make(map[int]bool, len(obs))
	for _, o := range obs {
		seen[o.Index] = true
	}
	var out []int
	for i := range space {
		if !seen[i] {
			out = append(out, i)
		}
	}
	return out
}

// Random draws uniformly among the untried candidates.
type Random struct{ Seed uint64 }

// Next implements Sampler.
func (s *Random) Next(space []Candidate, obs []Observation) (int, bool) {
	left := untried(space, obs)
	if len(left) == 0 {
		return 0, false
	}
	return left[rng(s.Seed, len(obs)).IntN(len(left))], true
}

// Axis of the search: a flag and its values; Ordinal when every value is a
// number (or a boolean), so that neighbours in the list are alike.
type searchAxis struct {
	Flag    string
	Values  []string // "" for unset (null)
	Ordinal bool
}

func axesOf(g *Grid) []searchAxis {
	var out []searchAxis
	for _, a := range g.Space.AxesJSON {
		ax := searchAxis{Flag: a.Flag, Ordinal: true}
		for _, v := range a.Values {
			s := ""
			if v != nil {
				s = *v
			}
			if _, err := strconv.ParseFloat(s, 64); err != nil {
				ax.Ordinal = false
			}
			ax.Values = append(ax.Values, s)
		}
		out = append(out, ax)
	}
	return out
}

// coords is a candidate's position on each axis: the index of its value,
// or len(values) ("other") for a value off the axis (an explicit
// candidate).
func coords(axes []searchAxis, c Candidate) []int {
	out := make([]int, len(axes))
	for i, a := range axes {
		v, set := "", false
		for _, s := range c.Settings {
			if s.Name == a.Flag && !s.Unset {
				v, set = s.Value, true
			}
		}
		out[i] = len(a.Values)
		for j, av := range a.Values {
			if (av == "" && !set) || (set && av == v) {
				out[i] = j
				break
			}
		}
	}
	return out
}

// TPE is the Tree-structured Parzen Estimator (Bergstra et al., 2011) on a
// discrete space. After Startup random trials it splits the observations
// into good (the best Gamma share of the measured ones) and bad (the rest,
// failed boots, infeasible candidates and constraint violations), fits one
// Parzen density per axis to each group, draws candidates from the good
// density and proposes the untried one that maximises l(x)/g(x).
type TPE struct {
	Search
	Axes []searchAxis
	// Draws is how many candidates are drawn from l per proposal (default 24).
	Draws int
}

// Next implements Sampler.
func (t *TPE) Next(space []Candidate, obs []Observation) (int, bool) {
	left := untried(space, obs)
	if len(left) == 0 {
		return 0, false
	}
	r := rng(t.Seed, len(obs))
	good, bad := split(obs, t.Gamma)
	if len(obs) < t.Startup || len(good) == 0 {
		return left[r.IntN(len(left))], true
	}
	at := make(map[string]int, len(left))
	pos := make([][]int, len(space))
	for _, i := range left {
		pos[i] = coords(t.Axes, space[i])
		at[fmt.Sprint(pos[i])] = i
	}
	goodC, badC := make([][]int, len(good)), make([][]int, len(bad))
	for k, o := range good {
		goodC[k] = coords(t.Axes, space[o.Index])
	}
	for k, o := range bad {
		badC[k] = coords(t.Axes, space[o.Index])
	}
	l := make([][]float64, len(t.Axes))
	g := make([][]float64, len(t.Axes))
	for a, ax := range t.Axes {
		l[a] = parzen(ax, column(goodC, a))
		g[a] = parzen(ax, column(badC, a))
	}
	score := func(p []int) float64 {
		s := 0.0
		for a := range t.Axes {
			s += math.Log(l[a][p[a]]) - math.Log(g[a][p[a]])
		}
		return s
	}
	draws := t.Draws
	if draws == 0 {
		draws = 24
	}
	sampler := make([]distuv.Categorical, len(t.Axes))
	for a := range t.Axes {
		sampler[a] = distuv.NewCategorical(l[a], r)
	}
	best, bestScore := -1, math.Inf(-1)
	for range draws {
		p := make([]int, len(t.Axes))
		for a := range t.Axes {
			p[a] = int(sampler[a].Rand())
		}
		i, ok := at[fmt.Sprint(p)]
		if !ok {
			continue // tried already, or not in the space
		}
		if s := score(p); s > bestScore {
			best, bestScore = i, s
		}
	}
	if best < 0 { // every draw was tried: the best untried by the same ratio
		for _, i := range left {
			if s := score(pos[i]); s > bestScore {
				best, bestScore = i, s
			}
		}
	}
	return best, true
}

func column(rows [][]int, a int) []int {
	out := make([]int, len(rows))
	for i, r := range rows {
		out[i] = r[a]
	}
	return out
}

// split returns the good observations (the ceil(gamma*n) lowest losses of
// the n measured ones, at least one) and the bad (everything else).
func split(obs []Observation, gamma float64) (good, bad []Observation) {
	var measured []Observation
	for _, o := range obs {
		if o.Pending {
			continue
		}
		if o.Measured {
			measured = append(measured, o)
		} else {
			bad = append(bad, o)
		}
	}
	sort.SliceStable(measured, func(i, j int) bool { return measured[i].Loss < measured[j].Loss })
	n := int(math.Ceil(gamma * float64(len(measured))))
	if len(measured) > 0 {
		n = max(n, 1)
	}
	return measured[:n], append(bad, measured[n:]...)
}

// parzen is the density over an axis's values (plus "other") from the
// observed positions: a uniform prior worth one observation, and per
// observation a kernel: its own value for a categorical axis, a discrete
// Gaussian over neighbouring values for an ordinal one (bandwidth shrinking
// as observations accumulate).
func parzen(ax searchAxis, at []int) []float64 {
	k := len(ax.Values) + 1
	w := make([]float64, k)
	for j := range w {
		w[j] = 1 / float64(k)
	}
	sigma := max(0.5, float64(len(ax.Values))/float64(len(at)+1))
	for _, p := range at {
		if !ax.Ordinal || p == len(ax.Values) {
			w[p]++
			continue
		}
		kern := distuv.Normal{Mu: float64(p), Sigma: sigma}
		sum := 0.0
		mass := make([]float64, len(ax.Values))
		for j := range ax.Values {
			mass[j] = kern.Prob(float64(j))
			sum += mass[j]
		}
		for j := range mass {
			w[j] += mass[j] / sum
		}
	}
	total := 0.0
	for _, v := range w {
		total += v
	}
	for j := range w {
		w[j] /= total
	}
	return w
}

// spaceKey identifies a candidate in the space.
func spaceKey(c Candidate) string { return fmt.Sprint(c.Settings) }

// MaxGridTime (a night) is how long a grid search may be planned without a deadline
// before vgrid refuses it and suggests an adaptive search.
const MaxGridTime = 12 * time.Hour

// MaxGridCandidates is the largest space a grid search runs without a
// deadline whatever the estimate: the boot model knows a simulator's and a
// typical 32B model's boots, while real boots take 5 to 30 minutes.
const MaxGridCandidates = 128

// CheckSchedule refuses what cannot fit a night: a deadline already past,
// and a grid strategy with no deadline to cut it that has more than
// MaxGridCandidates candidates or whose trials would take more than
// MaxGridTime. perTrial is each candidate's estimate; nil when not known
// yet (the candidates are then only counted).
func CheckSchedule(g *Grid, deadline, now time.Time, perTrial []time.Duration) error {
	if !deadline.IsZero() && !deadline.After(now) {
		return &ScheduleError{fmt.Sprintf("deadline %q (%s) has passed; set a later one, a time of day (07:00) or a duration (8h)", g.Deadline, deadline.Format("2006-01-02 15:04"))}
	}
	if g.Search.Adaptive() || !deadline.IsZero() {
		return nil
	}
	n := len(g.Expand())
	var total time.Duration
	for _, d := range perTrial {
		total += d
	}
	total /= time.Duration(max(1, len(g.Target.Slots))) // slots run trials at once
	if total <= MaxGridTime && n <= MaxGridCandidates {
		return nil
	}
	fix := "search it within a budget instead (search: {max_trials: 24}), or set a deadline (deadline: \"07:00\") to run what fits"
	var rules []string
	if n > MaxGridCandidates {
		rules = append(rules, fmt.Sprintf("%d candidates, more than the %d a grid runs without a deadline or a search", n, MaxGridCandidates))
	}
	if total > MaxGridTime {
		rules = append(rules, fmt.Sprintf("about %s of trials (%d candidates, about %s each), more than the %s a grid may plan without a deadline",
			About(total), n, About(total/time.Duration(max(1, len(perTrial)))), About(MaxGridTime)))
	}
	return &ScheduleError{fmt.Sprintf("the grid is too large for one night: %s; %s", strings.Join(rules, "; and "), fix)}
}

// ScheduleError says a grid does not fit its night: its deadline has
// passed, or it is too large without one. The grid is to be changed.
type ScheduleError struct{ msg string }

func (e *ScheduleError) Error() string { return e.msg }

// About writes an estimate for people: seconds under a minute ("40s",
// never "0s" for a positive one), minutes under an hour ("25m"), else hours
// and minutes ("2h10m").
func About(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", max(1, int(d.Round(time.Second)/time.Second)))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Round(time.Minute)/time.Minute))
	}
	d = d.Round(time.Minute)
	if m := int(d/time.Minute) % 60; m != 0 {
		return fmt.Sprintf("%dh%dm", int(d/time.Hour), m)
	}
	return fmt.Sprintf("%dh", int(d/time.Hour))
}

// ReplaySearch checks a finished adaptive run against its sampler: each
// trial must be what the sampler proposes from the trials before it (the
// property that makes a resumed run propose what the interrupted one
// would have). It returns the seq of the first trial that is not, or -1.
// Meaningful for runs on one slot: with several, a proposal also saw the
// trials then running.
func ReplaySearch(s Store, r *Run) (int, error) {
	if !r.Grid.Search.Adaptive() {
		return -1, nil
	}
	trials, err := s.Trials(r.ID)
	if err != nil {
		return -1, err
	}
	space := r.Grid.Expand()
	index := make(map[string]int, len(space))
	for i, c := range space {
		index[spaceKey(c)] = i
	}
	o := &Orchestrator{Store: s}
	sampler := NewSampler(&r.Grid)
	for k, t := range trials {
		obs, err := o.observe(r, trials[:k], index)
		if err != nil {
			return -1, err
		}
		if i, ok := sampler.Next(space, obs); !ok || i != index[spaceKey(t.Candidate)] {
			return t.Seq, nil
		}
	}
	return -1, nil
}
