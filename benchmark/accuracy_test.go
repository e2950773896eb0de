package benchmark

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// fixedHandler streams every request with known latencies: the first token
// 200 ms after the request arrives, then one every 20 ms on an absolute
// schedule. Each chunk's content is its flush time (unix ns), so the
// client's measurement can be compared with the server's own clock. The
// stamp is taken last, after the line is formatted, and nothing is
// allocated between it and the write: the server is the reference here.
func fixedHandler(tokens int) http.Handler {
	const ttft, itl = 200 * time.Millisecond, 20 * time.Millisecond
	prefix := []byte(`data: {"choices":[{"index":0,"delta":{"content":"`)
	suffix := []byte(` "},"finish_reason":null}]}` + "\n\n")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		buf := make([]byte, 0, 128)
		for i := 0; i < tokens; i++ {
			time.Sleep(time.Until(start.Add(ttft + time.Duration(i)*itl)))
			buf = append(buf[:0], prefix...)
			buf = strconv.AppendInt(buf, time.Now().UnixNano(), 10)
			buf = append(buf, suffix...)
			w.Write(buf)
			fl.Flush()
		}
		fmt.Fprintf(w, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":%d}}\n\ndata: [DONE]\n\n", tokens)
		fl.Flush()
	})
}

// fixedServerEnv, when set in the environment of this test binary, makes it
// serve fixedHandler on the given address instead of running tests: the
// accuracy benchmark runs its server in another process, as vLLM is.
const fixedServerEnv = "VGRID_FIXED_SSE_SERVER"

func TestMain(m *testing.M) {
	if addr := os.Getenv(fixedServerEnv); addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		// The reference server does not collect garbage: a collection
		// between a stamp and its write would count as client error.
		debug.SetGCPercent(-1)
		fmt.Println("listening", ln.Addr())
		http.Serve(ln, fixedHandler(16))
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// fixedServer starts the fixed-latency server in a child process.
func fixedServer(tb testing.TB, tokens int) string {
	if tokens != 16 {
		tb.Fatal("the child serves 16 tokens")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fixedServerEnv+"=127.0.0.1:0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var line string
	if _, err := fmt.Fscanln(out, &line, &line); err != nil {
		tb.Fatalf("fixed server did not start: %v", err)
	}
	return "http://" + line
}

// accuracy runs streams concurrent requests and returns, in milliseconds,
// the errors of the client's measurements against the server's stamps.
type accuracy struct {
	ttftErr, tpotErr []float64 // measured - truth, per request
	ttft, tpot       []float64 // measured
}

// measureAccuracy starts streams requests; with stagger, request i starts
// i x stagger/streams later (arrivals spread as in a running benchmark),
// without it all start at once (every first token in the same instant).
func measureAccuracy(tb testing.TB, url string, streams int, stagger time.Duration, readStamps bool) accuracy {
	c := NewClient(url, "m", "K", func(string) string { return "" })
	c.ReadStamps = readStamps
	defer c.HTTP.CloseIdleConnections()
	c.HTTP.Transport.(*http.Transport).MaxIdleConnsPerHost = streams
	var mu sync.Mutex
	var acc accuracy
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < streams; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Until(start.Add(time.Duration(i) * stagger / time.Duration(streams))))
			r := c.Chat(context.Background(), Request{Messages: []Message{{Role: "user", Content: "x"}}})
			if !r.OK() {
				tb.Error(r.Err)
				return
			}
			var stamps []time.Time
			for _, f := range strings.Fields(r.Content) {
				n, _ := strconv.ParseInt(f, 10, 64)
				stamps = append(stamps, time.Unix(0, n))
			}
			trueTTFT := stamps[0].Sub(r.Sent)
			trueTPOT := stamps[len(stamps)-1].Sub(stamps[0]) / time.Duration(len(stamps)-1)
			tpot, _ := r.TPOT()
			mu.Lock()
			acc.ttftErr = append(acc.ttftErr, ms(r.TTFT-trueTTFT))
			acc.tpotErr = append(acc.tpotErr, ms(tpot-trueTPOT))
			acc.ttft = append(acc.ttft, ms(r.TTFT))
			acc.tpot = append(acc.tpot, ms(tpot))
			mu.Unlock()
		}()
	}
	wg.Wait()
	return acc
}

// BenchmarkStreamAccuracy measures how far vgrid's TTFT and TPOT are from
// the truth against a server with fixed latencies (TTFT 200 ms, 20 ms per
// token, 16 tokens), with 64 and 256 concurrent streams on this machine.
// Targets: TTFT p50 within 1 ms and TPOT p50 within 0.5 ms at 64 streams,
// TTFT p99 error under 3 ms at 256 streams.
//
//	go test ./benchmark -run '^$' -bench StreamAccuracy -benchtime 5x
//
// Reported per size: *_vs_server_ms compare each request's measurement with
// the server's own flush stamps (the client's measurement error alone);
// *_vs_nominal_ms compare medians with the configured 200/20 ms (server
// timer overshoot included).
func BenchmarkStreamAccuracy(b *testing.B) {
	url := fixedServer(b, 16)
	for _, streams := range []int{64, 256} {
		for _, mode := range []string{"staggered", "synchronised"} {
			stagger := 200 * time.Millisecond
			if mode == "synchronised" {
				stagger = 0
			}
			for _, stamps := range []string{"kernel", "read"} {
				b.Run(fmt.Sprintf("streams=%d/%s/stamps=%s", streams, mode, stamps), func(b *testing.B) {
					benchAccuracy(b, url, streams, stagger, stamps == "read")
				})
			}
		}
	}
}

func benchAccuracy(b *testing.B, url string, streams int, stagger time.Duration, readStamps bool) {
	var all accuracy
	for i := 0; i < b.N; i++ {
		a := measureAccuracy(b, url, streams, stagger, readStamps)
		all.ttftErr = append(all.ttftErr, a.ttftErr...)
		all.tpotErr = append(all.tpotErr, a.tpotErr...)
		all.ttft = append(all.ttft, a.ttft...)
		all.tpot = append(all.tpot, a.tpot...)
	}
	abs := func(v []float64) []float64 {
		out := make([]float64, len(v))
		for i, x := range v {
			out[i] = math.Abs(x)
		}
		return out
	}
	te, pe := Summarize(abs(all.ttftErr)), Summarize(abs(all.tpotErr))
	b.ReportMetric(te.P50, "ttft_p50_err_vs_server_ms")
	b.ReportMetric(te.P99, "ttft_p99_err_vs_server_ms")
	b.ReportMetric(te.Max, "ttft_max_err_vs_server_ms")
	b.ReportMetric(pe.P50, "tpot_p50_err_vs_server_ms")
	b.ReportMetric(math.Abs(median(all.ttft)-200), "ttft_p50_vs_nominal_ms")
	b.ReportMetric(math.Abs(median(all.tpot)-20), "tpot_p50_vs_nominal_ms")
}
