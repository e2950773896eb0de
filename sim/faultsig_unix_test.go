//go:build unix

package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

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

// mainWithSignals runs Main as the container's process would, on a free
// port; it returns the server's URL, its output and its exit code.
func mainWithSignals(t *testing.T, env map[string]string) (url string, out *lockedBuffer, code <-chan int) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	out = &lockedBuffer{}
	c, ended := make(chan int, 1), make(chan struct{})
	args := append([]string{"serve"}, smallArgs...)
	args = append(args, "--host", "127.0.0.1", "--port", fmt.Sprint(port))
	go func() { c <- Main(ctx, args, func(k string) string { return env[k] }, out, out); close(ended) }()
	t.Cleanup(func() { cancel(); <-ended })
	return fmt.Sprintf("http://127.0.0.1:%d", port), out, c
}

// docker kill -s USR2 wedges decoding with /health 200; -s USR1 then kills
// the engine, and the process exits with 1 after vLLM's EngineDeadError.
func TestSignalsStallThenKillTheEngine(t *testing.T) {
	url, out, code := mainWithSignals(t, map[string]string{"VLLM_SIM_TIME_SCALE": "0.1", "VLLM_SIM_BOOT_SLOWDOWN": "0"})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if r, err := http.Get(url + "/health"); err == nil {
			r.Body.Close()
			if r.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server did not come up:\n%s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	syscall.Kill(syscall.Getpid(), syscall.SIGUSR2)
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	b, _ := json.Marshal(chatBody("m", "hi", 3))
	req, _ := http.NewRequestWithContext(ctx, "POST", url+"/v1/chat/completions", bytes.NewReader(b))
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a request after SIGUSR2: %v, want no token before the timeout", err)
	}
	if h, err := http.Get(url + "/health"); err != nil || h.StatusCode != 200 {
		t.Errorf("health after SIGUSR2: %v %v, want 200", h, err)
	} else {
		h.Body.Close()
	}
	syscall.Kill(syscall.Getpid(), syscall.SIGUSR1)
	select {
	case c := <-code:
		if c != 1 || !strings.Contains(out.String(), "EngineDeadError") {
			t.Errorf("exit %d after SIGUSR1, output:\n%s", c, out)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not exit after SIGUSR1")
	}
}

// A SIGUSR1 while the engine starts is a crash of its start: exit 1 with
// the line vLLM prints, not a server.
func TestSignalCrashesTheBoot(t *testing.T) {
	_, out, code := mainWithSignals(t, map[string]string{"VLLM_SIM_TIME_SCALE": "1", "VLLM_SIM_BOOT_SLOWDOWN": "1"})
	for !strings.Contains(out.String(), "Starting to load model") {
		time.Sleep(10 * time.Millisecond)
	}
	syscall.Kill(syscall.Getpid(), syscall.SIGUSR1)
	select {
	case c := <-code:
		if c != 1 || !strings.Contains(out.String(), "Engine core initialization failed") || strings.Contains(out.String(), "Application startup complete") {
			t.Errorf("exit %d, output:\n%s", c, out)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the boot did not end after SIGUSR1:\n%s", out)
	}
}
