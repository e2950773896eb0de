package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCurl(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/health":
			w.WriteHeader(200)
		case "/dead":
			w.WriteHeader(503)
		case "/slow":
			time.Sleep(300 * time.Millisecond)
		case "/echo":
			b, _ := io.ReadAll(r.Body)
			w.Write([]byte(r.Method + " " + r.Header.Get("Authorization") + " " + string(b)))
		}
	}))
	defer srv.Close()
	out := filepath.Join(t.TempDir(), "body")
	tests := []struct {
		args   []string
		code   int
		stdout string
	}{
		{[]string{"-f", srv.URL + "/health"}, 0, ""},
		{[]string{"-f", srv.URL + "/dead"}, 22, ""},
		{[]string{srv.URL + "/dead"}, 0, ""},
		{[]string{"-s", "-o", "/dev/null", "-w", "%{http_code}", srv.URL + "/dead"}, 0, "503"},
		{[]string{"-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:1/health"}, 7, "000"},
		{[]string{"-s", "--max-time", "0.1", srv.URL + "/slow"}, 28, ""},
		{[]string{"-s", "-X", "POST", "-H", "Authorization: Bearer k", "-d", `{"a":1}`, srv.URL + "/echo"}, 0, `POST Bearer k {"a":1}`},
		{[]string{"-s", "-o", out, srv.URL + "/echo"}, 0, ""},
		{[]string{"--compressed", srv.URL}, 2, ""},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := curl(tt.args, &stdout, &stderr)
		if code != tt.code || stdout.String() != tt.stdout {
			t.Errorf("curl %v: exit %d stdout %q (stderr %q); want %d %q", tt.args, code, stdout.String(), stderr.String(), tt.code, tt.stdout)
		}
	}
	if b, _ := os.ReadFile(out); !strings.HasPrefix(string(b), "GET") {
		t.Errorf("-o file holds %q", b)
	}
}

func TestFindPrintf(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "blobs", "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "blobs", "a"), make([]byte, 10), 0o644)
	f, _ := os.Create(filepath.Join(dir, "blobs", "sub", "big"))
	f.Truncate(5 << 30) // sparse: 5 GiB apparent size, like a model blob
	f.Close()
	var out, errb bytes.Buffer
	if code := find([]string{filepath.Join(dir, "blobs"), "-type", "f", "-printf", `%s\n`}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if got := strings.Fields(out.String()); len(got) != 2 || got[0] != "10" || got[1] != "5368709120" {
		t.Errorf("sizes %q, want 10 and 5368709120", got)
	}
}
