package compose

// ring keeps the last n log lines.
type ring struct {
	lines []string
	n     int
}

func (r *ring) add(l string) {
	r.lines = append(r.lines, l)
	if len(r.lines) > r.n {
		r.lines = r.lines[len(r.lines)-r.n:]
	}
}

func (r *ring) snapshot() []string { return append([]string(nil), r.lines...) }
