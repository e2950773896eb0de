package soak

import (
	"fmt"
	"io"
	"slices"
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
}

// Recovery is Recovered - Cleared, or -1 when no progress was seen.
func (i Injection) Recovery() time.Duration {
	if i.Recovered.IsZero() || i.Skipped != "" {
		return -1
	}
	return max(i.Recovered.Sub(i.Cleared), 0)
}

// KindFigures are one kind's figures.
type KindFigures struct {
	Kind           Kind
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
		f := KindFigures{Kind: k, Outcomes: map[string]int{}}
		var rec []time.Duration
		for _, i := range inj {
			if i.Kind != k {
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
		out = append(out, f)
	}
	return out
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
}

// Print writes the figures as the closing note and docs/soak.md show them.
func (n Night) Print(w io.Writer) {
	fmt.Fprintf(w, "night soak, seed %d: %d trials, %d lost, %d counted twice, %d invariant violations\n", n.Seed, n.Trials, n.Lost, n.Duplicates, len(n.Violations))
	if n.FaultFree > 0 {
		fmt.Fprintf(w, "wall time %s with faults, %s without (x%.2f)\n", n.Wall.Round(100*time.Millisecond), n.FaultFree.Round(100*time.Millisecond), n.Wall.Seconds()/n.FaultFree.Seconds())
	} else {
		fmt.Fprintf(w, "wall time %s with faults\n", n.Wall.Round(100*time.Millisecond))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "fault\tinjected\trecovery median\trecovery max\thow the struck trials ended")
	for _, f := range Summarize(n.Injections) {
		med, mx := "-", "-"
		if f.Injected > f.NotRecovered {
			med, mx = f.Median.Round(10*time.Millisecond).String(), f.Max.Round(10*time.Millisecond).String()
		}
		var outs []string
		for o, c := range f.Outcomes {
			outs = append(outs, fmt.Sprintf("%s x%d", o, c))
		}
		slices.Sort(outs)
		line := fmt.Sprint(outs)
		if len(f.NotInjectedWhy) > 0 {
			line += fmt.Sprintf("; not injected %d: %v", len(f.NotInjectedWhy), f.NotInjectedWhy)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", f.Kind, f.Injected, med, mx, line)
	}
	tw.Flush()
	for _, v := range n.Violations {
		fmt.Fprintln(w, "VIOLATION:", v)
	}
}
