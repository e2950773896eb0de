//go:build unix

package profiles

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A profile that is a symbolic link (to a shared checkout, say) is rolled
// back through the link: the target gets the backup, the link stays.
func TestRollbackWritesThroughALink(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "repo", "medium.yml")
	os.MkdirAll(filepath.Dir(real), 0o755)
	os.WriteFile(real, []byte("services: {vllm: {command: --max-num-seqs 16}}\n"), 0o644)
	link := filepath.Join(dir, "medium.yml")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteBackup(link, "before", time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(real, []byte("services: {vllm: {command: --max-num-seqs 32}}\n"), 0o644)
	if _, _, err := Rollback(link, "latest", time.Now()); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link was replaced: %v %v", fi.Mode(), err)
	}
	if b, _ := os.ReadFile(real); string(b) != "services: {vllm: {command: --max-num-seqs 16}}\n" {
		t.Errorf("the link's target holds %q", b)
	}
}
