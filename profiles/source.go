package profiles

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// source is a piece of text as one layer of the file reads it (a YAML
// scalar's value, or one shell word of a command string), with the file
// offset of every byte, so that words found in the text can be edited in
// the file.
type source struct {
	text string
	// at[i] is the file offset where text[i] comes from; at[len(text)] is
	// where the text ends in the file.
	at []int
	// block is set when text is the verbatim content lines of a block
	// scalar: file lines are text lines, so edits may add or delete lines.
	block bool
	// enc writes text to be inserted at this layer as file bytes.
	enc func(string) (string, error)
}

// fileSpan maps a span of text to the file.
func (s *source) fileSpan(i, j int) (int, int) { return s.at[i], s.at[j] }

// plainEnc is the encoder of a layer that writes text as is.
func plainEnc(s string) (string, error) { return s, nil }

// scalarSource returns a scalar node's value with its byte origins. Block
// scalars (| and >) give their content lines verbatim; flow scalars (plain,
// 'single' and "double" quoted, on one line or folded over several) give
// their value, decoded, which is checked against the YAML parser's.
func (d *Document) scalarSource(n *yaml.Node) (*source, error) {
	if n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		start, end, err := d.blockContent(n)
		if err != nil {
			return nil, err
		}
		at := make([]int, end-start+1)
		for i := range at {
			at[i] = start + i
		}
		return &source{text: string(d.src[start:end]), at: at, block: true, enc: plainEnc}, nil
	}
	return d.flowSource(n)
}

// flowSource decodes a flow scalar from the file, following YAML's rules for
// quotes, escapes and line folding, and checks the result against the value
// the YAML parser read.
func (d *Document) flowSource(n *yaml.Node) (*source, error) {
	src := d.src
	p := d.offset(n.Line, n.Column)
	line := d.lineOf(p) + 1
	var quote byte
	switch {
	case n.Style&yaml.DoubleQuotedStyle != 0:
		quote = '"'
	case n.Style&yaml.SingleQuotedStyle != 0:
		quote = '\''
	}
	if quote != 0 {
		if p >= len(src) || src[p] != quote {
			return nil, fmt.Errorf("line %d: vgrid could not find the opening quote of this scalar", line)
		}
		p++
	}
	var (
		b  strings.Builder
		at []int
	)
	emit := func(s string, origin int) {
		b.WriteString(s)
		for range len(s) {
			at = append(at, origin)
		}
	}
	want := n.Value
	for b.Len() < len(want) && p < len(src) {
		// A line break, with the blanks around it, folds to one space, or
		// to n-1 newlines when n breaks follow each other.
		if q, breaks := foldAt(src, p); breaks > 0 {
			if breaks == 1 {
				emit(" ", p)
			} else {
				emit(strings.Repeat("\n", breaks-1), p)
			}
			p = q
			continue
		}
		c := src[p]
		switch {
		case quote == '\'' && c == '\'' && p+1 < len(src) && src[p+1] == '\'':
			emit("'", p)
			p += 2
		case quote == '"' && c == '\\':
			s, q, err := doubleEscape(src, p)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", d.lineOf(p)+1, err)
			}
			emit(s, p)
			p = q
		default:
			_, size := utf8.DecodeRune(src[p:])
			emit(string(src[p:p+size]), p)
			p += size
		}
	}
	at = append(at, p)
	if b.String() != want {
		return nil, fmt.Errorf("line %d: vgrid read this %s scalar as %q but YAML reads %q; write it as a block scalar (command: >) or a list",
			line, styleName(n.Style), b.String(), want)
	}
	enc := plainEnc
	switch quote {
	case '"':
		enc = encodeDouble
	case '\'':
		enc = encodeSingle
	default:
		enc = encodePlain
	}
	return &source{text: want, at: at, enc: enc}, nil
}

// foldAt reports whether a line fold starts at p: blanks, a line break, and
// then blank lines and the next line's indentation. It returns where the
// fold ends and how many line breaks it holds.
func foldAt(src []byte, p int) (end, breaks int) {
	q := p
	for q < len(src) && (src[q] == ' ' || src[q] == '\t') {
		q++
	}
	for {
		switch {
		case q < len(src) && src[q] == '\n':
			q++
		case q+1 < len(src) && src[q] == '\r' && src[q+1] == '\n':
			q += 2
		default:
			return end, breaks
		}
		breaks++
		for q < len(src) && (src[q] == ' ' || src[q] == '\t') {
			q++
		}
		end = q
	}
}

// doubleEscape decodes the escape sequence at src[p] ('\\') of a
// double-quoted scalar.
func doubleEscape(src []byte, p int) (string, int, error) {
	if p+1 >= len(src) {
		return "", p + 1, fmt.Errorf("a backslash ends the file")
	}
	simple := map[byte]string{'0': "\x00", 'a': "\a", 'b': "\b", 't': "\t", '\t': "\t", 'n': "\n", 'v': "\v", 'f': "\f", 'r': "\r",
		'e': "\x1b", ' ': " ", '"': "\"", '/': "/", '\\': "\\", 'N': "\u0085", '_': "\u00a0", 'L': "\u2028", 'P': "\u2029"}
	c := src[p+1]
	if s, ok := simple[c]; ok {
		return s, p + 2, nil
	}
	if q, breaks := foldAt(src, p+1); breaks > 0 {
		// An escaped line break: the line goes on with no space.
		if breaks > 1 {
			return strings.Repeat("\n", breaks-1), q, nil
		}
		return "", q, nil
	}
	width := map[byte]int{'x': 2, 'u': 4, 'U': 8}[c]
	if width == 0 || p+2+width > len(src) {
		return "", p + 2, fmt.Errorf("unknown escape \\%c in a double-quoted scalar", c)
	}
	var r rune
	for _, h := range src[p+2 : p+2+width] {
		var v byte
		switch {
		case h >= '0' && h <= '9':
			v = h - '0'
		case h >= 'a' && h <= 'f':
			v = h - 'a' + 10
		case h >= 'A' && h <= 'F':
			v = h - 'A' + 10
		default:
			return "", p + 2, fmt.Errorf("bad hex digit %q in \\%c escape", h, c)
		}
		r = r<<4 | rune(v)
	}
	return string(r), p + 2 + width, nil
}

func styleName(s yaml.Style) string {
	switch {
	case s&yaml.DoubleQuotedStyle != 0:
		return "double-quoted"
	case s&yaml.SingleQuotedStyle != 0:
		return "single-quoted"
	}
	return "plain"
}

// encodeDouble writes text inside a double-quoted YAML scalar.
func encodeDouble(s string) (string, error) {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if r < 0x20 {
				fmt.Fprintf(&b, `\x%02x`, r)
				continue
			}
			b.WriteRune(r)
		}
	}
	return b.String(), nil
}

// encodeSingle writes text inside a single-quoted YAML scalar.
func encodeSingle(s string) (string, error) {
	if strings.ContainsAny(s, "\n\r") {
		return "", fmt.Errorf("a line break cannot be written in a single-quoted scalar")
	}
	return strings.ReplaceAll(s, "'", "''"), nil
}

// encodePlain writes text inside a plain YAML scalar, after its first
// character: it must not contain what would end or change the scalar.
func encodePlain(s string) (string, error) {
	switch {
	case strings.Contains(s, ": ") || strings.HasSuffix(s, ":"):
		return "", fmt.Errorf("%q holds \": \", which would end a plain (unquoted) YAML scalar; quote the command in the profile", s)
	case strings.Contains(s, " #"):
		return "", fmt.Errorf("%q holds \" #\", which would start a YAML comment in a plain (unquoted) scalar; quote the command in the profile", s)
	case strings.ContainsAny(s, "\n\r"):
		return "", fmt.Errorf("a line break cannot be inserted in a plain scalar")
	}
	return s, nil
}

// sub returns a word of the text as a source of its own (the script inside
// a quoted shell word), its bytes mapped to the file through s.
func (s *source) sub(w word, enc func(string) (string, error)) *source {
	at := make([]int, len(w.at))
	for i, o := range w.at {
		at[i] = s.at[o]
	}
	outer := s.enc
	return &source{text: w.text, at: at, enc: func(t string) (string, error) {
		inner, err := enc(t)
		if err != nil {
			return "", err
		}
		return outer(inner)
	}}
}

// blockContent returns the byte span of a block scalar's content lines:
// from the line after the indicator to the end of its last non-blank line.
func (d *Document) blockContent(n *yaml.Node) (start, end int, err error) {
	ind := d.offset(n.Line, n.Column)
	line := d.lineOf(ind)
	header := d.lineText(line)[ind-d.lineStarts[line]:]
	if strings.ContainsAny(strings.SplitN(header, "#", 2)[0], "123456789") {
		return 0, 0, fmt.Errorf("line %d: block scalars with an explicit indentation indicator are not supported; remove the digit after | or >", line+1)
	}
	indent := -1
	last := line
	for i := line + 1; i < len(d.lineStarts); i++ {
		t := d.lineText(i)
		if strings.TrimSpace(t) == "" {
			continue
		}
		ws := len(t) - len(strings.TrimLeft(t, " "))
		if indent < 0 {
			indent = ws
		}
		if ws < indent {
			break
		}
		last = i
	}
	if last == line {
		return 0, 0, fmt.Errorf("line %d: empty block scalar", line+1)
	}
	return d.lineStarts[line+1], d.lineEnd(last), nil
}
