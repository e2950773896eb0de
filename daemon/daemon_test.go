package daemon

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestLoadToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "token")
	tok, created, err := LoadToken(path)
	if err != nil || !created || len(tok) != 64 {
		t.Fatalf("first load: %q %v %v", tok, created, err)
	}
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", info.Mode().Perm())
	}
	again, created, err := LoadToken(path)
	if err != nil || created || again != tok {
		t.Errorf("second load: %q %v %v", again, created, err)
	}
	os.WriteFile(path, []byte("short\n"), 0o600)
	if _, _, err := LoadToken(path); err == nil || !strings.Contains(err.Error(), "at least 32") {
		t.Errorf("short token: %v", err)
	}
	os.WriteFile(path, []byte(strings.Repeat("ab", 20)+"\n"), 0o600)
	if _, _, err := LoadToken(path); err == nil || !strings.Contains(err.Error(), "2 different characters") {
		t.Errorf("weak token: %v", err)
	}
	os.WriteFile(path, []byte(tok+"\n"), 0o644)
	os.Chmod(path, 0o644)
	if _, _, err := LoadToken(path); runtime.GOOS != "windows" && (err == nil || !strings.Contains(err.Error(), "chmod 600")) {
		t.Errorf("world-readable token file: %v", err)
	}
}

func TestListenRules(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := New(Config{Listen: "0.0.0.0:8321"}); err == nil || !strings.Contains(err.Error(), "not a loopback address") {
		t.Errorf("public address without a token file: %v", err)
	}
	if _, _, err := New(Config{Listen: "0.0.0.0:8321", TokenFile: filepath.Join(dir, "t")}); err == nil || !strings.Contains(err.Error(), "--insecure-listen") {
		t.Errorf("public address in plain HTTP: %v, want refused", err)
	}
	if _, _, err := New(Config{Listen: ":8321", TokenFile: filepath.Join(dir, "t")}); err == nil || !strings.Contains(err.Error(), "clear text") {
		t.Errorf("every address in plain HTTP: %v, want refused", err)
	}
	if _, _, err := New(Config{Listen: "0.0.0.0:8321", TokenFile: filepath.Join(dir, "t"), InsecureListen: true}); err != nil {
		t.Errorf("public address with --insecure-listen: %v", err)
	}
	if _, _, err := New(Config{Listen: "nonsense"}); err == nil {
		t.Error("bad --listen accepted")
	}
}
