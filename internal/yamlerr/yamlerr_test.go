package yamlerr

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestTabIsExplained(t *testing.T) {
	for _, tc := range []struct {
		src       string
		line, col int
	}{
		{"name: x\nspace:\n\taxes: {a: [1]}\n", 3, 1},
		{"services:\n  vllm:\n  \timage: x\n", 3, 3},
		{"a: 1\nb: \"tab\tinside a value is fine\"\n", 0, 0},
	} {
		var v any
		err := yaml.Unmarshal([]byte(tc.src), &v)
		line, col, msg, ok := Syntax([]byte(tc.src), err)
		if tc.line == 0 {
			if ok {
				t.Errorf("%q: explained %d:%d %s, want nothing", tc.src, line, col, msg)
			}
			continue
		}
		if !ok || line != tc.line || col != tc.col || !strings.Contains(msg, "spaces") {
			t.Errorf("%q (yaml: %v): got %d:%d %q %v, want %d:%d", tc.src, err, line, col, msg, ok, tc.line, tc.col)
		}
	}
}
