// Package yamlerr says what is wrong with a YAML file the way a person
// fixes it: where (line and column) and the likely cause, for the
// mistakes people make that yaml.v3 reports in its own terms. The grid's
// and the profiles' loaders both use it.
//
// May import: the standard library.
package yamlerr

import (
	"bytes"
	"fmt"
	"strings"
)

// Tab finds the first tab in a line's indentation (1-based line and
// column; 0, 0 when there is none). YAML indents with spaces only.
func Tab(src []byte) (line, col int) {
	for i, l := range bytes.Split(src, []byte("\n")) {
		for j, c := range l {
			if c == '\t' {
				return i + 1, j + 1
			}
			if c != ' ' {
				break
			}
		}
	}
	return 0, 0
}

// Syntax explains a yaml.v3 syntax error of src: a tab in an indentation
// at or before the line the parser names is said as such, with its line
// and column. ok is false when it has nothing better to say.
func Syntax(src []byte, err error) (line, col int, msg string, ok bool) {
	if err == nil {
		return 0, 0, "", false
	}
	l, c := Tab(src)
	if l == 0 {
		return 0, 0, "", false
	}
	reported := 0
	fmt.Sscanf(strings.TrimPrefix(err.Error(), "yaml: "), "line %d:", &reported)
	if reported > 0 && l > reported {
		return 0, 0, "", false // the parser stopped before the tab: another problem
	}
	return l, c, "this line is indented with a tab; YAML indents with spaces only: replace the tab with spaces", true
}
