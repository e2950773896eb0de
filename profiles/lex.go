package profiles

import (
	"fmt"
	"strings"
)

// word is one shell word found in a text, with its byte span in that text.
type word struct {
	text       string // the word with quotes and escapes removed (before compose interpolation)
	start, end int    // byte offsets of the raw word: text[start:end] is what is written
	op         bool   // a control operator (newline, ';', '&', '|', '&&', '||') rather than a word
}

// problem is something in a command string that docker compose would not
// pass to vLLM the way the file shows it.
type problem struct {
	kind int // problemStop, problemParen, problemHash
	off  int // byte offset in the file
}

const (
	problemStop  = iota // unquoted ; & | < >: go-shellwords stops there
	problemParen        // unquoted ( : go-shellwords fails
	problemHash         // a word starting with '#': not a comment in a block scalar
)

// lexCompose splits a command string the way compose-go does (go-shellwords):
// spaces, tabs and newlines separate words; single and double quotes group;
// a backslash escapes the next character outside single quotes. There are no
// comments, and go-shellwords stops at an unquoted ';', '&', '|', '<' or '>'
// and rejects an unquoted '(' not preceded by '$'. Those cases are returned
// as problems, because docker compose would not pass what the file shows.
func lexCompose(text string, base int) (words []word, problems []problem) {
	l := lexer{s: text}
	for {
		l.skipSpace(true)
		if l.eof() {
			return words, problems
		}
		c := l.s[l.i]
		switch {
		case strings.IndexByte(";&|<>", c) >= 0:
			return words, append(problems, problem{problemStop, base + l.i})
		case c == '(':
			problems = append(problems, problem{problemParen, base + l.i})
		}
		w, _ := l.word(false)
		if strings.HasPrefix(w.text, "#") {
			problems = append(problems, problem{problemHash, base + w.start})
		}
		w.start += base
		w.end += base
		words = append(words, w)
	}
}

// lexScript splits a POSIX shell script into words and control operators:
// comments are skipped, backslash-newline joins lines, $(...) and `...` stay
// inside their word.
func lexScript(text string) []word {
	l := lexer{s: text}
	var out []word
	for {
		l.skipSpace(false)
		if l.eof() {
			return out
		}
		c := l.s[l.i]
		switch {
		case c == '#':
			for !l.eof() && l.s[l.i] != '\n' {
				l.i++
			}
		case c == '\n' || c == ';':
			out = append(out, word{text: string(c), start: l.i, end: l.i + 1, op: true})
			l.i++
		case c == '&' || c == '|':
			start := l.i
			l.i++
			if !l.eof() && l.s[l.i] == c {
				l.i++
			}
			out = append(out, word{text: l.s[start:l.i], start: start, end: l.i, op: true})
		default:
			w, _ := l.word(true)
			out = append(out, w)
		}
	}
}

type lexer struct {
	s string
	i int
}

func (l *lexer) eof() bool { return l.i >= len(l.s) }

// skipSpace skips blanks; newlines too when newlines is set. A backslash
// before a newline is a line continuation, i.e. blank.
func (l *lexer) skipSpace(newlines bool) {
	for !l.eof() {
		switch c := l.s[l.i]; {
		case c == ' ' || c == '\t' || c == '\r' || (newlines && c == '\n'):
			l.i++
		case c == '\\' && l.i+1 < len(l.s) && l.s[l.i+1] == '\n':
			l.i += 2
		default:
			return
		}
	}
}

// word reads one word starting at l.i. In shell mode, word boundaries are
// also control operators and $( ) / ` ` groups are kept whole.
func (l *lexer) word(shell bool) (word, bool) {
	start := l.i
	var b strings.Builder
	for !l.eof() {
		c := l.s[l.i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			return word{text: b.String(), start: start, end: l.i}, true
		case shell && strings.IndexByte(";&|", c) >= 0:
			return word{text: b.String(), start: start, end: l.i}, true
		case c == '\\':
			if l.i+1 < len(l.s) {
				if l.s[l.i+1] == '\n' && shell {
					return word{text: b.String(), start: start, end: l.i}, true
				}
				b.WriteByte(l.s[l.i+1])
				l.i += 2
			} else {
				l.i++
			}
		case c == '\'':
			end := strings.IndexByte(l.s[l.i+1:], '\'')
			if end < 0 {
				b.WriteString(l.s[l.i+1:])
				l.i = len(l.s)
				return word{text: b.String(), start: start, end: l.i}, false
			}
			b.WriteString(l.s[l.i+1 : l.i+1+end])
			l.i += end + 2
		case c == '"':
			l.i++
			for !l.eof() && l.s[l.i] != '"' {
				if l.s[l.i] == '\\' && l.i+1 < len(l.s) && strings.IndexByte("\"\\$`", l.s[l.i+1]) >= 0 {
					l.i++
				}
				b.WriteByte(l.s[l.i])
				l.i++
			}
			l.i++ // closing quote
		case shell && c == '$' && l.i+1 < len(l.s) && l.s[l.i+1] == '(':
			l.group('(', ')', &b)
		case shell && c == '`':
			l.group('`', '`', &b)
		default:
			b.WriteByte(c)
			l.i++
		}
	}
	return word{text: b.String(), start: start, end: min(l.i, len(l.s))}, true
}

// group copies a $( ... ) or ` ... ` group verbatim, nesting parentheses.
func (l *lexer) group(open, close byte, b *strings.Builder) {
	depth := 0
	for !l.eof() {
		c := l.s[l.i]
		b.WriteByte(c)
		l.i++
		switch {
		case open == close && c == close && depth > 0:
			return
		case open == close && c == close:
			depth = 1
		case c == open:
			depth++
		case c == close:
			depth--
			if depth == 0 {
				return
			}
		}
	}
}

// serveInvocation is where `vllm serve` runs in a script.
type serveInvocation struct {
	args     []word // the words after "serve", up to the end of that command
	serveEnd int    // byte offset just after the word "serve"
	line     int    // byte offset of the start of the line holding "vllm"
}

// findServe locates the single `vllm serve` command of a shell script.
func findServe(script string) (*serveInvocation, error) {
	words := lexScript(script)
	var found []*serveInvocation
	for i := 0; i+1 < len(words); i++ {
		if words[i].op || words[i].text != "vllm" && !strings.HasSuffix(words[i].text, "/vllm") || words[i+1].text != "serve" || words[i+1].op {
			continue
		}
		inv := &serveInvocation{serveEnd: words[i+1].end, line: strings.LastIndexByte(script[:words[i].start], '\n') + 1}
		for j := i + 2; j < len(words) && !words[j].op; j++ {
			inv.args = append(inv.args, words[j])
		}
		found = append(found, inv)
	}
	switch len(found) {
	case 0:
		return nil, nil
	case 1:
		return found[0], nil
	}
	var lines []string
	for _, f := range found {
		lines = append(lines, fmt.Sprint(strings.Count(script[:f.line], "\n")+1))
	}
	return nil, fmt.Errorf("the script runs `vllm serve` %d times (script lines %s): vgrid cannot tell which one to edit; keep one invocation", len(found), strings.Join(lines, ", "))
}

func texts(ws []word) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.text
	}
	return out
}
