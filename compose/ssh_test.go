package compose

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/vgrid/vgrid/internal/dockertest"
)

func TestSSHCommand(t *testing.T) {
	cases := []struct{ host, want, err string }{
		{host: "ssh://gpu2", want: "ssh -o BatchMode=yes -o ConnectTimeout=10 -- gpu2 docker system dial-stdio"},
		{host: "ssh://ana@gpu2:2222", want: "ssh -o BatchMode=yes -o ConnectTimeout=10 -l ana -p 2222 -- gpu2 docker system dial-stdio"},
		{host: "ssh://ana:secret@gpu2", err: "password in the address is not supported"},
		{host: "ssh://gpu2/var/run/docker.sock", err: "a path is not supported"},
		{host: "ssh://", err: "no host name"},
	}
	for _, c := range cases {
		u, err := url.Parse(c.host)
		if err != nil {
			t.Fatal(err)
		}
		argv, err := sshCommand(u)
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: err = %v, want %q", c.host, err, c.err)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("%s: the password is in the message: %v", c.host, err)
			}
		case err != nil:
			t.Errorf("%s: %v", c.host, err)
		case strings.Join(argv, " ") != c.want:
			t.Errorf("%s:\n got %s\nwant %s", c.host, strings.Join(argv, " "), c.want)
		}
	}
}

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
