package archtest

import (
	"encoding/json"
	"go/parser"
	"go/token"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/vgrid/vgrid/"

type pkg struct {
	ImportPath string
	Dir        string
	Name       string
	Imports    []string
	GoFiles    []string
}

// list is go list's view of every package of the module.
func list(t *testing.T) []pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", module+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// mayImport is the text after "May import:" in the package's doc comment,
// to the end of its paragraph; ok is false when the doc has none.
func mayImport(t *testing.T, p pkg) (string, bool) {
	fset := token.NewFileSet()
	for _, f := range p.GoFiles {
		af, err := parser.ParseFile(fset, p.Dir+"/"+f, nil, parser.ParseComments|parser.PackageClauseOnly)
		if err != nil {
			t.Fatal(err)
		}
		if af.Doc == nil {
			continue
		}
		text := af.Doc.Text()
		if _, after, ok := strings.Cut(text, "May import:"); ok {
			para, _, _ := strings.Cut(after, "\n\n")
			return strings.Join(strings.Fields(para), " "), true
		}
	}
	return "", false
}

// Every library package says what it may import, and says it truly: each
// package of vgrid it imports is named there, and each one named there is
// imported. (Test-only and main packages are not checked.)
func TestMayImportLinesAreTrue(t *testing.T) {
	pkgs := list(t)
	var names []string
	for _, p := range pkgs {
		names = append(names, strings.TrimPrefix(p.ImportPath, module))
	}
	// Longest first, so "driver/composedriver" is not read as "driver".
	slices.SortFunc(names, func(a, b string) int { return len(b) - len(a) })
	for _, p := range pkgs {
		rel := strings.TrimPrefix(p.ImportPath, module)
		if p.Name == "main" || strings.HasPrefix(rel, "internal/dockertest") || strings.HasPrefix(rel, "internal/browsertest") || rel == "internal/wine" {
			continue
		}
		text, ok := mayImport(t, p)
		if !ok {
			t.Errorf("%s: its package doc has no \"May import:\" line", rel)
			continue
		}
		named := map[string]bool{}
		rest := text
		for _, n := range names {
			re := regexp.MustCompile("(^|[^\\w/.-])`?" + regexp.QuoteMeta(n) + "`?($|[^\\w/-])")
			if re.MatchString(rest) {
				named[n] = true
				rest = re.ReplaceAllString(rest, "$1 $2")
			}
		}
		var imported []string
		for _, imp := range p.Imports {
			if r, ok := strings.CutPrefix(imp, module); ok {
				imported = append(imported, r)
				if !named[r] {
					t.Errorf("%s imports %s, which its \"May import\" line does not name (%q)", rel, r, text)
				}
			}
		}
		for n := range named {
			if n != rel && !slices.Contains(imported, n) {
				t.Errorf("%s: its \"May import\" line names %s, which it does not import (%q)", rel, n, text)
			}
		}
	}
}
