package compose

import (
	"net/url"
	"strings"
	"testing"
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
