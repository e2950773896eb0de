package daemon

import (
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Thousands of connections that never finish their headers do not lock
// users out: the API still answers, and the daemon holds a bounded number
// of connections.
func TestConnectionFloodLeavesTheAPIAnswering(t *testing.T) {
	const flood = 2000
	// As many descriptors as the flood and the daemon's bound need, not
	// the flood twice: without the bound the daemon runs out of them.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	low := lim
	low.Cur = flood + MaxConns + 300
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	defer syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	td := startTestDaemon(t, t.TempDir(), &gateTarget{gate: make(chan struct{})})
	defer td.stop()
	addr := strings.TrimPrefix(td.url, "http://")
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < flood; i++ {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		c.Write([]byte("POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\n")) // and never more
		conns = append(conns, c)
	}
	start := time.Now()
	client := &http.Client{Timeout: 10 * time.Second}
	req, _ := http.NewRequest("GET", td.url+"/v1/runs", nil)
	req.Header.Set("Authorization", "Bearer "+td.token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("the API with %d slow connections open: %v", flood, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the API with %d slow connections open: %d", flood, resp.StatusCode)
	}
	held := td.d.guard.open()
	t.Logf("%d slow connections: the API answered in %v; the daemon holds %d connections", flood, time.Since(start).Round(time.Millisecond), held)
	if held > MaxConns {
		t.Errorf("the daemon holds %d connections, more than %d", held, MaxConns)
	}
}
