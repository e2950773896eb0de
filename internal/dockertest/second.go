//go:build linux

package dockertest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vgrid/vgrid/internal/lockfile"
)

// The second engine's network: its own bridge (the default docker0
// belongs to the first engine; a dockerd started with --bridge=none
// deletes docker0) and its own address pool.
const (
	secondBridge = "vgrid-d2"
	secondBIP    = "10.214.0.1/24"
	secondPool   = "base=10.215.0.0/16,size=24"
	cgroupParent = "vgrid-d2" // its containers' cgroups, apart from the first engine's
)

// Engine2 is a second Docker engine on this machine, for tests of slots
// on several engines.
type Engine2 struct {
	Host string // its DOCKER_HOST address (unix://...)
	// TCP is its tcp:// address with TLS (SecondEngineTLS), else "".
	TCP string
	// Addr is where this machine reaches the engine's network namespace
	// (IsolatedEngine), else "".
	Addr   string
	netns  string
	tlsDir string
	dir    string
	cmd    *exec.Cmd
}

// SecondEngine starts a second dockerd with its own socket, data root,
// exec root, bridge and address pool, loads images into it from the
// first engine (docker save | docker load), and stops it when the test
// ends. Tests that use it are serialised across test processes (the
// bridge is one). Published ports of both engines share this machine's
// loopback, so tests give each slot its own port.
func SecondEngine(t testing.TB, images ...string) *Engine2 {
	t.Helper()
	return secondEngine(t, "", images)
}

// SecondEngineTLS is SecondEngine also listening on a tcp:// address of
// the loopback with --tlsverify: clients need a certificate signed by the
// CA that WriteTLS wrote in tlsDir.
func SecondEngineTLS(t testing.TB, tlsDir string, images ...string) *Engine2 {
	t.Helper()
	return secondEngine(t, tlsDir, images)
}

// The isolated engine's network namespace, and the veth pair that joins
// it to this machine's: the namespace's end is Engine2.Addr.
const (
	isolatedNetns = "vgrid-soak"
	isolatedHost  = "10.216.0.1/30" // this machine's end
	isolatedAddr  = "10.216.0.2"    // the namespace's end
)

// IsolatedEngine is SecondEngine in a network namespace of its own, for
// tests that stop and start the engine: dockerd 20.10, restarted with an
// address pool over its own stale default network, deletes the machine's
// docker0 (the first engine's bridge); in its own namespace it deletes
// nothing of the machine's. Its published ports are on the namespace's
// loopback: run what must reach them with Engine2.Command, and reach
// those from here at Engine2.Addr.
func IsolatedEngine(t testing.TB, images ...string) *Engine2 {
	t.Helper()
	Engine(t)
	NeedRoot(t, "a network namespace")
	exec.Command("ip", "netns", "del", isolatedNetns).Run() // a crashed earlier test's
	exec.Command("ip", "link", "del", "vgrid-soak0").Run()
	for _, args := range [][]string{
		{"netns", "add", isolatedNetns},
		{"link", "add", "vgrid-soak0", "type", "veth", "peer", "name", "vgrid-soak1"},
		{"link", "set", "vgrid-soak1", "netns", isolatedNetns},
		{"addr", "add", isolatedHost, "dev", "vgrid-soak0"},
		{"link", "set", "vgrid-soak0", "up"},
		{"-n", isolatedNetns, "addr", "add", isolatedAddr + "/30", "dev", "vgrid-soak1"},
		{"-n", isolatedNetns, "link", "set", "vgrid-soak1", "up"},
		{"-n", isolatedNetns, "link", "set", "lo", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", "vgrid-soak0").Run()
		exec.Command("ip", "netns", "del", isolatedNetns).Run()
	})
	return secondEngineIn(t, isolatedNetns, "", images)
}

// LogFile is the engine's log (dockerd's output), removed with the engine.
func (e *Engine2) LogFile() string { return filepath.Join(e.dir, "dockerd.log") }

// Command is name run in the engine's network namespace (its own, with
// IsolatedEngine; this machine's otherwise).
func (e *Engine2) Command(name string, args ...string) *exec.Cmd {
	if e.netns == "" {
		return exec.Command(name, args...)
	}
	return exec.Command("nsenter", append([]string{"--net=/run/netns/" + e.netns, "--", name}, args...)...)
}

func secondEngine(t testing.TB, tlsDir string, images []string) *Engine2 {
	t.Helper()
	return secondEngineIn(t, "", tlsDir, images)
}

func secondEngineIn(t testing.TB, netns, tlsDir string, images []string) *Engine2 {
	t.Helper()
	Engine(t)
	NeedRoot(t, "a second dockerd")
	l, err := lockfile.Wait(context.Background(), filepath.Join(os.TempDir(), "vgrid-dockertest-engine2.lock"), fmt.Sprintf("pid %d: %s", os.Getpid(), t.Name()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Release() })
	dir, err := os.MkdirTemp("", "vgrid-d2-")
	if err != nil {
		t.Fatal(err)
	}
	e := &Engine2{Host: "unix://" + filepath.Join(dir, "docker.sock"), dir: dir, tlsDir: tlsDir, netns: netns}
	if netns != "" {
		e.Addr = isolatedAddr
	}
	if tlsDir != "" {
		e.TCP = fmt.Sprintf("tcp://127.0.0.1:%d", FreePort(t))
	}
	ip := func(args ...string) *exec.Cmd {
		if netns != "" {
			args = append([]string{"-n", netns}, args...)
		}
		return exec.Command("ip", args...)
	}
	ip("link", "del", secondBridge).Run() // a crashed earlier test's
	for _, args := range [][]string{
		{"link", "add", "name", secondBridge, "type", "bridge"},
		{"addr", "add", secondBIP, "dev", secondBridge},
		{"link", "set", secondBridge, "up"},
	} {
		if out, err := ip(args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	t.Cleanup(func() {
		e.stop(t)
		ip("link", "del", secondBridge).Run()
		os.RemoveAll(dir)
	})
	e.start(t)
	for _, img := range images {
		save := exec.Command("docker", "save", img)
		load := exec.Command("docker", "-H", e.Host, "load")
		pipe, err := save.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		load.Stdin = pipe
		if err := save.Start(); err != nil {
			t.Fatal(err)
		}
		if out, err := load.CombinedOutput(); err != nil {
			t.Fatalf("load %s into the second engine: %v\n%s", img, err, out)
		}
		if err := save.Wait(); err != nil {
			t.Fatalf("docker save %s: %v", img, err)
		}
	}
	return e
}

func (e *Engine2) start(t testing.TB) {
	t.Helper()
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
}

// Stop stops the engine as `systemctl stop docker` does (SIGTERM, then
// waiting): it stops its containers, which restart with it under a
// restart policy. Safe from any goroutine.
func (e *Engine2) Stop() error {
	if e.cmd == nil {
		return nil
	}
	e.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- e.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		return fmt.Errorf("the second dockerd did not stop within 60 s")
	}
	e.cmd = nil
	return nil
}

// Start starts the engine (again, after Stop) and waits until it answers.
// Safe from any goroutine.
func (e *Engine2) Start() error {
	logf, err := os.OpenFile(filepath.Join(e.dir, "dockerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	e.cmd = e.Command("dockerd", "--host", e.Host, "--data-root", filepath.Join(e.dir, "data"), "--exec-root", filepath.Join(e.dir, "exec"),
		"--pidfile", filepath.Join(e.dir, "docker.pid"), "--bridge", secondBridge, "--default-address-pool", secondPool,
		"--iptables=false", "--ip6tables=false", "--cgroup-parent", cgroupParent)
	if e.tlsDir != "" {
		e.cmd.Args = append(e.cmd.Args, "--host", e.TCP, "--tlsverify", "--tlscacert", filepath.Join(e.tlsDir, "ca.pem"),
			"--tlscert", filepath.Join(e.tlsDir, "server-cert.pem"), "--tlskey", filepath.Join(e.tlsDir, "server-key.pem"))
	}
	e.cmd.Stdout, e.cmd.Stderr = logf, logf
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := e.cmd.Start(); err != nil {
		return fmt.Errorf("start a second dockerd: %w", err)
	}
	logf.Close()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if exec.Command("docker", "-H", e.Host, "info", "--format", "{{.ServerVersion}}").Run() == nil {
			return nil
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(e.dir, "dockerd.log"))
			return fmt.Errorf("the second dockerd did not answer within 60 s:\n%s", tail(string(b), 2000))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Kill ends the engine abruptly, as a host that goes away: dockerd and
// its containerd get SIGKILL; the containers' shims are left running, so
// what served keeps serving with no engine to answer for it.
func (e *Engine2) Kill(t testing.TB) {
	t.Helper()
	if e.cmd == nil {
		return
	}
	syscall.Kill(-e.cmd.Process.Pid, syscall.SIGKILL) // dockerd and containerd: one process group
	e.cmd.Wait()
	e.cmd = nil
}

// stop removes every container and stops the engine. After Kill it does
// not start the engine again (a dockerd restarted over a crashed one's
// roots deletes the default docker0 bridge of the first engine, seen
// with 20.10): it kills what the dead engine left (its shims, and the
// containers' processes, found by the engine's own cgroup parent) and
// unmounts what it mounted.
func (e *Engine2) stop(t testing.TB) {
	if e.cmd != nil {
		if ids, err := exec.Command("docker", "-H", e.Host, "ps", "-aq").Output(); err == nil && len(strings.TrimSpace(string(ids))) > 0 {
			exec.Command("docker", append([]string{"-H", e.Host, "rm", "-f"}, strings.Fields(string(ids))...)...).Run()
		}
		e.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { e.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			syscall.Kill(-e.cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		e.cmd = nil
	}
	// What outlives a dead engine: the shims (their command lines name its
	// exec root) and the containers' processes (in its cgroup parent).
	exec.Command("sh", "-c", "grep -l "+e.dir+" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3 | xargs -r kill -9").Run()
	exec.Command("sh", "-c", "cat /sys/fs/cgroup/*/"+cgroupParent+"/*/cgroup.procs /sys/fs/cgroup/"+cgroupParent+"/*/cgroup.procs 2>/dev/null | sort -u | xargs -r kill -9").Run()
	time.Sleep(200 * time.Millisecond)
	exec.Command("sh", "-c", "awk '$2 ~ \"^"+e.dir+"\" {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l").Run()
}

// NeedRoot skips the test when not root, saying what needs it; in CI
// (CI set) it fails instead.
func NeedRoot(t testing.TB, what string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s needs root in CI", what)
	}
	t.Skipf("skipped: %s needs root", what)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// FreePort is a TCP port free on 127.0.0.1 now.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
