package compose

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// Engines at ssh://[user@]host[:port] are reached the way the docker CLI
// reaches them: the local ssh client runs `docker system dial-stdio` on
// the host, and the API travels over its standard input and output. ssh
// runs in batch mode: it never asks for a password, so a host without a
// key (or an agent holding one) fails at once, with ssh's own words.

// sshCommand is the ssh client's command line for u; pure.
func sshCommand(u *url.URL) ([]string, error) {
	if u.Hostname() == "" {
		return nil, fmt.Errorf("docker host %s: no host name; want ssh://[user@]host[:port]", u.Redacted())
	}
	if _, set := u.User.Password(); set {
		return nil, fmt.Errorf("docker host %s: a password in the address is not supported; use an ssh key (ssh-copy-id) or an ssh agent", u.Redacted())
	}
	if u.Path != "" && u.Path != "/" {
		return nil, fmt.Errorf("docker host %s: a path is not supported; want ssh://[user@]host[:port]", u.Redacted())
	}
	args := []string{"ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"}
	if u.User != nil && u.User.Username() != "" {
		args = append(args, "-l", u.User.Username())
	}
	if p := u.Port(); p != "" {
		args = append(args, "-p", p)
	}
	return append(args, "--", u.Hostname(), "docker", "system", "dial-stdio"), nil
}

// sshDialer returns a dialer whose connections are ssh sessions to u.
func sshDialer(u *url.URL) (func(ctx context.Context, network, addr string) (net.Conn, error), error) {
	argv, err := sshCommand(u)
	if err != nil {
		return nil, err
	}
	if _, err := exec.LookPath(argv[0]); err != nil {
		return nil, fmt.Errorf("docker host %s: no ssh client on this machine (%v); install OpenSSH", u.Redacted(), err)
	}
	return func(ctx context.Context, _, _ string) (net.Conn, error) {
		// The session outlives the dial: it is the connection. Its pipes
		// are ours (os.Pipe), not exec's: Wait, run when ssh exits, must
		// not close what is still being read.
		cmd := exec.Command(argv[0], argv[1:]...)
		c := &sshConn{cmd: cmd, host: u.Redacted()}
		cmd.Stderr = &c.stderr
		inR, inW, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		outR, outW, err := os.Pipe()
		if err != nil {
			inR.Close()
			inW.Close()
			return nil, err
		}
		cmd.Stdin, cmd.Stdout = inR, outW
		err = cmd.Start()
		inR.Close() // the child holds its ends
		outW.Close()
		if err != nil {
			inW.Close()
			outR.Close()
			return nil, fmt.Errorf("ssh to %s: %w", c.host, err)
		}
		c.in, c.out = inW, outR
		c.exited = make(chan struct{})
		go func() { c.waitErr = cmd.Wait(); close(c.exited) }()
		return c, nil
	}, nil
}

// sshConn is a net.Conn over an ssh session's standard streams.
type sshConn struct {
	cmd     *exec.Cmd
	host    string
	in      io.WriteCloser
	out     io.ReadCloser
	stderr  lockedBuffer
	exited  chan struct{}
	waitErr error
	once    sync.Once
}

func (c *sshConn) Read(p []byte) (int, error) {
	n, err := c.out.Read(p)
	if err == io.EOF {
		select {
		case <-c.exited:
		case <-time.After(2 * time.Second):
		}
		if msg := strings.TrimSpace(c.stderr.String()); msg != "" {
			return n, fmt.Errorf("ssh to %s: %s", c.host, msg)
		}
	}
	return n, err
}

func (c *sshConn) Write(p []byte) (int, error) {
	n, err := c.in.Write(p)
	if err != nil {
		select { // ssh ended: Wait has copied all it said
		case <-c.exited:
		case <-time.After(2 * time.Second):
		}
		if msg := strings.TrimSpace(c.stderr.String()); msg != "" {
			err = fmt.Errorf("ssh to %s: %s", c.host, msg)
		}
	}
	return n, err
}

func (c *sshConn) Close() error {
	c.once.Do(func() {
		c.in.Close()
		select {
		case <-c.exited:
		case <-time.After(time.Second):
			c.cmd.Process.Kill()
			<-c.exited
		}
		c.out.Close()
	})
	return nil
}

func (c *sshConn) CloseWrite() error { return c.in.Close() }

type sshAddr string

func (a sshAddr) Network() string { return "ssh" }
func (a sshAddr) String() string  { return string(a) }

func (c *sshConn) LocalAddr() net.Addr                { return sshAddr("local") }
func (c *sshConn) RemoteAddr() net.Addr               { return sshAddr(c.host) }
func (c *sshConn) SetDeadline(t time.Time) error      { return nil }
func (c *sshConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *sshConn) SetWriteDeadline(t time.Time) error { return nil }

// lockedBuffer is a bytes.Buffer safe for the ssh process and readers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var errNoSSH = errors.New("not an ssh address")

// sshHost parses an ssh:// docker host; errNoSSH for any other.
func sshHost(host string) (*url.URL, error) {
	if !strings.HasPrefix(host, "ssh://") {
		return nil, errNoSSH
	}
	u, err := url.Parse(host)
	if err != nil {
		return nil, fmt.Errorf("docker host %q: %w; want ssh://[user@]host[:port]", host, err)
	}
	return u, nil
}
