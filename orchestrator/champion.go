package orchestrator

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/perf/benchmath"

	"github.com/vgrid/vgrid/benchmark"
)

// Metrics computes a trial's metrics from its stored benchmark reports (one
// per repetition), recomputing every summary from the raw samples. Names:
// "SCENARIO.METRIC" (kv-cache.ttft_p50_ms, load.output_throughput_tok_s)
// and run-wide ones: errors (all scenarios), acceleration, tool_call_success,
// quality, peak_vram_mib. Each value is the median over repetitions
// (errors: the sum); reps holds the per-repetition values.
func Metrics(reports []*benchmark.Report) (values map[string]float64, reps map[string][]float64) {
	reps = map[string][]float64{}
	add := func(k string, v float64) {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			reps[k] = append(reps[k], v)
		}
	}
	for _, rep := range reports {
		errors := 0.0
		vram := math.NaN()
		for _, s := range rep.Scenarios {
			c := benchmark.SummarizeCommon(s.Results)
			p := s.Name + "."
			errors += float64(c.Errors)
			add(p+"errors", float64(c.Errors))
			add(p+"ttft_p50_ms", c.TTFT.P50)
			add(p+"ttft_p95_ms", c.TTFT.P95)
			add(p+"ttft_p99_ms", c.TTFT.P99)
			add(p+"tpot_p50_ms", c.TPOT.P50)
			add(p+"itl_p50_ms", c.ITL.P50)
			add(p+"e2el_p50_ms", c.E2EL.P50)
			add(p+"e2el_p95_ms", c.E2EL.P95)
			add(p+"output_throughput_tok_s", c.OutputThroughput)
			add(p+"request_throughput_rps", c.RequestThroughput)
			switch s.Name {
			case "kv-cache":
				kv, acc := benchmark.SummarizeKV(s.Results)
				add(p+"ttft_miss_p50_ms", kv.TTFTMiss.P50)
				add(p+"ttft_hit_p50_ms", kv.TTFTHit.P50)
				add(p+"acceleration", acc.Value)
				add("acceleration", acc.Value)
			case "long-conversation":
				d := benchmark.SummarizeConversation(s.Results)
				add(p+"degradation", d.Ratio)
			case "stability":
				d := benchmark.SummarizeStability(s.Results)
				add(p+"degradation", d.Ratio)
			case "load":
				slo := benchmark.Defaults().Load.SLO
				if rep.Settings != nil {
					slo = rep.Settings.Config.Load.SLO
				}
				best, good := 0.0, 0.0
				for _, l := range benchmark.SummarizeLoad(s.Results, slo) {
					best = math.Max(best, l.OutputThroughput)
					good = math.Max(good, l.Goodput)
				}
				add(p+"max_output_throughput_tok_s", best)
				add(p+"goodput_rps", good)
			case "sweep":
				cfg := benchmark.Defaults()
				if rep.Settings != nil {
					cfg = rep.Settings.Config
				}
				sw := benchmark.SummarizeSweep(s.Results, cfg.Load.SLO, cfg.Sweep.Attainment)
				add(p+"max_rate_rps", sw.MaxRate)
				add(p+"goodput_rps", sw.Goodput)
				add(p+"capacity_rps", sw.Capacity.RequestThroughput)
			}
			if s.ToolCallSuccess != nil {
				add("tool_call_success", *s.ToolCallSuccess)
			}
			if s.Quality != nil {
				add("quality", s.Quality.Score)
			}
			if s.GPU != nil {
				for _, g := range s.GPU.GPUs {
					if math.IsNaN(vram) || g.MemPeakMiB > vram {
						vram = g.MemPeakMiB
					}
				}
			}
		}
		add("errors", errors)
		add("peak_vram_mib", vram)
	}
	values = map[string]float64{}
	for k, v := range reps {
		if k == "errors" || strings.HasSuffix(k, ".errors") {
			sum := 0.0
			for _, x := range v {
				sum += x
			}
			values[k] = sum
			continue
		}
		values[k] = medianOf(v)
	}
	return values, reps
}

func medianOf(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return benchmark.Percentile(s, 50)
}

// Samples returns the per-request values behind a latency metric
// (SCENARIO.ttft_pNN_ms, tpot, itl, e2el) across repetitions, for the
// confidence test; nil for other metrics.
func Samples(reports []*benchmark.Report, metric string) []float64 {
	scenario, name, ok := strings.Cut(metric, ".")
	if !ok {
		return nil
	}
	var kind string
	for _, k := range []string{"ttft", "tpot", "itl", "e2el"} {
		if strings.HasPrefix(name, k+"_p") && strings.HasSuffix(name, "_ms") {
			kind = k
		}
	}
	if kind == "" {
		return nil
	}
	var out []float64
	for _, rep := range reports {
		for _, s := range rep.Scenarios {
			if s.Name != scenario {
				continue
			}
			for _, r := range s.Results {
				if r.Warmup || !r.OK() || r.Chunks == 0 {
					continue
				}
				switch kind {
				case "ttft":
					out = append(out, float64(r.TTFT.Microseconds())/1000)
				case "e2el":
					out = append(out, float64(r.E2EL.Microseconds())/1000)
				case "tpot":
					if t, ok := r.TPOT(); ok {
						out = append(out, float64(t.Microseconds())/1000)
					}
				case "itl":
					for _, g := range r.ITL {
						out = append(out, float64(g.Microseconds())/1000)
					}
				}
			}
		}
	}
	return out
}

// Scored is a trial ready for the verdict.
type Scored struct {
	Seq       int
	Name      string
	Candidate Candidate
	Done      bool                 // the trial was measured
	Outcome   string               // how it ended, when not measured
	Hardware  string               // the GPUs it ran on, when known (slots)
	Values    map[string]float64   // Metrics
	Reps      map[string][]float64 // per repetition
	Samples   []float64            // per-request samples of the objective, when it is a latency metric
	CI        *benchmark.CI        // the objective's bootstrap CI, when it is an acceleration
	// Settings are the benchmark settings the trial's reports record (nil:
	// reports from before settings were recorded); Mixed says its
	// repetitions were not all measured the same way.
	Settings *benchmark.Settings
	Mixed    string
	// Boots are the objective's values of the candidate's boots, when the
	// verdict pooled its trial with confirm's fresh boots of it.
	Boots []float64
	// BootCIs are the objective's bootstrap intervals of those boots, one
	// each (nil where a boot has none), for the test a boot alone passes.
	BootCIs []*benchmark.CI
}

// SettingsOf returns the settings of a trial's reports and, when its
// repetitions disagree, how.
func SettingsOf(reports []*benchmark.Report) (*benchmark.Settings, string) {
	var first *benchmark.Settings
	for i, r := range reports {
		if r.Settings == nil {
			continue
		}
		if first == nil {
			first = r.Settings
			continue
		}
		// A repetition of some scenarios alone (benchmark.precision's,
		// of the objective's) is compared on those scenarios.
		like := *first
		if subset(r.Settings.Scenarios, first.Scenarios) {
			like.Scenarios = r.Settings.Scenarios
		}
		if d := like.Diff(*r.Settings); d != "" {
			return first, fmt.Sprintf("repetition %d was measured differently from the first (%s)", i, d)
		}
	}
	return first, ""
}

// subset reports whether every name of a is in b.
func subset(a, b []string) bool {
	for _, n := range a {
		if !slices.Contains(b, n) {
			return false
		}
	}
	return true
}

// AccelerationCI pools the kv-cache samples of every repetition and
// returns acceleration = median miss TTFT / median hit TTFT with its
// bootstrap 95% CI; nil without kv-cache results.
func AccelerationCI(reports []*benchmark.Report) *benchmark.CI {
	_, ci := KVSummary(reports)
	return ci
}

// KVSummary summarises the kv-cache requests of every repetition: TTFT
// miss and hit, and the acceleration with its CI (nil without any).
func KVSummary(reports []*benchmark.Report) (benchmark.KVReport, *benchmark.CI) {
	var all []benchmark.Result
	for _, rep := range reports {
		for _, s := range rep.Scenarios {
			if s.Name == "kv-cache" {
				all = append(all, s.Results...)
			}
		}
	}
	if len(all) == 0 {
		return benchmark.KVReport{}, nil
	}
	kv, ci := benchmark.SummarizeKV(all)
	return kv, &ci
}

// Rank is one candidate's place in the verdict.
type Rank struct {
	Seq       int     `json:"seq"`
	Name      string  `json:"name"`
	Objective float64 `json:"objective"`
	Eligible  bool    `json:"eligible"`
	Why       string  `json:"why,omitempty"` // why it is out
	// Boots counts the boots its objective pools (its trial and confirm's
	// fresh boots of it, the objective their mean); 0 or 1: one.
	Boots int `json:"boots,omitempty"`
}

// MarshalJSON writes an unmeasured objective (NaN) as null.
func (r Rank) MarshalJSON() ([]byte, error) {
	type plain Rank
	var obj *float64
	if !math.IsNaN(r.Objective) && !math.IsInf(r.Objective, 0) {
		obj = &r.Objective
	}
	return json.Marshal(struct {
		plain
		Objective *float64 `json:"objective"`
	}{plain(r), obj})
}

// UnmarshalJSON reads null back as NaN.
func (r *Rank) UnmarshalJSON(b []byte) error {
	type plain Rank
	var v struct {
		plain
		Objective *float64 `json:"objective"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*r = Rank(v.plain)
	r.Objective = math.NaN()
	if v.Objective != nil {
		r.Objective = *v.Objective
	}
	return nil
}

// Verdict is the champion and why.
type Verdict struct {
	Metric   string  `json:"metric"`
	Maximize bool    `json:"maximize"`
	Champion int     `json:"champion"` // trial seq; -1 when none
	Name     string  `json:"name,omitempty"`
	RunnerUp int     `json:"runner_up"` // -1 when none
	Tie      bool    `json:"tie"`
	P        float64 `json:"p,omitempty"` // p-value of the leader against the runner-up
	Method   string  `json:"method,omitempty"`
	Reason   string  `json:"reason"`
	Ranking  []Rank  `json:"ranking"`
	// Contenders are the trials (seqs) of the candidates the leader is
	// not separated from, the leader first, best first: what confirm
	// boots again. Empty when the leader is crowned by the test.
	Contenders []int `json:"contenders,omitempty"`
	// Equivalent are the candidates shown equivalent to the leader
	// within Within percent (the leader included), the set the tie rule
	// chose from; empty when none was.
	Equivalent []int   `json:"equivalent,omitempty"`
	Within     float64 `json:"within,omitempty"`
	// Open are the contenders neither beaten by the leader nor shown
	// equivalent to it: what more boots (confirm) could settle.
	Open []int `json:"open,omitempty"`
	// Cancelled marks the verdict of a cancelled run: its champion is the
	// best so far among the trials measured before the cancel; nothing
	// was crowned.
	Cancelled bool `json:"cancelled,omitempty"`
}

// Title heads the verdict: "Champion: NAME", "Best so far (run
// cancelled): NAME", or "No champion".
func (v *Verdict) Title() string {
	switch {
	case v.Champion < 0 && v.Cancelled:
		return "No champion (run cancelled)"
	case v.Champion < 0:
		return "No champion"
	case v.Cancelled:
		return "Best so far (run cancelled): " + v.Name
	}
	return "Champion: " + v.Name
}

// Alpha is the significance level of the champion test.
const Alpha = 0.05

// Choose crowns a champion. Candidates that were not measured or that
// violate a constraint are out; the objective ranks the rest; the leader
// is crowned only if it beats the runner-up with confidence (Mann-Whitney
// U over per-request samples for latency metrics, over repetitions
// otherwise, via benchmath); otherwise it is a tie and the tie rule decides.
// Pure.
func Choose(g *Grid, scored []Scored) *Verdict {
	v := &Verdict{Champion: -1, RunnerUp: -1, Metric: g.Objective.Minimize, Maximize: g.Objective.Maximize != ""}
	if v.Maximize {
		v.Metric = g.Objective.Maximize
	}
	var cons []Constraint
	for _, c := range g.Constraints {
		if pc, err := ParseConstraint(c); err == nil {
			cons = append(cons, pc)
		}
	}
	want := g.Benchmark.Settings()
	var eligible []Scored
	for _, s := range scored {
		r := Rank{Seq: s.Seq, Name: s.Name, Objective: math.NaN()}
		obj, has := s.Values[v.Metric]
		switch {
		case !s.Done && s.Outcome == "pruned":
			r.Why = "pruned: worse than the champion of its time by the prune test (one-sided), its benchmark stopped early"
		case !s.Done:
			r.Why = "not measured (failed or skipped)"
		case s.Mixed != "":
			r.Objective, r.Why = obj, "not comparable: "+s.Mixed
		case s.Settings != nil && !s.Settings.Equal(want):
			r.Objective, r.Why = obj, "not comparable: measured under other benchmark settings than the grid's ("+s.Settings.Diff(want)+")"
		case !has:
			r.Why = v.Metric + " was not measured"
		default:
			r.Objective = obj
			r.Eligible = true
			for _, c := range cons {
				if ok, why := c.Holds(s.Values); !ok {
					r.Eligible, r.Why = false, why
					break
				}
			}
		}
		if r.Eligible {
			eligible = append(eligible, s)
		}
		v.Ranking = append(v.Ranking, r)
	}
	better := func(a, b float64) bool {
		if v.Maximize {
			return a > b
		}
		return a < b
	}
	eligible = poolBoots(eligible, v.Metric)
	pooled := map[string]Scored{}
	for _, s := range eligible {
		pooled[s.Name+"\x00"+spaceKey(s.Candidate)] = s
	}
	candidate := make(map[int]Candidate, len(scored))
	for _, s := range scored {
		candidate[s.Seq] = s.Candidate
	}
	for i := range v.Ranking {
		r := &v.Ranking[i]
		if !r.Eligible {
			continue
		}
		p := pooled[r.Name+"\x00"+spaceKey(candidate[r.Seq])]
		switch {
		case p.Seq == r.Seq && len(p.Boots) > 1:
			r.Objective, r.Boots = p.Values[v.Metric], len(p.Boots)
		case p.Seq != r.Seq:
			r.Eligible, r.Why = false, fmt.Sprintf("a fresh boot of trial %d's candidate: counted in its row (the mean of its boots)", p.Seq)
		}
	}
	sort.SliceStable(eligible, func(i, j int) bool { return better(eligible[i].Values[v.Metric], eligible[j].Values[v.Metric]) })
	sort.SliceStable(v.Ranking, func(i, j int) bool {
		a, b := v.Ranking[i], v.Ranking[j]
		if a.Eligible != b.Eligible {
			return a.Eligible
		}
		if math.IsNaN(a.Objective) || math.IsNaN(b.Objective) {
			return !math.IsNaN(a.Objective)
		}
		return better(a.Objective, b.Objective)
	})
	if why := hardwareClasses(eligible, v.Metric); why != "" {
		v.Reason = why
		return v
	}
	switch len(eligible) {
	case 0:
		v.Reason = "no candidate was measured and met every constraint"
		return v
	case 1:
		v.Champion, v.Name = eligible[0].Seq, eligible[0].Name
		v.Reason = "the only candidate measured and within the constraints"
		return v
	}
	lead, second := eligible[0], eligible[1]
	v.RunnerUp = second.Seq
	if rebooted(lead, second) {
		lo, hi, method, _ := difference(lead, second, v.Metric, v.Maximize)
		v.Method = fmt.Sprintf("%s: %s is %.2f%% to %.2f%% worse (95%%)", method, second.Name, lo, hi)
		// Boots make the candidates' intervals unequal: one booted once
		// below a runner-up booted three times can still be open, so the
		// leader beats the field only if it beats every other candidate.
		if set := v.undecided(eligible); len(set) > 1 {
			return v.tie(g, set, v.Method)
		}
		var beaten []string
		for _, s := range eligible[1:] {
			beaten = append(beaten, fmt.Sprintf("%s (%g)", s.Name, round(s.Values[v.Metric])))
		}
		v.Champion, v.Name = lead.Seq, lead.Name
		v.Reason = fmt.Sprintf("%s %s %g (mean of %d boots) beats %s with confidence: %s", lead.Name, v.Metric, round(lead.Values[v.Metric]), len(lead.Boots), strings.Join(beaten, ", "), v.Method)
		return v
	}
	if lead.CI != nil && second.CI != nil {
		sep := lead.CI.Lo > second.CI.Hi
		if !v.Maximize {
			sep = lead.CI.Hi < second.CI.Lo
		}
		v.Method = fmt.Sprintf("bootstrap 95%% CIs [%.3g, %.3g] and [%.3g, %.3g]", lead.CI.Lo, lead.CI.Hi, second.CI.Lo, second.CI.Hi)
		if sep {
			v.Champion, v.Name = lead.Seq, lead.Name
			v.Reason = fmt.Sprintf("%s %s %g beats %s (%g) by the champion test (two-sided, 95%%): %s do not overlap",
				lead.Name, v.Metric, round(lead.Values[v.Metric]), second.Name, round(second.Values[v.Metric]), v.Method)
			return v
		}
		return v.tie(g, v.undecided(eligible), v.Method+" overlap")
	}
	v.P, v.Method = compare(lead, second, v.Metric)
	if v.Method != "" && v.P < Alpha {
		v.Champion, v.Name = lead.Seq, lead.Name
		v.Reason = fmt.Sprintf("%s %s %g beats %s (%g) by the champion test (%s, two-sided p=%.3g < %g)",
			lead.Name, v.Metric, round(lead.Values[v.Metric]), second.Name, round(second.Values[v.Metric]), v.Method, v.P, Alpha)
		return v
	}
	why := "no repeated measurements to test (set benchmark.repetitions >= 4, or use a latency metric)"
	if v.Method != "" {
		why = fmt.Sprintf("%s p=%.3g >= %g", v.Method, v.P, Alpha)
	}
	return v.tie(g, v.undecided(eligible), why)
}

// everyBootBeats reports whether each boot of a beats each boot of b by
// their bootstrap intervals (an acceleration's); false when a boot has
// none.
func (v *Verdict) everyBootBeats(a, b Scored) bool {
	if len(a.BootCIs) == 0 || len(b.BootCIs) == 0 {
		return false
	}
	for _, x := range a.BootCIs {
		for _, y := range b.BootCIs {
			if x == nil || y == nil {
				return false
			}
			if v.Maximize && x.Lo <= y.Hi || !v.Maximize && x.Hi >= y.Lo {
				return false
			}
		}
	}
	return true
}

// rebooted reports whether a and b are compared boot against boot: one of
// them was booted again (confirm), so the boot is the unit of the
// comparison, with the spread of the side booted more standing for a
// side booted once (difference). A pooled side has no bootstrap interval
// of its own (its boots' samples mixed): the single-boot test applies to
// it boot by boot (everyBootBeats).
func rebooted(a, b Scored) bool { return len(a.Boots) >= 2 || len(b.Boots) >= 2 }

// undecided is the set a tie is decided among: the leader and every other
// eligible candidate it does not beat with confidence (the runner-up
// among them when the champion test did not separate the two). Without that, among
// equals the tie rule would only see whichever two noise put on top.
func (v *Verdict) undecided(eligible []Scored) []Scored {
	lead := eligible[0]
	set := []Scored{lead}
	for _, s := range eligible[1:] {
		if !v.beats(lead, s) {
			set = append(set, s)
		}
	}
	return set
}

// beats reports whether a beats b on the verdict's metric with confidence,
// by the test Choose uses for the leader and the runner-up.
func (v *Verdict) beats(a, b Scored) bool {
	if rebooted(a, b) {
		if lo, _, _, ok := difference(a, b, v.Metric, v.Maximize); ok && lo > 0 {
			return true
		}
		// Two or three boots say little of the boot-to-boot spread (Student's
		// t on one degree of freedom is 12.7), so a candidate at a twelfth
		// of the leader could stay "not separated" by that test alone; it is
		// beaten too when every boot of a beats every boot of b by the test
		// for single boots (their bootstrap intervals apart).
		return v.everyBootBeats(a, b)
	}
	if a.CI != nil && b.CI != nil {
		if v.Maximize {
			return a.CI.Lo > b.CI.Hi
		}
		return a.CI.Hi < b.CI.Lo
	}
	p, method := compare(a, b, v.Metric)
	return method != "" && p < Alpha
}

// hardwareClasses says why no overall champion is crowned when the
// eligible trials ran on different hardware (slots on different GPU
// models): it names each class's leader. "" when they share one class.
// eligible is sorted best first.
func hardwareClasses(eligible []Scored, metric string) string {
	var order []string
	lead := map[string]Scored{}
	count := map[string]int{}
	for _, s := range eligible {
		h := s.Hardware
		if h == "" {
			h = "unknown hardware"
		}
		if count[h] == 0 {
			order = append(order, h)
			lead[h] = s
		}
		count[h]++
	}
	if len(order) < 2 {
		return ""
	}
	var parts []string
	for _, h := range order {
		parts = append(parts, fmt.Sprintf("%s: %s (%s %g, %d trial(s))", h, lead[h].Name, metric, round(lead[h].Values[metric]), count[h]))
	}
	return "no overall champion: the trials ran on different hardware, and a result holds only for the hardware it was measured on; leaders per hardware class: " + strings.Join(parts, "; ")
}

// tie decides when the leader is not separated from the others (set:
// the leader first, then every candidate it does not beat, best first).
// Those shown equivalent to the leader (the 95% interval of their
// difference within ±within) are the tie rule's choice, the leader among
// them; the others are neither beaten nor equivalent, and the tie rule
// never picks them: with none equivalent, the leader is crowned on its
// point estimate. Either way the set is the contenders confirm boots
// again.
func (v *Verdict) tie(g *Grid, set []Scored, why string) *Verdict {
	v.Tie = true
	lead := set[0]
	for _, s := range set {
		v.Contenders = append(v.Contenders, s.Seq)
	}
	margin := g.within()
	equiv := []Scored{lead}
	var eqText, openText []string
	bound := 0.0
	for _, s := range set[1:] {
		lo, hi, method, ok := difference(lead, s, v.Metric, v.Maximize)
		switch {
		case ok && lo >= -margin && hi <= margin:
			equiv = append(equiv, s)
			bound = math.Max(bound, math.Max(-lo, hi))
			eqText = append(eqText, fmt.Sprintf("%s %+.2f%% to %+.2f%% (%s)", s.Name, lo, hi, method))
		case ok:
			v.Open = append(v.Open, s.Seq)
			openText = append(openText, fmt.Sprintf("%s (%g: %+.2f%% to %+.2f%% worse, %s)", s.Name, round(s.Values[v.Metric]), lo, hi, method))
		default:
			v.Open = append(v.Open, s.Seq)
			openText = append(openText, fmt.Sprintf("%s (%g: no interval, one measurement)", s.Name, round(s.Values[v.Metric])))
		}
	}
	winner, rule := lead, "the better point estimate"
	if tie, err := ParseTie(g.Tie); err == nil && g.Tie != "" && len(equiv) > 1 {
		best, values := lead, map[float64]bool{}
		bestV, have := 0.0, false
		for _, s := range equiv {
			x, ok := flagFloat(s.Candidate, tie.Flag)
			if !ok {
				continue
			}
			values[x] = true
			if !have || (tie.Higher && x > bestV) || (!tie.Higher && x < bestV) {
				best, bestV, have = s, x, true
			}
		}
		if len(values) > 1 {
			winner, rule = best, g.Tie
		}
	}
	v.Champion, v.Name = winner.Seq, winner.Name
	var b strings.Builder
	if len(equiv) > 1 {
		var names []string
		for _, s := range equiv {
			names = append(names, fmt.Sprintf("%s (%g)", s.Name, round(s.Values[v.Metric])))
			v.Equivalent = append(v.Equivalent, s.Seq)
		}
		v.Within = math.Ceil(bound*10) / 10
		fmt.Fprintf(&b, "%s are equivalent within %.1f%% on %s (the leader not separated: %s; 95%% intervals of the difference from %s, inside ±%g%%: %s); decided by %s",
			joinAnd(names), v.Within, v.Metric, why, lead.Name, margin, strings.Join(eqText, "; "), rule)
	} else {
		fmt.Fprintf(&b, "%s (%g) leads on %s but is not separated from the runner-up (%s), and no candidate is shown within ±%g%% of it: crowned on its point estimate",
			lead.Name, round(lead.Values[v.Metric]), v.Metric, why, margin)
	}
	if len(openText) > 0 {
		fmt.Fprintf(&b, "; not separated from the leader, nor shown equivalent (the tie rule does not choose them): %s", strings.Join(openText, "; "))
		if g.Confirm == nil {
			b.WriteString("; confirm: {top: 3, boots: 2} would boot the contenders again, benchmark.precision measure them longer")
		}
	}
	v.Reason = b.String()
	return v
}

// joinAnd writes "a, b and c".
func joinAnd(s []string) string {
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

func round(f float64) float64 { return math.Round(f*1000) / 1000 }

func flagFloat(c Candidate, flag string) (float64, bool) {
	v, ok := c.Get(flag)
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(v, 64)
	return f, err == nil
}

// compare tests whether the leader and the runner-up differ: Mann-Whitney U
// on per-request samples when both have them, else on repetitions.
func compare(a, b Scored, metric string) (p float64, method string) {
	x, y := a.Samples, b.Samples
	method = "Mann-Whitney U over per-request samples"
	if len(x) < 2 || len(y) < 2 {
		x, y = a.Reps[metric], b.Reps[metric]
		method = "Mann-Whitney U over repetitions"
	}
	if len(x) < 2 || len(y) < 2 {
		return 0, ""
	}
	th := &benchmath.DefaultThresholds
	c := benchmath.AssumeNothing.Compare(benchmath.NewSample(x, th), benchmath.NewSample(y, th))
	return c.P, method
}

// Metric names Metrics computes: across scenarios, and per scenario
// (SCENARIO.NAME).
var (
	globalMetrics   = []string{"acceleration", "errors", "peak_vram_mib", "quality", "tool_call_success"}
	scenarioMetrics = []string{"errors", "ttft_p50_ms", "ttft_p95_ms", "ttft_p99_ms", "tpot_p50_ms", "itl_p50_ms", "e2el_p50_ms", "e2el_p95_ms",
		"output_throughput_tok_s", "request_throughput_rps"}
	perScenario = map[string][]string{
		"kv-cache":          {"ttft_miss_p50_ms", "ttft_hit_p50_ms", "acceleration"},
		"long-conversation": {"degradation"},
		"stability":         {"degradation"},
		"load":              {"max_output_throughput_tok_s", "goodput_rps"},
		"sweep":             {"max_rate_rps", "goodput_rps", "capacity_rps"},
	}
)

// KnownMetric says what is wrong with a metric name for an objective: a
// name Metrics never computes would leave every candidate without a value
// and the run without a champion, after a whole night. Pure.
func KnownMetric(name string) error {
	scenario, metric, scoped := strings.Cut(name, ".")
	if !scoped {
		if slices.Contains(globalMetrics, name) {
			return nil
		}
		return fmt.Errorf("%q is not a metric vgrid computes; across scenarios: %s; or SCENARIO.METRIC (e.g. load.max_output_throughput_tok_s; docs/grid-file.md#metrics-objective-and-constraints)", name, strings.Join(globalMetrics, ", "))
	}
	if !slices.Contains(benchmark.Scenarios, scenario) {
		return fmt.Errorf("%q: no scenario %q; scenarios: %s", name, scenario, strings.Join(benchmark.Scenarios, ", "))
	}
	if slices.Contains(scenarioMetrics, metric) || slices.Contains(perScenario[scenario], metric) {
		return nil
	}
	return fmt.Errorf("%q: scenario %s has no metric %q; it has %s", name, scenario, metric, strings.Join(append(slices.Clone(perScenario[scenario]), scenarioMetrics...), ", "))
}
