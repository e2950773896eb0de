package profiles

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/vgrid/vgrid/vllm"
)

// FuzzRender: parsing and rendering never panic, and rendering an empty
// candidate returns the input byte for byte.
//
//	go test ./profiles -run '^$' -fuzz FuzzRender -fuzztime 60s
func FuzzRender(f *testing.F) {
	files, _ := filepath.Glob("testdata/fixtures/*.yml")
	forms, _ := filepath.Glob("testdata/forms/*.yml")
	files = append(files, forms...)
	for _, p := range files {
		// Go's fuzz engine stalls on the 20 KB 2026 profiles as seeds; those
		// are covered byte for byte by TestIdentityRoundTrip.
		if b, _ := os.ReadFile(p); len(b) < 4000 {
			f.Add(b, "max-num-seqs=8")
		}
	}
	f.Add([]byte("services:\n  v:\n    image: vllm\n    command: [\"--model\", 'm', --x]\n"), "enable-prefix-caching=false")
	f.Add([]byte("services:\n  v:\n    entrypoint: [sh, -c]\n    command: |\n      exec vllm serve --model m \\\n        --a 'b c' # c\n"), "a=1")
	f.Fuzz(func(t *testing.T, src []byte, setting string) {
		d, err := ParseDocument("fuzz.yml", src)
		if err != nil {
			return
		}
		cand, _ := vllm.NewCandidate([]string{setting}, nil)
		for _, svc := range d.Services() {
			out, changes, err := d.Render(svc, nil)
			if err != nil {
				continue
			}
			if string(out) != string(src) || len(changes) != 0 {
				t.Fatalf("identity render of %q changed the input", svc)
			}
			if _, _, err := d.Render(svc, cand); err != nil {
				continue
			}
		}
	})
}
