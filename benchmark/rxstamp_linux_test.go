package benchmark

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// stampedPair returns a stamped client connection and the server's end.
func stampedPair(t testing.TB) (*stampConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := dialStamped(context.Background(), &net.Dialer{}, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	srv := <-accepted
	if srv == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); srv.Close() })
	sc, ok := c.(*stampConn)
	if !ok {
		t.Fatalf("dialStamped returned %T: the kernel refused SO_TIMESTAMPNS", c)
	}
	return sc, srv
}

// The arrival is when the kernel received the bytes, not when they were
// read: bytes left unread for 80 ms carry a stamp 80 ms before the read.
func TestStampConnArrivalIsKernelReceiveTime(t *testing.T) {
	c, srv := stampedPair(t)
	if _, ok := arrival(c); ok {
		t.Fatal("arrival before any read")
	}
	awaitStamps(t, c, srv)
	sent := time.Now()
	if _, err := srv.Write([]byte("data: x\n\n")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(80 * time.Millisecond)
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	read := time.Now()
	if err != nil || string(buf[:n]) != "data: x\n\n" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	at, ok := arrival(c)
	if !ok {
		t.Fatal("no kernel stamp after a read")
	}
	if at.Before(sent) || at.Sub(sent) > 20*time.Millisecond {
		t.Errorf("arrival %v after the write, want within 20 ms of it", at.Sub(sent))
	}
	if read.Sub(at) < 75*time.Millisecond {
		t.Errorf("arrival %v before the read returned, want the 80 ms the bytes waited", read.Sub(at))
	}
}

// awaitStamps exchanges bytes until the kernel stamps them: the first socket
// asking for stamps turns them on through a work queue, so the first
// packets after it may carry none (reads then fall back to their own time).
func awaitStamps(t *testing.T, c *stampConn, srv net.Conn) {
	t.Helper()
	buf := make([]byte, 8)
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		srv.Write([]byte("."))
		if _, err := c.Read(buf); err != nil {
			t.Fatal(err)
		}
		if _, ok := arrival(c); ok {
			return
		}
	}
	t.Fatal("the kernel gave no receive stamps within 2 s")
}

// Deadlines, Close and EOF behave as on a plain TCP connection: the HTTP
// transport relies on them to cancel requests and reuse connections.
func TestStampConnDeadlineCloseEOF(t *testing.T) {
	c, srv := stampedPair(t)
	buf := make([]byte, 8)

	c.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
	_, err := c.Read(buf)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v, want a timeout", err)
	}
	c.SetReadDeadline(time.Time{})

	done := make(chan error, 1)
	go func() { _, err := c.Read(buf); done <- err }()
	time.Sleep(20 * time.Millisecond)
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read on a closed conn: %v, want net.ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not unblock a pending Read")
	}

	c2, srv2 := stampedPair(t)
	srv2.Write([]byte("ab"))
	srv2.Close()
	got, err := io.ReadAll(c2)
	if err != nil || string(got) != "ab" {
		t.Fatalf("read to EOF: %q, %v", got, err)
	}
	_ = srv
}

func TestCmsgStampRejectsMalformedControlData(t *testing.T) {
	size := int(unsafe.Sizeof(unix.Timespec{}))
	good := make([]byte, unix.CmsgSpace(size))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&good[0]))
	h.Level, h.Type = unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS
	h.SetLen(unix.CmsgLen(size))
	ts := unix.NsecToTimespec(1_700_000_000_123_456_789)
	copy(good[unix.CmsgLen(0):], unsafe.Slice((*byte)(unsafe.Pointer(&ts)), size))
	if ns, ok := cmsgStamp(good); !ok || ns != 1_700_000_000_123_456_789 {
		t.Fatalf("cmsgStamp(valid) = %d, %v", ns, ok)
	}
	for name, oob := range map[string][]byte{
		"empty":        nil,
		"short header": good[:unix.SizeofCmsghdr-1],
		"truncated":    good[:unix.CmsgLen(size/2)],
	} {
		if _, ok := cmsgStamp(oob); ok {
			t.Errorf("%s: stamp found in malformed control data", name)
		}
	}
	bad := append([]byte(nil), good...)
	(*unix.Cmsghdr)(unsafe.Pointer(&bad[0])).SetLen(1 << 20)
	if _, ok := cmsgStamp(bad); ok {
		t.Error("length beyond the buffer accepted")
	}
	other := append([]byte(nil), good...)
	(*unix.Cmsghdr)(unsafe.Pointer(&other[0])).Type = unix.SCM_RIGHTS
	if _, ok := cmsgStamp(other); ok {
		t.Error("a message of another type taken for a stamp")
	}
}

// queued is how many received bytes c has not read yet.
func queued(t *testing.T, c *stampConn) int {
	var n int
	var err error
	c.raw.Control(func(fd uintptr) { n, err = unix.IoctlGetInt(int(fd), unix.SIOCINQ) })
	if err != nil {
		t.Error(err)
	}
	return n
}

// BenchmarkConnRead compares a stamped read (recvmsg + control message)
// with a plain one, for one vLLM-sized chunk per read:
//
//	go test ./benchmark -run '^$' -bench ConnRead -benchmem
func BenchmarkConnRead(b *testing.B) {
	line := streamBytes(1)[:200]
	for _, kind := range []string{"stamped", "plain"} {
		b.Run(kind, func(b *testing.B) {
			sc, srv := stampedPair(b)
			var c net.Conn = sc
			if kind == "plain" {
				c = sc.TCPConn
			}
			buf := make([]byte, 4096)
			b.ReportAllocs()
			for b.Loop() {
				srv.Write(line)
				for got := 0; got < len(line); {
					n, err := c.Read(buf)
					if err != nil {
						b.Fatal(err)
					}
					got += n
				}
			}
		})
	}
}

// A stream read late is measured from when its chunks arrived: the reader
// starts 30 ms after the first token chunk came, yet TTFT and ITL are the
// server's. The second chunk is sent once the first was read: chunks that
// wait together in the socket come out of one read and share the later
// one's stamp (the kernel gives one per read); a live reader reads each
// chunk alone.
func TestReadStreamUsesKernelArrival(t *testing.T) {
	c, srv := stampedPair(t)
	awaitStamps(t, c, srv)
	res := Result{Sent: time.Now()}
	var wroteA, wroteB time.Time
	sentA, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		time.Sleep(40 * time.Millisecond)
		wroteA = time.Now()
		fmt.Fprintf(srv, "data: %s\n\n", delta("content", "a"))
		close(sentA)
		for queued(t, c) > 0 {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(40 * time.Millisecond)
		wroteB = time.Now()
		fmt.Fprintf(srv, "data: %s\n\ndata: [DONE]\n\n", delta("content", "b"))
		srv.Close()
	}()
	<-sentA
	time.Sleep(30 * time.Millisecond)
	client := NewClient("http://unused", "m", "K", func(string) string { return "" })
	client.readStream(context.Background(), c, c, &res, time.Minute)
	<-finished
	if !res.OK() || res.ArrivalClock != "kernel" {
		t.Fatalf("err %q, clock %q", res.Err, res.ArrivalClock)
	}
	near := func(got, want time.Duration) bool {
		return got > want-5*time.Millisecond && got < want+5*time.Millisecond
	}
	if want := wroteA.Sub(res.Sent); !near(res.TTFT, want) {
		t.Errorf("TTFT %v, want %v: when the chunk was sent, not read (30 ms later)", res.TTFT, want)
	}
	if want := wroteB.Sub(wroteA); len(res.ITL) != 1 || !near(res.ITL[0], want) {
		t.Errorf("ITL %v, want one gap of %v", res.ITL, want)
	}

	// Timed by the reads, the same stream shows the reader's lateness.
	c2, srv2 := stampedPair(t)
	res2 := Result{Sent: time.Now()}
	fmt.Fprintf(srv2, "data: %s\n\ndata: [DONE]\n\n", delta("content", "a"))
	srv2.Close()
	time.Sleep(50 * time.Millisecond)
	client.readStream(context.Background(), c2, nil, &res2, time.Minute)
	if res2.ArrivalClock != "read" || res2.TTFT < 50*time.Millisecond {
		t.Errorf("without the conn: clock %q TTFT %v, want read and >= 50ms", res2.ArrivalClock, res2.TTFT)
	}
}

// Over TLS the stamps come from the TCP connection under it.
func TestChatOverTLSIsKernelStamped(t *testing.T) {
	c, srv := stampedPair(t)
	awaitStamps(t, c, srv) // keeps stamping on for the sockets below
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for _, d := range []string{delta("content", "a"), delta("content", "b"), "[DONE]"} {
			time.Sleep(10 * time.Millisecond)
			fmt.Fprintf(w, "data: %s\n\n", d)
			w.(http.Flusher).Flush()
		}
	}))
	defer ts.Close()
	client := NewClient(ts.URL, "m", "K", func(string) string { return "" })
	client.HTTP.Transport.(*http.Transport).TLSClientConfig = ts.Client().Transport.(*http.Transport).TLSClientConfig
	r := client.Chat(context.Background(), Request{Messages: []Message{{Role: "user", Content: "x"}}})
	if !r.OK() || r.Content != "ab" || r.ArrivalClock != "kernel" {
		t.Fatalf("err %q, content %q, clock %q; want ab timed by the kernel", r.Err, r.Content, r.ArrivalClock)
	}
}
