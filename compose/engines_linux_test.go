//go:build linux

package compose

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/vgrid/vgrid/internal/dockertest"
)

// fakeSSH puts an ssh on PATH that runs script (sh) with the arguments it
// was given saved in args.
func fakeSSH(t *testing.T, script string) (args string) {
	t.Helper()
	dir := t.TempDir()
	args = filepath.Join(dir, "args")
	os.WriteFile(filepath.Join(dir, "ssh"), []byte("#!/bin/sh\necho \"$@\" >> "+args+"\n"+script+"\n"), 0o755)
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return args
}

// An ssh:// engine is reached through `ssh HOST docker system dial-stdio`,
// as the docker CLI does: here ssh is a stand-in that runs the dial-stdio
// of this machine's real engine, so every request (and the ping) crosses
// a real docker system dial-stdio.
func TestSSHEngineThroughDialStdio(t *testing.T) {
	img := dockertest.BuildSimImage(t)
	args := fakeSSH(t, `exec docker system dial-stdio`)
	t.Setenv("DOCKER_HOST", "")
	d, err := Connect(context.Background(), "ssh://ana@gpu2:2222", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Host() != "ssh://ana@gpu2:2222" || d.host != "gpu2" {
		t.Errorf("host %q, endpoint host %q", d.Host(), d.host)
	}
	if desc := d.Describe(context.Background()); !strings.Contains(desc, "engine ") {
		t.Errorf("describe: %s", desc)
	}
	if id, err := d.ImageID(context.Background(), img); err != nil || !strings.HasPrefix(id, "sha256:") {
		t.Errorf("image through ssh: %q %v", id, err)
	}
	got, _ := os.ReadFile(args)
	if !strings.Contains(string(got), "-o BatchMode=yes -o ConnectTimeout=10 -l ana -p 2222 -- gpu2 docker system dial-stdio") {
		t.Errorf("ssh ran with:\n%s", got)
	}
}

func TestSSHWithoutKeyIsClear(t *testing.T) {
	fakeSSH(t, `echo "ana@gpu2: Permission denied (publickey,password)." >&2; exit 255`)
	_, err := Connect(context.Background(), "ssh://ana@gpu2", zerolog.Nop())
	if err == nil {
		t.Fatal("connected through an ssh that refused")
	}
	t.Log(err)
	for _, want := range []string{"ssh://ana@gpu2", "Permission denied (publickey,password)", "does not answer"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// A tcp:// engine with --tlsverify is reached with the TLS files of
// DOCKER_CERT_PATH, as the docker CLI does; without them it refuses, and
// the error says which engine.
func TestTCPEngineWithTLS(t *testing.T) {
	certs := t.TempDir()
	dockertest.WriteTLS(t, certs)
	e := dockertest.SecondEngineTLS(t, certs)
	t.Setenv("DOCKER_CERT_PATH", certs)
	t.Setenv("DOCKER_TLS_VERIFY", "1")
	d, err := Connect(context.Background(), e.TCP, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	desc := d.Describe(context.Background())
	d.Close()
	if !strings.Contains(desc, "engine ") || !strings.HasPrefix(desc, e.TCP) {
		t.Errorf("describe: %s", desc)
	}
	t.Setenv("DOCKER_CERT_PATH", "")
	t.Setenv("DOCKER_TLS_VERIFY", "")
	if _, err := Connect(context.Background(), e.TCP, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), e.TCP) {
		t.Errorf("without TLS files: %v", err)
	}
}
