package chart

import (
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestTicks(t *testing.T) {
	for _, tc := range []struct {
		hi   float64
		n    int
		want string
	}{
		{7.08, 5, "[0 2 4 6 8]"},
		{320.2, 5, "[0 100 200 300 400]"},
		{1, 5, "[0 0.2 0.4 0.6 0.8 1]"},
		{0.037, 5, "[0 0.01 0.02 0.03 0.04]"},
		{2291, 8, "[0 500 1000 1500 2000 2500]"},
		{0, 5, "[0 0.2 0.4 0.6 0.8 1]"},          // nothing measured: a unit axis
		{math.NaN(), 5, "[0 0.2 0.4 0.6 0.8 1]"}, // idem
		{50, 5, "[0 10 20 30 40 50]"},            // a round top is kept
	} {
		if got := fmt.Sprint(Ticks(tc.hi, tc.n)); got != tc.want {
			t.Errorf("Ticks(%g, %d) = %s, want %s", tc.hi, tc.n, got, tc.want)
		}
	}
	if got := label(0.6000000000000001, 0.2); got != "0.6" {
		t.Errorf("label: %q", got)
	}
}

// wellFormed parses an SVG as XML and returns the text of elements of a
// class, in order.
func wellFormed(t *testing.T, svg, class string) []string {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(svg))
	var out []string
	in := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("not well-formed SVG: %v\n%s", err, svg)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			for _, a := range e.Attr {
				if a.Name.Local == "class" && a.Value == class {
					in++
					out = append(out, "")
				}
			}
		case xml.CharData:
			if in > 0 {
				out[len(out)-1] += string(e)
			}
		case xml.EndElement:
			if in > 0 && e.Name.Local == "text" {
				in--
			}
		}
	}
}

func TestBars(t *testing.T) {
	nan := math.NaN()
	c := Bars{Title: "KV-cache acceleration", Unit: "×", Highlight: 0,
		Categories: []Category{{"#0", "#0 prefix <on> & 0.85"}, {"#1", "#1 prefix off"}},
		Series:     []Series{{Name: "acceleration", Color: "#337ab7", Values: []Value{{7.08, 6.96, 7.13}, {1.03, nan, nan}}}}}
	svg := c.SVG()
	if ticks := wellFormed(t, svg, "ytick"); strings.Join(ticks, ",") != "0,2,4,6,8" {
		t.Errorf("y ticks %v", ticks)
	}
	if x := wellFormed(t, svg, "xtick"); len(x) != 2 || !strings.HasSuffix(x[0], "#0") {
		t.Errorf("x ticks %v", x)
	}
	for _, want := range []string{"KV-cache acceleration (×)", `class="whisker"`, "95% CI 6.96 to 7.13", "#0 prefix &lt;on&gt; &amp; 0.85", "champion (#0)", `class="champion"`} {
		if !strings.Contains(svg, want) {
			t.Errorf("no %q in\n%s", want, svg)
		}
	}
	if n := strings.Count(svg, `class="whisker"`); n != 1 {
		t.Errorf("%d whiskers, want 1 (the second bar has no interval)", n)
	}
}

func TestScatter(t *testing.T) {
	c := Scatter{Title: "Throughput against latency", XLabel: "TTFT p50", XUnit: "ms", YLabel: "output throughput", YUnit: "tok/s",
		PointName: "candidate", HighlightName: "champion", Note: "2 candidate(s) not measured, not shown (see the table)",
		Points: []Point{{X: 42, Y: 2291, Label: "#6", Title: "#6 combined", Highlight: true}, {X: 55, Y: 2034, Label: "#4", Title: "#4 chunked"}}}
	svg := c.SVG()
	if x := wellFormed(t, svg, "xtick"); strings.Join(x, ",") != "0,10,20,30,40,50,60" {
		t.Errorf("x ticks %v", x)
	}
	if y := wellFormed(t, svg, "ytick"); strings.Join(y, ",") != "0,500,1000,1500,2000,2500" {
		t.Errorf("y ticks %v", y)
	}
	for _, want := range []string{"output throughput (tok/s)", "TTFT p50 (ms); 2 candidate(s) not measured", "#6 combined: output throughput 2291 tok/s, TTFT p50 42 ms", `class="point champion"`} {
		if !strings.Contains(svg, want) {
			t.Errorf("no %q in\n%s", want, svg)
		}
	}
}

func TestFront(t *testing.T) {
	pts := []Point{{X: 100, Y: 50}, {X: 80, Y: 40}, {X: 120, Y: 45}, {X: 60, Y: 20}, {X: 80, Y: 40}, {X: 200, Y: 60}}
	got := Front(pts)
	// #2 is beaten by #0 (faster, more throughput); #1 and #4 are equal:
	// neither beats the other, both stay.
	want := []int{3, 1, 4, 0, 5}
	if !slices.Equal(got, want) {
		t.Fatalf("Front = %v, want %v", got, want)
	}
	svg := Scatter{Title: "p", Points: pts, FrontName: "Pareto front"}.SVG()
	if !strings.Contains(svg, `<polyline class="front"`) || !strings.Contains(svg, "Pareto front") {
		t.Fatal("no front drawn")
	}
}

// Labels of close points do not overlap each other or another mark; a
// front of one point is marked as the legend says; a long y-axis name is
// shortened to the axis' height, whole on hover.
func TestScatterLabelsFrontAndAxisName(t *testing.T) {
	pts := []Point{{X: 37.4, Y: 3230, Label: "#0", Title: "a", Highlight: true}, {X: 37.9, Y: 3222, Label: "#1", Title: "b"},
		{X: 37.6, Y: 3226, Label: "#12", Title: "c"}, {X: 10, Y: 1000, Label: "#3", Title: "d"}}
	svg := Scatter{Title: "t", XLabel: "E2EL p95", XUnit: "ms", YLabel: "tok/s", PointName: "candidate", HighlightName: "champion", FrontName: "Pareto front", Points: pts}.SVG()
	re := regexp.MustCompile(`<text x="([\d.]+)" y="([\d.]+)" class="point-label">([^<]*)</text>`)
	var boxes []box
	for _, m := range re.FindAllStringSubmatch(svg, -1) {
		x, _ := strconv.ParseFloat(m[1], 64)
		y, _ := strconv.ParseFloat(m[2], 64)
		boxes = append(boxes, box{x, y - 10, x + charWidth*float64(len(m[3])), y + 2})
	}
	if len(boxes) != len(pts) {
		t.Fatalf("%d labels for %d points", len(boxes), len(pts))
	}
	for i := range boxes {
		for j := i + 1; j < len(boxes); j++ {
			if boxes[i].overlaps(boxes[j]) {
				t.Errorf("labels %d and %d overlap: %+v %+v", i, j, boxes[i], boxes[j])
			}
		}
	}
	one := Scatter{Title: "t", FrontName: "Pareto front", PointName: "candidate", HighlightName: "champion",
		Points: []Point{{X: 1, Y: 10, Label: "#0", Highlight: true}, {X: 2, Y: 5, Label: "#1"}}}.SVG()
	if strings.Count(one, `class="front-point"`) != 1 || !strings.Contains(one, "Pareto front") {
		t.Errorf("a one-point front is not marked:\n%s", one)
	}
	long := Bars{Title: "t", YLabel: strings.Repeat("very long axis name ", 10), Categories: []Category{{Label: "#0"}}, Highlight: -1,
		Series: []Series{{Name: "s", Values: []Value{{V: 1, Lo: math.NaN(), Hi: math.NaN()}}}}}.SVG()
	m := regexp.MustCompile(`class="ylabel"><title>[^<]*</title>([^<]*)</text>`).FindStringSubmatch(long)
	if m == nil || !strings.HasSuffix(m[1], "…") || float64(len([]rune(m[1])))*charWidth > height {
		t.Errorf("long y-axis name: %v", m)
	}
}
