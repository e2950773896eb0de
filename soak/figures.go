package soak

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Injection is what happened to one fault of the schedule.
type Injection struct {
	Fault
	Run, Trial string    // where it struck ("" when it struck between trials)
	At         time.Time // injected
	Cleared    time.Time // the condition ended (= At for an instant fault)
	Recovered  time.Time // vgrid's next persisted progress after Cleared; zero: none seen
	Outcome    string    // how the struck trial ended (phase and reason, or "redone")
	Skipped    string    // why it was not injected ("" when it was)
	AfterEnd   bool      // it cleared after every run had ended (short form): no progress was left to judge

	// Candidate names the struck trial's candidate (grid and candidate),
	// Final its outcome as Outcome without "redone" or notes, for the
	// comparison with a fault-free night.
	Candidate, Final string
}

// Recovery is Recovered - Cleared, or -1 when no progress was seen.
func (i Injection) Recovery() time.Duration {
	if i.Recovered.IsZero() || i.Skipped != "" {
		return -1
	}
	return max(i.Recovered.Sub(i.Cleared), 0)
}

// KindFigures are one kind's figures, at one phase or (Phase "") all.
type KindFigures struct {
	Kind           Kind
	Phase          string
	Injected       int
	Median, Max    time.Duration // recovery
	Outcomes       map[string]int
	NotRecovered   int
	NotInjectedWhy []string
}

// Summarize groups injections by kind, in Kinds' order.
func Summarize(inj []Injection) []KindFigures {
	var out []KindFigures
	for _, k := range Kinds {
		out = append(out, summarize(inj, k, ""))
	}
	return out
}

// SummarizePairs groups injections by kind and phase, in Pairs' order;
// the pairs the night did not try are left out.
func SummarizePairs(inj []Injection) []KindFigures {
	var out []KindFigures
	for _, p := range Pairs() {
		if f := summarize(inj, p.Kind, p.Phase); f.Injected > 0 || len(f.NotInjectedWhy) > 0 {
			out = append(out, f)
		}
	}
	return out
}

func summarize(inj []Injection, k Kind, phase string) KindFigures {
	f := KindFigures{Kind: k, Phase: phase, Outcomes: map[string]int{}}
	var rec []time.Duration
	for _, i := range inj {
		if i.Kind != k || phase != "" && i.Phase != phase {
			continue
		}
		if i.Skipped != "" {
			f.NotInjectedWhy = append(f.NotInjectedWhy, i.Skipped)
			continue
		}
		f.Injected++
		if i.Outcome != "" {
			f.Outcomes[i.Outcome]++
		}
		if d := i.Recovery(); d >= 0 {
			rec = append(rec, d)
		} else {
			f.NotRecovered++
		}
	}
	if len(rec) > 0 {
		slices.Sort(rec)
		f.Median, f.Max = median(rec), rec[len(rec)-1]
	}
	return f
}

func median(s []time.Duration) time.Duration {
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Night is what a soak measured.
type Night struct {
	Seed             uint64
	Trials           int
	Lost, Duplicates int
	Violations       []string
	Wall, FaultFree  time.Duration // FaultFree: 0 when not run
	Injections       []Injection
	Differences      []Difference
	Pairs            bool // print the kind × phase table too (the long form)
}

// Print writes the figures as the closing note and docs/soak.md show them.
func (n Night) Print(w io.Writer) {
	fmt.Fprintf(w, "night soak, seed %d: %d trials, %d lost, %d counted twice, %d invariant violations\n", n.Seed, n.Trials, n.Lost, n.Duplicates, len(n.Violations))
	if n.FaultFree > 0 {
		fmt.Fprintf(w, "wall time %s with faults, %s without (x%.2f)\n", n.Wall.Round(100*time.Millisecond), n.FaultFree.Round(100*time.Millisecond), n.Wall.Seconds()/n.FaultFree.Seconds())
	} else {
		fmt.Fprintf(w, "wall time %s with faults\n", n.Wall.Round(100*time.Millisecond))
	}
	table(w, "fault", Summarize(n.Injections))
	if n.Pairs {
		fmt.Fprintln(w)
		table(w, "fault at phase", SummarizePairs(n.Injections))
	}
	if len(n.Differences) > 0 {
		fmt.Fprintln(w, "\nstruck trials that ended unlike the same candidate without faults:")
		for _, d := range n.Differences {
			fmt.Fprintf(w, "  %s\n", d)
		}
	}
	for _, v := range n.Violations {
		fmt.Fprintln(w, "VIOLATION:", v)
	}
}

func table(w io.Writer, head string, rows []KindFigures) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "%s\tinjected\trecovery median\trecovery max\thow the struck trials ended\n", head)
	for _, f := range rows {
		med, mx := "-", "-"
		if f.Injected > f.NotRecovered {
			med, mx = f.Median.Round(10*time.Millisecond).String(), f.Max.Round(10*time.Millisecond).String()
		}
		var outs []string
		for o, c := range f.Outcomes {
			outs = append(outs, fmt.Sprintf("%s x%d", o, c))
		}
		slices.Sort(outs)
		line := strings.Join(outs, "; ")
		if f.NotRecovered > 0 {
			line += fmt.Sprintf("; NO PROGRESS after %d", f.NotRecovered)
		}
		if len(f.NotInjectedWhy) > 0 {
			line += fmt.Sprintf("; not injected %d: %s", len(f.NotInjectedWhy), strings.Join(counted(f.NotInjectedWhy), "; "))
		}
		name := string(f.Kind)
		if f.Phase != "" {
			name += " @ " + f.Phase
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", name, f.Injected, med, mx, strings.TrimPrefix(line, "; "))
	}
	tw.Flush()
}

// counted writes each distinct reason once, with its count.
func counted(why []string) []string {
	n := map[string]int{}
	var order []string
	for _, w := range why {
		if n[w] == 0 {
			order = append(order, w)
		}
		n[w]++
	}
	out := make([]string, len(order))
	for i, w := range order {
		out[i] = w
		if n[w] > 1 {
			out[i] += fmt.Sprintf(" ×%d", n[w])
		}
	}
	return out
}

// A Difference is a struck trial that ended unlike its candidate without
// the fault.
type Difference struct {
	Injection
	FaultFree string // the candidate's outcomes in fault-free trials
	Explained string // why, when docs/soak.md explains it ("" when not: a finding)
}

func (d Difference) String() string {
	s := fmt.Sprintf("%s at %s struck %s (%s): ended %q, without faults %s", d.Kind, d.Phase, d.Trial, d.Candidate, d.Final, d.FaultFree)
	if d.Explained != "" {
		s += "; explained: " + d.Explained
	} else {
		s += "; NOT EXPLAINED"
	}
	return s
}

// aimed is what a fault aimed at the server may make of a trial besides
// its fault-free outcome: the failure it causes. A fault that strikes
// vgrid, its engine or its disks must leave no trace in the outcome.
var aimed = map[Kind][]string{
	EngineDeath: {"failed (engine_dead)"},
	DecodeStall: {"failed (stalled)"},
	OOMKill:     {"failed (crash_loop)"},
	// SIGUSR1 crashes a start in progress; an engine already up (the
	// trial still shown waiting-ready while vgrid checks it) dies of it.
	ContainerRestart: {"failed (crash_loop)", "failed (engine_dead)"},
}

// explained are the differences docs/soak.md explains, by kind and
// outcome.
var explained = map[string]string{}

// Compare flags each struck trial whose final outcome differs from its
// candidate's outcome in fault-free trials (ref: candidate -> outcome ->
// how many fault-free trials ended so) other than as the fault itself
// explains. A candidate never seen without a fault is not compared.
func Compare(inj []Injection, ref map[string]map[string]int) []Difference {
	var out []Difference
	for _, i := range inj {
		if i.Skipped != "" || i.Candidate == "" || i.Final == "" {
			continue
		}
		seen := ref[i.Candidate]
		if len(seen) == 0 || seen[i.Final] > 0 || slices.Contains(aimed[i.Kind], i.Final) {
			continue
		}
		var was []string
		for o, c := range seen {
			was = append(was, fmt.Sprintf("%q x%d", o, c))
		}
		slices.Sort(was)
		out = append(out, Difference{Injection: i, FaultFree: strings.Join(was, ", "), Explained: explained[string(i.Kind)+" "+i.Final]})
	}
	return out
}
