package orchestrator

import (
	"math"
	"math/rand/v2"
	"slices"

	"gonum.org/v1/gonum/mat"
)

// GP is Bayesian optimisation with a Gaussian process on the enumerated
// space: after Startup random trials it fits a GP (Matérn 5/2 kernel, one
// length scale per feature, hyperparameters by maximum marginal
// likelihood) to the measured objective, on a log scale when it has one
// sign, and proposes the untried candidate of largest expected
// improvement (computed in log space, so that it still ranks candidates
// where the improvement is tiny) times its probability of being measured.
//
// Each axis is a feature: an ordinal axis its value's rank scaled to
// [0, 1], a categorical one a one-hot group. A failed boot, an infeasible
// candidate or a broken constraint is not a measurement: the objective's
// model never sees it, and a second GP, fitted to every trial's outcome
// (1 measured, 0 not), gives each candidate its chance of being measured,
// so that regions that fail are avoided without bending the objective's
// surface around them. A trial running on another slot
// (Pending) enters as the model's own prediction at its place (the
// "kriging believer"), so that parallel slots are sent to different
// places.
type GP struct {
	Search
	Axes []searchAxis
}

// gpMaxScored bounds the candidates whose improvement is computed per
// proposal; a larger space is subsampled (seeded).
const gpMaxScored = 20000

// Next implements Sampler.
func (g *GP) Next(space []Candidate, obs []Observation) (int, bool) {
	left := untried(space, obs)
	if len(left) == 0 {
		return 0, false
	}
	r := rng(g.Seed, len(obs))
	measured := 0
	for _, o := range obs {
		if o.Measured && !o.Pending {
			measured++
		}
	}
	if len(obs) < g.Startup || measured < 2 {
		return left[r.IntN(len(left))], true
	}
	feat := func(c Candidate) []float64 { return features(g.Axes, coords(g.Axes, c)) }

	// The evidence: measured objectives (maximised, on a log scale when
	// they are all of one sign), and apart from them, which trials failed.
	warp := lossWarp(obs)
	var xs, fxs [][]float64
	var ys, fys []float64
	var pending [][]float64
	failed := 0
	for _, o := range obs {
		if o.Pending {
			pending = append(pending, feat(space[o.Index]))
			continue
		}
		x := feat(space[o.Index])
		fxs = append(fxs, x)
		if o.Measured {
			xs, ys = append(xs, x), append(ys, warp(o.Loss))
			fys = append(fys, 1)
		} else {
			fys = append(fys, 0)
			failed++
		}
	}
	m := fitGP(xs, ys, r)
	var feasible *gpModel
	if failed > 0 {
		feasible = fitGP(fxs, fys, r)
	}
	for _, p := range pending { // the believer: each pending trial at its prediction
		mu, _ := m.predict(p)
		xs, ys = append(xs, p), append(ys, m.unscale(mu))
		m = m.refit(xs, ys)
	}
	best := math.Inf(-1)
	for _, o := range obs {
		if o.Measured && !o.Pending {
			best = math.Max(best, m.scale(warp(o.Loss)))
		}
	}
	if len(left) > gpMaxScored {
		r.Shuffle(len(left), func(i, j int) { left[i], left[j] = left[j], left[i] })
		left = left[:gpMaxScored]
		slices.Sort(left)
	}
	pick, pickScore := left[0], math.Inf(-1)
	for _, i := range left {
		x := feat(space[i])
		mu, sd := m.predict(x)
		s := logEI(mu, sd, best)
		if feasible != nil {
			p, _ := feasible.predict(x)
			s += math.Log(min(max(feasible.unscale(p), 1e-6), 1))
		}
		if s > pickScore {
			pick, pickScore = i, s
		}
	}
	return pick, true
}

// features places a candidate (its coordinates on the axes) in [0,1]^d.
func features(axes []searchAxis, at []int) []float64 {
	var out []float64
	for a, ax := range axes {
		if ax.Ordinal {
			x := 0.5 // off the axis (an explicit candidate's other value)
			if at[a] < len(ax.Values) && len(ax.Values) > 1 {
				x = float64(at[a]) / float64(len(ax.Values)-1)
			}
			out = append(out, x)
			continue
		}
		for v := 0; v <= len(ax.Values); v++ {
			out = append(out, map[bool]float64{true: 1}[v == at[a]])
		}
	}
	return out
}

// gpModel is a fitted Gaussian process on standardised targets.
type gpModel struct {
	xs         [][]float64
	mean, sd   float64   // the targets' standardisation
	ls         []float64 // length scale per feature
	noise      float64   // noise variance (signal variance is 1)
	chol       mat.Cholesky
	alpha      *mat.VecDense // K^-1 y
	ok         bool
	standardYs []float64
}

func (m *gpModel) scale(y float64) float64   { return (y - m.mean) / m.sd }
func (m *gpModel) unscale(z float64) float64 { return z*m.sd + m.mean }

func matern52(a, b, ls []float64) float64 {
	d2 := 0.0
	for i := range a {
		d := (a[i] - b[i]) / ls[i]
		d2 += d * d
	}
	d := math.Sqrt(5 * d2)
	return (1 + d + d*d/3) * math.Exp(-d)
}

// factor computes the Cholesky factor and K^-1 y for the model's
// hyperparameters, and returns the log marginal likelihood (-Inf when K
// is not positive definite).
func (m *gpModel) factor(ys []float64) float64 {
	n := len(m.xs)
	k := mat.NewSymDense(n, nil)
	for i := range n {
		for j := i; j < n; j++ {
			v := matern52(m.xs[i], m.xs[j], m.ls)
			if i == j {
				v += m.noise + 1e-8
			}
			k.SetSym(i, j, v)
		}
	}
	if m.ok = m.chol.Factorize(k); !m.ok {
		return math.Inf(-1)
	}
	y := mat.NewVecDense(n, slices.Clone(ys))
	m.alpha = mat.NewVecDense(n, nil)
	if err := m.chol.SolveVecTo(m.alpha, y); err != nil {
		m.ok = false
		return math.Inf(-1)
	}
	return -0.5*mat.Dot(y, m.alpha) - 0.5*m.chol.LogDet() - 0.5*float64(n)*math.Log(2*math.Pi)
}

// fitGP standardises the targets and chooses the length scales and the
// noise that maximise the marginal likelihood: a seeded random search over
// log-uniform ranges, then a few rounds of coordinate refinement.
func fitGP(xs [][]float64, ys []float64, r *rand.Rand) *gpModel {
	m := &gpModel{xs: xs}
	m.standardise(ys)
	d := len(xs[0])
	const lsLo, lsHi, nLo, nHi = 0.05, 5.0, 1e-4, 0.3
	logU := func(lo, hi float64) float64 { return math.Exp(math.Log(lo) + r.Float64()*(math.Log(hi)-math.Log(lo))) }
	bestLS, bestNoise, bestL := make([]float64, d), 0.01, math.Inf(-1)
	for i := range bestLS {
		bestLS[i] = 0.5
	}
	try := func(ls []float64, noise float64) {
		m.ls, m.noise = ls, noise
		if l := m.factor(m.standardYs); l > bestL {
			bestL, bestNoise = l, noise
			copy(bestLS, ls)
		}
	}
	try(slices.Clone(bestLS), bestNoise)
	for range 64 {
		ls := make([]float64, d)
		shared := logU(lsLo, lsHi)
		for i := range ls {
			ls[i] = shared * logU(0.5, 2)
		}
		try(ls, logU(nLo, nHi))
	}
	for range 3 {
		for i := range d {
			for _, f := range []float64{0.5, 0.7, 1.4, 2} {
				ls := slices.Clone(bestLS)
				ls[i] = math.Min(math.Max(ls[i]*f, lsLo), lsHi)
				try(ls, bestNoise)
			}
		}
		for _, f := range []float64{0.3, 3} {
			try(slices.Clone(bestLS), math.Min(math.Max(bestNoise*f, nLo), nHi))
		}
	}
	m.ls, m.noise = bestLS, bestNoise
	m.factor(m.standardYs)
	return m
}

func (m *gpModel) standardise(ys []float64) {
	m.mean, m.sd = 0, 0
	for _, y := range ys {
		m.mean += y
	}
	m.mean /= float64(len(ys))
	for _, y := range ys {
		m.sd += (y - m.mean) * (y - m.mean)
	}
	m.sd = math.Sqrt(m.sd / float64(len(ys)))
	if m.sd == 0 || math.IsNaN(m.sd) {
		m.sd = 1
	}
	m.standardYs = make([]float64, len(ys))
	for i, y := range ys {
		m.standardYs[i] = m.scale(y)
	}
}

// refit keeps the hyperparameters and the standardisation and conditions
// on new evidence (the believer's).
func (m *gpModel) refit(xs [][]float64, ys []float64) *gpModel {
	n := &gpModel{xs: xs, mean: m.mean, sd: m.sd, ls: m.ls, noise: m.noise}
	n.standardYs = make([]float64, len(ys))
	for i, y := range ys {
		n.standardYs[i] = n.scale(y)
	}
	n.factor(n.standardYs)
	return n
}

// predict is the posterior mean and standard deviation at x, standardised.
func (m *gpModel) predict(x []float64) (float64, float64) {
	if !m.ok {
		return 0, 1
	}
	n := len(m.xs)
	k := mat.NewVecDense(n, nil)
	for i := range n {
		k.SetVec(i, matern52(x, m.xs[i], m.ls))
	}
	mu := mat.Dot(k, m.alpha)
	v := mat.NewVecDense(n, nil)
	if err := m.chol.SolveVecTo(v, k); err != nil {
		return mu, 1
	}
	return mu, math.Sqrt(math.Max(1-mat.Dot(k, v), 1e-12))
}

// logEI is the logarithm of the expected improvement over best of a
// normal (mu, sd), accurate far into the tail where the improvement
// itself underflows.
func logEI(mu, sd, best float64) float64 {
	z := (mu - best) / sd
	var h float64
	if z > -6 {
		h = math.Log(z*normCDF(z) + normPDF(z))
	} else {
		// h(z) = φ(z) (1 + z R(-z)), R the Mills ratio, expanded.
		w := 1 / (z * z)
		h = -0.5*z*z - 0.5*math.Log(2*math.Pi) + math.Log(w*(1-3*w+15*w*w))
	}
	return math.Log(sd) + h
}

func normPDF(z float64) float64 { return math.Exp(-0.5*z*z) / math.Sqrt(2*math.Pi) }
func normCDF(z float64) float64 { return 0.5 * math.Erfc(-z/math.Sqrt2) }

// lossWarp maps a measured loss to the maximised target the GP models:
// minus the logarithm of the magnitude when every measured loss has one
// sign (latencies and throughputs vary by factors, and a log scale keeps
// the best region's differences from being flattened by the worst
// candidates'), else minus the loss.
func lossWarp(obs []Observation) func(float64) float64 {
	pos, neg := 0, 0
	for _, o := range obs {
		if o.Measured && !o.Pending {
			switch {
			case o.Loss > 0:
				pos++
			case o.Loss < 0:
				neg++
			default:
				return func(l float64) float64 { return -l }
			}
		}
	}
	switch {
	case neg == 0:
		return func(l float64) float64 { return -math.Log(l) }
	case pos == 0:
		return func(l float64) float64 { return math.Log(-l) }
	}
	return func(l float64) float64 { return -l }
}
