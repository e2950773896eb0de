package profiles

import (
	"fmt"
	"strings"
)

// word is one shell word found in a text, with its byte span in that text.
type word struct {
	text       string // the word with quotes and escapes removed (before compose interpolation)
	start, end int    // byte offsets of the raw word: text[start:end] is what is written
	at         []int  // at[i]: offset in the lexed text of text[i]; at[len(text)] = end
	quote      byte   // the quoting of a word written as one quoted string: '\'', '"', else 0
	op         bool   // a control operator (newline, ';', '&', '|', '&&', '||') rather than a word
	redirect   bool   // a redirection (2>&1, > log, < in) or its target: not an argument
}

// problem is something in a command string that docker compose would not
// pass to vLLM the way the file shows it.
type problem struct {
	kind int // problemStop, problemParen, problemHash
	off  int // byte offset in the lexed text
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
func lexCompose(text string) (words []word, problems []problem) {
	l := lexer{s: text}
	for {
		l.skipSpace(true)
		if l.eof() {
			return words, problems
		}
		c := l.s[l.i]
		switch {
		case strings.IndexByte(";&|<>", c) >= 0:
			return words, append(problems, problem{problemStop, l.i})
		case c == '(':
			problems = append(problems, problem{problemParen, l.i})
		}
		w := l.word(false)
		if strings.HasPrefix(w.text, "#") {
			problems = append(problems, problem{problemHash, w.start})
		}
		words = append(words, w)
	}
}

// lexScript splits a POSIX shell script into words and control operators:
// comments are skipped, backslash-newline joins lines, $(...) and `...` stay
// inside their word, and redirections are marked.
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
		case l.redirection():
			out = append(out, l.redirect()...)
		case c == '&' || c == '|':
			start := l.i
			l.i++
			if !l.eof() && l.s[l.i] == c {
				l.i++
			}
			out = append(out, word{text: l.s[start:l.i], start: start, end: l.i, op: true})
		default:
			out = append(out, l.word(true))
		}
	}
}

type lexer struct {
	s string
	i int
}

func (l *lexer) eof() bool { return l.i >= len(l.s) }

// continuation reports whether a backslash-newline (or backslash-CRLF)
// starts at i, and its length.
func (l *lexer) continuation(i int) int {
	switch {
	case i+1 < len(l.s) && l.s[i] == '\\' && l.s[i+1] == '\n':
		return 2
	case i+2 < len(l.s) && l.s[i] == '\\' && l.s[i+1] == '\r' && l.s[i+2] == '\n':
		return 3
	}
	return 0
}

// skipSpace skips blanks; newlines too when newlines is set. A backslash
// before a newline is a line continuation, i.e. blank.
func (l *lexer) skipSpace(newlines bool) {
	for !l.eof() {
		switch c := l.s[l.i]; {
		case c == ' ' || c == '\t' || c == '\r' || (newlines && c == '\n'):
			l.i++
		case l.continuation(l.i) > 0:
			l.i += l.continuation(l.i)
		default:
			return
		}
	}
}

// redirection reports whether a redirection operator starts at l.i:
// [n]> [n]>> [n]< [n]>& &> with n digits.
func (l *lexer) redirection() bool {
	i := l.i
	if strings.HasPrefix(l.s[i:], "&>") {
		return true
	}
	for i < len(l.s) && l.s[i] >= '0' && l.s[i] <= '9' {
		i++
	}
	return i < len(l.s) && (l.s[i] == '>' || l.s[i] == '<')
}

// redirect reads a redirection and its target word (none for >&N).
func (l *lexer) redirect() []word {
	start := l.i
	for !l.eof() && strings.IndexByte("0123456789&<>", l.s[l.i]) >= 0 {
		l.i++
	}
	op := word{text: l.s[start:l.i], start: start, end: l.i, redirect: true}
	if strings.HasSuffix(op.text, "&") && !l.eof() && (l.s[l.i] == '-' || l.s[l.i] >= '0' && l.s[l.i] <= '9') {
		for !l.eof() && (l.s[l.i] == '-' || l.s[l.i] >= '0' && l.s[l.i] <= '9') {
			l.i++
		}
		op.text, op.end = l.s[start:l.i], l.i
		return []word{op}
	}
	l.skipSpace(false)
	if l.eof() || strings.IndexByte("\n;&|", l.s[l.i]) >= 0 {
		return []word{op}
	}
	target := l.word(true)
	target.redirect = true
	return []word{op, target}
}

// word reads one word starting at l.i. In shell mode, word boundaries are
// also control operators and redirections, and $( ) / ` ` groups are kept
// whole.
func (l *lexer) word(shell bool) word {
	w := word{start: l.i}
	var b strings.Builder
	tail := l.i // where the text ends in l.s: before a closing quote
	put := func(c byte, from, next int) {
		b.WriteByte(c)
		w.at = append(w.at, from)
		tail = next
	}
	quotes := map[byte]int{}
	parts := 0
	done := func() word {
		w.text, w.end = b.String(), min(l.i, len(l.s))
		w.at = append(w.at, tail)
		if parts == 1 && len(quotes) == 1 {
			for q := range quotes {
				w.quote = q
			}
		}
		return w
	}
	for !l.eof() {
		c := l.s[l.i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			return done()
		case shell && strings.IndexByte(";&|<>", c) >= 0:
			return done()
		case c == '\\':
			parts++
			if l.i+1 < len(l.s) {
				if shell && l.continuation(l.i) > 0 {
					return done()
				}
				put(l.s[l.i+1], l.i, l.i+2)
				l.i += 2
			} else {
				l.i++
			}
		case c == '\'':
			parts++
			quotes['\'']++
			end := strings.IndexByte(l.s[l.i+1:], '\'')
			if end < 0 {
				end = len(l.s) - l.i - 1
			}
			for k := l.i + 1; k < l.i+1+end; k++ {
				put(l.s[k], k, k+1)
			}
			tail = l.i + 1 + end
			l.i = min(l.i+end+2, len(l.s))
		case c == '"':
			parts++
			quotes['"']++
			l.i++
			tail = l.i
			for !l.eof() && l.s[l.i] != '"' {
				from := l.i
				if l.s[l.i] == '\\' && l.i+1 < len(l.s) && (!shell || strings.IndexByte("\"\\$`", l.s[l.i+1]) >= 0) {
					l.i++
				}
				put(l.s[l.i], from, l.i+1)
				l.i++
			}
			tail = l.i
			l.i = min(l.i+1, len(l.s)) // closing quote
		case shell && c == '$' && l.i+1 < len(l.s) && l.s[l.i+1] == '(':
			parts++
			l.group('(', ')', put)
		case shell && c == '`':
			parts++
			l.group('`', '`', put)
		default:
			parts++
			put(c, l.i, l.i+1)
			l.i++
		}
	}
	return done()
}

// group copies a $( ... ) or ` ... ` group verbatim, nesting parentheses.
func (l *lexer) group(open, close byte, put func(byte, int, int)) {
	depth := 0
	for !l.eof() {
		c := l.s[l.i]
		put(c, l.i, l.i+1)
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

// The program words that start vLLM's OpenAI server.
const apiServerModule = "vllm.entrypoints.openai.api_server"

// serverProgram reports whether the server program starts at ws[i]: `vllm
// serve` (vllm may be a path), or `-m vllm.entrypoints.openai.api_server`
// (after python, python3, python3.12, uv run python, ...). end is the index
// just after the program words.
func serverProgram(ws []string, i int) (end int, ok bool) {
	if i+1 >= len(ws) {
		return 0, false
	}
	if (ws[i] == "vllm" || strings.HasSuffix(ws[i], "/vllm")) && ws[i+1] == "serve" {
		return i + 2, true
	}
	if ws[i] == "-m" && ws[i+1] == apiServerModule {
		return i + 2, true
	}
	return 0, false
}

// programEnd returns how many leading words of a command name the program
// rather than its arguments (0 when it does not start vLLM's server).
func programEnd(ws []string) int {
	_, end := programSpan(ws)
	return end
}

// programSpan returns where the program words of a command are: `vllm
// serve`, or `python3 [-u] -m vllm.entrypoints.openai.api_server` with its
// interpreter; end is 0 when the command does not start vLLM's server.
func programSpan(ws []string) (start, end int) {
	for i := 0; i < len(ws) && i < 6; i++ {
		if e, ok := serverProgram(ws, i); ok {
			return interpreterStart(ws, i), e
		}
		if ws[i] == apiServerModule { // a module path alone
			return i, i + 1
		}
	}
	return 0, 0
}

// interpreterStart steps back from "-m" over the interpreter's options to
// the interpreter (python3 -u -m ...).
func interpreterStart(ws []string, i int) int {
	if ws[i] != "-m" {
		return i
	}
	for i > 0 && strings.HasPrefix(ws[i-1], "-") {
		i--
	}
	return max(i-1, 0)
}

// serveInvocation is where vLLM's server starts in a script.
type serveInvocation struct {
	args    []word   // the argument words of that command (redirections left out)
	program []string // the program words: [vllm serve], [python3 -m vllm.entrypoints.openai.api_server]
	progEnd int      // offset just after the program words ("serve", or the module name)
	line    int      // offset of the start of the line holding the program
}

// serverPrograms names the forms findServe looks for, for messages.
const serverPrograms = "`vllm serve` or `python -m " + apiServerModule + "`"

// findServe locates the single command of a shell script that starts vLLM's
// server.
func findServe(script string) (*serveInvocation, error) {
	words := lexScript(script)
	ws := texts(words)
	var found []*serveInvocation
	for i := range words {
		if words[i].op || words[i].redirect {
			continue
		}
		end, ok := serverProgram(ws, i)
		if !ok || words[end-1].op {
			continue
		}
		inv := &serveInvocation{progEnd: words[end-1].end, line: strings.LastIndexByte(script[:words[i].start], '\n') + 1,
			program: ws[interpreterStart(ws, i):end]}
		for j := end; j < len(words) && !words[j].op; j++ {
			if !words[j].redirect {
				inv.args = append(inv.args, words[j])
			}
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
	return nil, fmt.Errorf("the script starts vLLM's server %d times (script lines %s): vgrid cannot tell which one to edit; keep one invocation", len(found), strings.Join(lines, ", "))
}

func texts(ws []word) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.text
	}
	return out
}
