// Package chart draws the SVG charts of vgrid's HTML report (and of the
// dashboard, which renders the same report code): bar charts with 95%
// confidence whiskers and scatter plots, each with axes, ticks, units, a
// legend, and every mark named on hover. Self-contained SVG, no script,
// nothing fetched.
//
// May import: the standard library. Nothing of vgrid.
package chart

import (
	"fmt"
	"html"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Geometry of every chart, in SVG units.
const (
	width  = 760
	height = 320
	left   = 70 // room for the y ticks and the y label
	right  = 20
	top    = 40 // room for the title and the legend
	bottom = 50 // room for the x ticks and the x label
)

// Value is one measurement with its 95% interval (Lo, Hi: NaN when none).
type Value struct{ V, Lo, Hi float64 }

// Series is one measure across the categories (a bar per category).
type Series struct {
	Name   string // in the legend
	Color  string
	Values []Value // one per category; NaN V: not measured
}

// Category is one bar group: a short label under the axis and a full
// title on hover.
type Category struct{ Label, Title string }

// Bars is a grouped bar chart.
type Bars struct {
	Title      string
	YLabel     string // the y axis' name ("TTFT p50"); the title when empty
	Unit       string // of the y axis ("ms", "×", "tok/s")
	Categories []Category
	Series     []Series
	Highlight  int // the category marked (the champion); -1 for none
	Note       string
}

// Point is one mark of a scatter plot.
type Point struct {
	X, Y      float64
	Label     string // beside the mark ("#3")
	Title     string // on hover
	Highlight bool   // drawn apart, with its own legend entry
}

// Scatter is a scatter plot.
type Scatter struct {
	Title         string
	XLabel, XUnit string
	YLabel, YUnit string
	Points        []Point
	PointName     string // legend of the plain points ("candidate")
	HighlightName string // legend of the highlighted ones ("champion")
	// FrontName, when set, draws the Pareto front (the points no other
	// beats on both: higher Y and lower X) as a dashed line, with this
	// legend ("Pareto front: ...").
	FrontName string
	Note      string
}

// Front returns the indexes of the points on the Pareto front of a
// higher-Y, lower-X trade-off, by increasing X: a point is on it when no
// other point has a Y at least as high with an X at least as low (and is
// better on one). Pure.
func Front(pts []Point) []int {
	var out []int
	for i, p := range pts {
		dominated := false
		for j, q := range pts {
			if i != j && q.Y >= p.Y && q.X <= p.X && (q.Y > p.Y || q.X < p.X) {
				dominated = true
				break
			}
		}
		if !dominated {
			out = append(out, i)
		}
	}
	slices.SortStableFunc(out, func(a, b int) int { return cmpFloat(pts[a].X, pts[b].X) })
	return out
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Ticks returns round tick values from 0 to at least hi: about n of them,
// spaced 1, 2 or 5 times a power of ten.
func Ticks(hi float64, n int) []float64 {
	if !(hi > 0) || math.IsInf(hi, 0) {
		hi = 1
	}
	raw := hi / float64(max(n, 1))
	pow := math.Pow(10, math.Floor(math.Log10(raw)))
	mult := 10.0
	for _, m := range []float64{1, 2, 5, 10} {
		if m*pow >= raw {
			mult = m
			break
		}
	}
	// k*mult*pow, computed so that 0.6 prints as 0.6: divide by 10^d
	// rather than multiply by 10^-d.
	at := func(k int) float64 { return float64(k) * mult * pow }
	if pow < 1 {
		inv := math.Round(1 / pow)
		at = func(k int) float64 { return float64(k) * mult / inv }
	}
	var out []float64
	for k := 0; ; k++ {
		v := at(k)
		out = append(out, v)
		if v >= hi*(1-1e-12) {
			return out
		}
	}
}

// label formats a tick with as many decimals as its step needs.
func label(v, step float64) string {
	d := 0
	if step < 1 {
		d = int(math.Ceil(-math.Log10(step)))
	}
	return strconv.FormatFloat(v, 'f', d, 64)
}

func esc(s string) string { return html.EscapeString(s) }

// frame starts an SVG with its title and returns the plotting area.
func frame(b *strings.Builder, title string) (x0, y0, x1, y1 float64) {
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11" role="img" aria-label="%s">`,
		width, height, width, height, esc(title))
	fmt.Fprintf(b, `<title>%s</title>`, esc(title))
	return left, top, width - right, height - bottom
}

// yAxis draws the y axis with its ticks, grid lines and label; it returns
// the scale from a value to a y coordinate.
func yAxis(b *strings.Builder, x0, y0, x1, y1, hi float64, name string) func(float64) float64 {
	ticks := Ticks(hi, 5)
	top := ticks[len(ticks)-1]
	step := top
	if len(ticks) > 1 {
		step = ticks[1]
	}
	y := func(v float64) float64 { return y1 - v/top*(y1-y0) }
	for _, t := range ticks {
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e5e5e5"/><text x="%.1f" y="%.1f" text-anchor="end" class="ytick">%s</text>`,
			x0, y(t), x1, y(t), x0-6, y(t)+4, label(t, step))
	}
	fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333"/>`, x0, y0, x0, y1)
	// The name runs along the axis: one that would not fit its height is
	// shortened, whole on hover.
	shown := name
	if fit := int((y1 - y0) / charWidth); len([]rune(name)) > fit && fit > 1 {
		shown = string([]rune(name)[:fit-1]) + "…"
	}
	fmt.Fprintf(b, `<text transform="translate(14 %.1f) rotate(-90)" text-anchor="middle" class="ylabel"><title>%s</title>%s</text>`, (y0+y1)/2, esc(name), esc(shown))
	return y
}

// charWidth is the width of a character at the charts' font size, for
// fitting text (an estimate: sans-serif 11 px averages under 6.5 px).
const charWidth = 6.5

// legend draws the legend entries in a row above the plot.
func legend(b *strings.Builder, x0 float64, entries [][2]string) {
	x := x0
	for _, e := range entries {
		fmt.Fprintf(b, `<g class="legend"><rect x="%.1f" y="22" width="10" height="10" fill="%s"/><text x="%.1f" y="31">%s</text></g>`, x, e[1], x+14, esc(e[0]))
		x += 24 + 6*float64(len([]rune(e[0])))
	}
}

func axisName(name, unit string) string {
	if unit == "" {
		return name
	}
	return name + " (" + unit + ")"
}

// SVG renders the bar chart.
func (c Bars) SVG() string {
	var b strings.Builder
	x0, y0, x1, y1 := frame(&b, c.Title)
	fmt.Fprintf(&b, `<text x="%.1f" y="14" font-weight="bold">%s</text>`, x0, esc(c.Title))
	hi := 0.0
	for _, s := range c.Series {
		for _, v := range s.Values {
			for _, f := range []float64{v.V, v.Hi} {
				if !math.IsNaN(f) && !math.IsInf(f, 0) {
					hi = math.Max(hi, f)
				}
			}
		}
	}
	yname := c.YLabel
	if yname == "" {
		yname = c.Title
	}
	y := yAxis(&b, x0, y0, x1, y1, hi, axisName(yname, c.Unit))
	var entries [][2]string
	for _, s := range c.Series {
		entries = append(entries, [2]string{s.Name, s.Color})
	}
	if c.Highlight >= 0 {
		entries = append(entries, [2]string{"champion (#" + strings.TrimPrefix(c.Categories[c.Highlight].Label, "#") + ")", "#2e7d32"})
	}
	legend(&b, x0, entries)
	n := max(len(c.Categories), 1)
	slot := (x1 - x0) / float64(n)
	bw := slot * 0.8 / float64(max(len(c.Series), 1))
	for i, cat := range c.Categories {
		sx := x0 + float64(i)*slot
		if i == c.Highlight {
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#2e7d32" stroke-width="2" class="champion"/>`, sx+1, y0, slot-2, y1-y0)
		}
		for j, s := range c.Series {
			if i >= len(s.Values) || math.IsNaN(s.Values[i].V) {
				continue
			}
			v := s.Values[i]
			bx := sx + slot*0.1 + float64(j)*bw
			tip := fmt.Sprintf("%s: %s %s %s", cat.Title, s.Name, strconv.FormatFloat(v.V, 'g', 4, 64), c.Unit)
			if !math.IsNaN(v.Lo) && !math.IsNaN(v.Hi) {
				tip += fmt.Sprintf(" (95%% CI %s to %s)", strconv.FormatFloat(v.Lo, 'g', 4, 64), strconv.FormatFloat(v.Hi, 'g', 4, 64))
			}
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" class="bar"><title>%s</title></rect>`,
				bx, y(v.V), bw*0.9, y1-y(v.V), s.Color, esc(tip))
			if !math.IsNaN(v.Lo) && !math.IsNaN(v.Hi) {
				cx := bx + bw*0.45
				fmt.Fprintf(&b, `<g class="whisker" stroke="#222"><line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/><line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/><line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/></g>`,
					cx, y(v.Lo), cx, y(v.Hi), cx-4, y(v.Lo), cx+4, y(v.Lo), cx-4, y(v.Hi), cx+4, y(v.Hi))
			}
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" class="xtick"><title>%s</title>%s</text>`, sx+slot/2, y1+15, esc(cat.Title), esc(cat.Label))
	}
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333"/>`, x0, y1, x1, y1)
	xname := "candidate (trial #; its name on hover and in the table)"
	if c.Note != "" {
		xname += "; " + c.Note
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" class="xlabel">%s</text></svg>`, (x0+x1)/2, y1+38, esc(xname))
	return b.String()
}

// SVG renders the scatter plot.
func (c Scatter) SVG() string {
	var b strings.Builder
	x0, y0, x1, y1 := frame(&b, c.Title)
	fmt.Fprintf(&b, `<text x="%.1f" y="14" font-weight="bold">%s</text>`, x0, esc(c.Title))
	hx, hy := 0.0, 0.0
	for _, p := range c.Points {
		hx, hy = math.Max(hx, p.X), math.Max(hy, p.Y)
	}
	y := yAxis(&b, x0, y0, x1, y1, hy, axisName(c.YLabel, c.YUnit))
	xt := Ticks(hx, 8)
	xtop := xt[len(xt)-1]
	xstep := xtop
	if len(xt) > 1 {
		xstep = xt[1]
	}
	x := func(v float64) float64 { return x0 + v/xtop*(x1-x0) }
	for _, t := range xt {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333"/><text x="%.1f" y="%.1f" text-anchor="middle" class="xtick">%s</text>`,
			x(t), y1, x(t), y1+4, x(t), y1+16, label(t, xstep))
	}
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333"/>`, x0, y1, x1, y1)
	xname := axisName(c.XLabel, c.XUnit)
	if c.Note != "" {
		xname += "; " + c.Note
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" class="xlabel">%s</text>`, (x0+x1)/2, y1+38, esc(xname))
	entries := [][2]string{{c.PointName, "#337ab7"}, {c.HighlightName, "#2e7d32"}}
	if c.FrontName != "" && len(c.Points) > 0 {
		// Every point of the front gets a ring, as the legend says (a
		// front of one point has no line to draw); two or more are joined.
		entries = append(entries, [2]string{c.FrontName, "#f0ad4e"})
		front := Front(c.Points)
		var line []string
		for _, i := range front {
			line = append(line, fmt.Sprintf("%.1f,%.1f", x(c.Points[i].X), y(c.Points[i].Y)))
		}
		if len(front) > 1 {
			fmt.Fprintf(&b, `<polyline class="front" points="%s" fill="none" stroke="#f0ad4e" stroke-width="2" stroke-dasharray="6 4"><title>%s</title></polyline>`, strings.Join(line, " "), esc(c.FrontName))
		}
		for _, i := range front {
			fmt.Fprintf(&b, `<circle class="front-point" cx="%.1f" cy="%.1f" r="11" fill="none" stroke="#f0ad4e" stroke-width="2.5"><title>%s</title></circle>`,
				x(c.Points[i].X), y(c.Points[i].Y), esc(c.FrontName+": "+c.Points[i].Title))
		}
	}
	legend(&b, x0, entries)
	// The highlighted points last, so that none hides them.
	pts := slices.Clone(c.Points)
	slices.SortStableFunc(pts, func(a, b Point) int {
		switch {
		case a.Highlight == b.Highlight:
			return 0
		case a.Highlight:
			return 1
		}
		return -1
	})
	marks := make([]box, len(pts))
	for i, p := range pts {
		marks[i] = box{x(p.X) - 7, y(p.Y) - 7, x(p.X) + 7, y(p.Y) + 7}
	}
	labels := placeLabels(pts, marks, box{x0, y0 - 4, x1 + right - 4, y1})
	for i, p := range pts {
		color, r, class := "#337ab7", 5, "point"
		if p.Highlight {
			color, r, class = "#2e7d32", 7, "point champion"
		}
		fmt.Fprintf(&b, `<g class="%s"><circle cx="%.1f" cy="%.1f" r="%d" fill="%s"><title>%s</title></circle>`,
			class, x(p.X), y(p.Y), r, color, esc(fmt.Sprintf("%s: %s %s %s, %s %s %s", p.Title, c.YLabel, strconv.FormatFloat(p.Y, 'g', 4, 64), c.YUnit, c.XLabel, strconv.FormatFloat(p.X, 'g', 4, 64), c.XUnit)))
		l := labels[i]
		if l.leader {
			fmt.Fprintf(&b, `<line class="leader" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#999"/>`, x(p.X), y(p.Y), l.ax, l.ay)
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" class="point-label">%s</text></g>`, l.b.x0, l.b.y1-2, esc(p.Label))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// box is a rectangle in the chart's coordinates.
type box struct{ x0, y0, x1, y1 float64 }

func (a box) overlaps(b box) bool { return a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1 }

func (a box) inside(b box) bool { return a.x0 >= b.x0 && a.x1 <= b.x1 && a.y0 >= b.y0 && a.y1 <= b.y1 }

// placed is where a point's label goes: its box, and, when it had to move
// away from its mark, the end of the leader line to it.
type placed struct {
	b      box
	leader bool
	ax, ay float64
}

// placeLabels puts each point's label beside its mark where it overlaps
// no mark and no label already placed, trying eight positions around the
// mark, then the same farther away with a leader line; a label that fits
// nowhere goes where it overlaps least. Pure.
func placeLabels(pts []Point, marks []box, area box) []placed {
	out := make([]placed, len(pts))
	var taken []box
	for i, p := range pts {
		w, h := charWidth*float64(len([]rune(p.Label)))+2, 12.0
		cx, cy := (marks[i].x0+marks[i].x1)/2, (marks[i].y0+marks[i].y1)/2
		best, bestCost := placed{}, math.Inf(1)
		for ring, d := range []float64{9, 24, 40} {
			for _, dir := range [][2]float64{{1, -1}, {1, 1}, {-1, -1}, {-1, 1}, {1, 0}, {-1, 0}, {0, -1}, {0, 1}} {
				lx := cx + dir[0]*d
				if dir[0] < 0 {
					lx -= w
				} else if dir[0] == 0 {
					lx -= w / 2
				}
				ly := cy + dir[1]*d
				if dir[1] < 0 {
					ly -= h
				} else if dir[1] == 0 {
					ly -= h / 2
				}
				cand := placed{b: box{lx, ly, lx + w, ly + h}, leader: ring > 0}
				if cand.leader { // the line ends at the label's nearest edge
					cand.ax, cand.ay = math.Max(cand.b.x0, math.Min(cx, cand.b.x1)), math.Max(cand.b.y0, math.Min(cy, cand.b.y1))
				}
				cost := float64(ring)
				if !cand.b.inside(area) {
					cost += 100
				}
				for j, m := range marks {
					if j != i && cand.b.overlaps(m) {
						cost += 10
					}
				}
				for _, t := range taken {
					if cand.b.overlaps(t) {
						cost += 10
					}
				}
				if cost < bestCost {
					best, bestCost = cand, cost
				}
			}
			if bestCost < 10 {
				break // nothing overlapped at this distance
			}
		}
		out[i] = best
		taken = append(taken, best.b)
	}
	return out
}
