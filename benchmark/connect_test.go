package benchmark

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// slowAccept is a listener whose accept loop is busy: each accept costs
// delay, as on a loaded host where the server takes its time to pick up new
// connections (the kernel completes the handshake, the request waits).
type slowAccept struct {
	net.Listener
	delay time.Duration
}

func (l slowAccept) Accept() (net.Conn, error) {
	time.Sleep(l.delay)
	return l.Listener.Accept()
}

// fixedTTFTServer is an HTTP/1.1 server written for this test: each chat
// completion streams its first token ttft after the server read the
// request, then four more 2 ms apart, as SSE in chunked encoding, on a
// keep-alive connection, behind a slow accept loop. It does little work per
// request (no net/http: its parsing would queue a 256-request burst on this
// 2-core machine for milliseconds, which is the server's time, not the
// client's), so what the test compares is the client's measurement.
func fixedTTFTServer(t testing.TB, ttft, acceptDelay time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := slowAccept{ln, acceptDelay}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				serveRaw(conn, ttft)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return "http://" + ln.Addr().String()
}

// serveRaw answers requests on one connection until it closes.
func serveRaw(conn net.Conn, ttft time.Duration) {
	br := bufio.NewReader(conn)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		path := strings.Fields(line + " x x")[1]
		length := 0
		for {
			h, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if h == "\r\n" {
				break
			}
			if k, v, ok := strings.Cut(h, ":"); ok && strings.EqualFold(k, "content-length") {
				length, _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
		if _, err := io.CopyN(io.Discard, br, int64(length)); err != nil {
			return
		}
		recv := time.Now()
		body := ""
		switch path {
		case "/v1/models":
			body = `{"object":"list","data":[{"id":"m","object":"model"}]}`
		case "/v1/chat/completions":
		default: // /health, /metrics: an empty 200
		}
		if path != "/v1/chat/completions" {
			fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
			continue
		}
		io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
		chunk := func(s string) { fmt.Fprintf(conn, "%x\r\n%s\r\n", len(s), s) }
		time.Sleep(time.Until(recv.Add(ttft)))
		for i := range 5 {
			if i > 0 {
				time.Sleep(2 * time.Millisecond)
			}
			chunk(fmt.Sprintf("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"t%d \"}}]}\n\n", i))
		}
		chunk("data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":8,\"completion_tokens\":5}}\n\ndata: [DONE]\n\n")
		io.WriteString(conn, "0\r\n\r\n")
	}
}

// waves runs n requests at concurrency cc, as a closed-loop level does,
// and returns the TTFT median of the first cc requests sent and of the
// next cc.
func waveMedians(t testing.TB, results []Result, cc int) (first, second float64) {
	t.Helper()
	slices.SortFunc(results, func(a, b Result) int { return a.Sent.Compare(b.Sent) })
	med := func(rs []Result) float64 {
		var v []float64
		for _, r := range rs {
			if !r.OK() {
				t.Fatalf("request failed: %s", r.Err)
			}
			v = append(v, ms(r.TTFT))
		}
		slices.Sort(v)
		return Percentile(v, 50)
	}
	return med(results[:cc]), med(results[cc : 2*cc])
}

// firstWaves runs levels closed-loop levels of cc streams, two waves each,
// and returns each level's first-wave and second-wave TTFT medians and the
// connections opened inside the windows.
func firstWaves(tb testing.TB, url string, cc, levels int) (firsts, seconds []float64, opened int) {
	tb.Helper()
	cfg := Defaults()
	cfg.Load.Concurrency, cfg.Load.Rates, cfg.Load.RequestsPerLevel = slices.Repeat([]int{cc}, levels), []float64{}, 2*cc
	cfg.Load.Request.MaxTokens = 5
	c := NewClient(url, "m", "K", func(string) string { return "" })
	defer c.Close()
	rep, err := (&Runner{Client: c, Config: cfg}).Run(context.Background(), []string{"load"})
	if err != nil {
		tb.Fatal(err)
	}
	s := rep.Scenarios[0]
	for l := range levels {
		f, sec := waveMedians(tb, slices.Clone(s.Results[l*2*cc:(l+1)*2*cc]), cc)
		firsts, seconds = append(firsts, f), append(seconds, sec)
	}
	return firsts, seconds, s.ConnectionsOpened
}

// Issue 17 item 6: connection setup is not time to first token. Against a
// server whose accept loop is busy (1 ms per connection), 256 streams that
// open their own connections wait up to a quarter of a second in TTFT
// (shown below, as vllm bench serve would measure it); a level opens its
// connections from its own workers before its measured window, so its first
// wave's TTFT is that of the next wave, and any connection a request still
// has to set up is recorded apart (Connect, Dialed). The 2 ms figure is
// BenchmarkFirstWaveTTFT's: a timing target, measured, not asserted here.
func TestFirstWaveTTFTExcludesConnectionSetup(t *testing.T) {
	const cc, ttft = 256, 50 * time.Millisecond
	url := fixedTTFTServer(t, ttft, time.Millisecond)
	firsts, seconds, opened := firstWaves(t, url, cc, 1)
	t.Logf("TTFT median: first wave %.2f ms, next wave %.2f ms (server: %v); %d connections opened inside the window", firsts[0], seconds[0], ttft, opened)
	if firsts[0]-seconds[0] > 25 || opened != 0 {
		t.Errorf("first wave %.2f ms, next %.2f ms, %d connections opened in the window: connection setup is in TTFT", firsts[0], seconds[0], opened)
	}

	// The same level with connections opened by the requests themselves
	// (as vllm bench serve does): connection setup is recorded apart from
	// TTFT, and the first wave shows it.
	c2 := NewClient(url, "m", "K", func(string) string { return "" })
	defer c2.Close()
	var mu sync.Mutex
	var results []Result
	var wg sync.WaitGroup
	next := make(chan int)
	for range cc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				res := c2.Chat(context.Background(), Request{Messages: []Message{{Role: "user", Content: "hi"}}, MaxTokens: 5})
				mu.Lock()
				results = append(results, res)
				mu.Unlock()
			}
		}()
	}
	for i := range 2 * cc {
		next <- i
	}
	close(next)
	wg.Wait()
	c1, c2s := waveMedians(t, results, cc)
	slices.SortFunc(results, func(a, b Result) int { return a.Sent.Compare(b.Sent) })
	var dialed int
	var maxConnect time.Duration
	for _, res := range results[:cc] {
		if res.Dialed {
			dialed++
			maxConnect = max(maxConnect, res.Connect)
		}
	}
	t.Logf("without pre-opened connections: first wave %.2f ms, second %.2f ms; %d dialed, connect up to %v (apart from TTFT)", c1, c2s, dialed, maxConnect)
	if dialed < cc/2 || c1-c2s < 100 {
		t.Errorf("%d of the first wave dialed, first wave %.2f ms against %.2f: the busy accept loop should show", dialed, c1, c2s)
	}
}

// BenchmarkFirstWaveTTFT measures, over b.N levels of 256 streams against a
// server with a fixed 50 ms time to first token and a busy accept loop
// (300 µs per connection), how far the first wave's TTFT median is from the
// next wave's (the target: within 2 ms):
//
//	go test ./benchmark -run '^$' -bench FirstWaveTTFT -benchtime 15x
func BenchmarkFirstWaveTTFT(b *testing.B) {
	url := fixedTTFTServer(b, 50*time.Millisecond, 300*time.Microsecond)
	firsts, seconds, opened := firstWaves(b, url, 256, b.N)
	var excess []float64
	for i := range firsts {
		excess = append(excess, firsts[i]-seconds[i])
	}
	slices.Sort(firsts)
	slices.Sort(seconds)
	slices.Sort(excess)
	b.ReportMetric(firsts[len(firsts)/2], "first-wave-ms")
	b.ReportMetric(seconds[len(seconds)/2], "next-wave-ms")
	b.ReportMetric(excess[len(excess)/2], "excess-ms")
	b.ReportMetric(float64(opened), "conns-in-window")
}
