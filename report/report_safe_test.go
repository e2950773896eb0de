package report

import "testing"

func TestMarkdownCellEscapes(t *testing.T) {
	if got := mdCell("a|b\nc\r\x1b[31md"); got != `a\|b c [31md` {
		t.Errorf("got %q", got)
	}
}
