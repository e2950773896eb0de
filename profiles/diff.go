package profiles

import (
	"strings"

	"github.com/pmezard/go-difflib/difflib"

	"github.com/vgrid/vgrid/vllm"
)

// UnifiedDiff returns a unified diff from a to b with 3 lines of context,
// values of secret flags written literally in the file redacted.
func UnifiedDiff(aName, bName string, a, b []byte) string {
	if string(a) == string(b) {
		return ""
	}
	d, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(redactSecrets(string(a))), B: difflib.SplitLines(redactSecrets(string(b))),
		FromFile: aName, ToFile: bName, Context: 3,
	})
	if err != nil {
		return err.Error()
	}
	return d
}

// redactSecrets hides literal values of secret flags (--api-key sk-...) in
// text that is about to be printed; ${VAR} references are kept.
func redactSecrets(s string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(s, "\n") {
		for _, spec := range vllm.Specs() {
			if !spec.Secret {
				continue
			}
			for _, spelled := range []string{"--" + spec.Name, "--" + strings.ReplaceAll(spec.Name, "-", "_")} {
				i := strings.Index(line, spelled)
				if i < 0 {
					continue
				}
				rest := line[i+len(spelled):]
				if len(rest) == 0 || (rest[0] != ' ' && rest[0] != '=' && rest[0] != '"' && rest[0] != '\'') {
					continue
				}
				fields := strings.FieldsFunc(strings.TrimLeft(rest, " =\"',"), func(r rune) bool {
					return r == ' ' || r == '"' || r == '\'' || r == ',' || r == '\n' || r == '\\' || r == ']'
				})
				if len(fields) > 0 && !strings.HasPrefix(fields[0], "--") && !interpolation.MatchString(fields[0]) {
					line = strings.Replace(line, fields[0], "<redacted>", 1)
				}
			}
		}
		b.WriteString(line)
	}
	return b.String()
}
