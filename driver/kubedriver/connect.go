package kubedriver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	httpstream "k8s.io/streaming/pkg/httpstream"

	"github.com/rs/zerolog"

	"github.com/vgrid/vgrid/benchmark"
)

// How vgrid reaches a trial's server (target.connect).
const (
	ConnectAuto        = "auto"         // the pod's IP when it answers a TCP dial, else a port-forward
	ConnectPodIP       = "pod-ip"       // vgrid runs where pod IPs route (in the cluster, or a flat network)
	ConnectPortForward = "port-forward" // through the API server and the pod's kubelet, as kubectl port-forward
)

// endpoint is the address vgrid measures the pod's server at: its IP and
// port when they answer (or connect is pod-ip), else a port-forward on
// 127.0.0.1 that lives until stop is called. stop is never nil.
func (k *Kube) endpoint(ctx context.Context, pod *corev1.Pod, port int) (addr string, stop func(), err error) {
	direct := net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(port))
	switch k.Connect {
	case ConnectPodIP:
		return "http://" + direct, func() {}, nil
	case "", ConnectAuto:
		// A refusal comes from the pod (routed, its server not listening
		// yet); a timeout or no route says the pod network is not ours.
		d := net.Dialer{Timeout: 2 * time.Second}
		c, err := d.DialContext(ctx, "tcp", direct)
		if err == nil {
			c.Close()
		}
		if err == nil || errors.Is(err, syscall.ECONNREFUSED) {
			return "http://" + direct, func() {}, nil
		}
		k.log.Info().Str("pod", pod.Name).Str("address", direct).Err(err).Msg("the pod network does not route here: measuring through a port-forward")
	}
	local, stop, err := k.forward(ctx, pod.Name, port)
	if err != nil {
		return "", func() {}, err
	}
	return "http://" + local, stop, nil
}

// forward opens a port-forward from 127.0.0.1 (a free port) to the pod's
// port, through the API server and the pod's kubelet as kubectl
// port-forward goes (WebSocket, else SPDY). Unlike kubectl's, it outlives
// a connection the pod refuses (its server not listening yet): each local
// connection is one stream pair, and a lost tunnel is dialled again.
func (k *Kube) forward(ctx context.Context, pod string, port int) (string, func(), error) {
	req := k.cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(k.namespace).Name(pod).SubResource("portforward")
	rt, upgrader, err := spdy.RoundTripperFor(k.acc.Config)
	if err != nil {
		return "", nil, err
	}
	dialer := spdy.NewDialerForStreaming(upgrader, &http.Client{Transport: rt}, http.MethodPost, req.URL())
	if ws, err := portforward.NewSPDYOverWebsocketDialerForStreaming(req.URL(), k.acc.Config); err == nil {
		dialer = portforward.NewFallbackDialerForStreaming(ws, dialer, func(err error) bool {
			return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
		})
	}
	t := &tunnel{dialer: dialer, port: port, pod: pod, log: k.log}
	// The first dial says whether the API server lets vgrid forward at all.
	if _, _, err := t.connection(); err != nil {
		return "", nil, fmt.Errorf("port-forward to pod %s port %d: %w", pod, port, err)
	}
	var lc net.ListenConfig
	if t.ln, err = lc.Listen(ctx, "tcp", "127.0.0.1:0"); err != nil {
		t.close()
		return "", nil, err
	}
	go t.serve()
	return t.ln.Addr().String(), sync.OnceFunc(t.close), nil
}

// tunnel carries local connections to a pod's port over one multiplexed
// connection to its kubelet (the port-forward protocol: per connection an
// error stream and a data stream with the same request id).
type tunnel struct {
	dialer httpstream.Dialer
	port   int
	pod    string
	log    zerolog.Logger
	ln     net.Listener

	mu     sync.Mutex
	conn   httpstream.Connection
	id     int
	closed bool
	wg     sync.WaitGroup
}

func (t *tunnel) serve() {
	for {
		c, err := t.ln.Accept()
		if err != nil {
			return
		}
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			c.Close()
			return
		}
		t.wg.Add(1)
		t.mu.Unlock()
		go func() {
			defer t.wg.Done()
			t.carry(c)
		}()
	}
}

// connection is the tunnel's connection, dialled again when lost, and a
// new request id.
func (t *tunnel) connection() (httpstream.Connection, int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, 0, net.ErrClosed
	}
	if t.conn != nil {
		select {
		case <-t.conn.CloseChan():
			t.conn = nil
		default:
		}
	}
	if t.conn == nil {
		c, _, err := t.dialer.Dial(portforward.PortForwardProtocolV1Name)
		if err != nil {
			return nil, 0, err
		}
		t.conn = c
	}
	t.id++
	return t.conn, t.id, nil
}

// carry copies one local connection to the pod's port and back. A
// connection the pod refused is reset here too, so that the client sees
// what it would have seen on the pod's address.
func (t *tunnel) carry(local net.Conn) {
	refused := false
	defer func() {
		if tc, ok := local.(*net.TCPConn); ok && refused {
			tc.SetLinger(0)
		}
		local.Close()
	}()
	conn, id, err := t.connection()
	if err != nil {
		t.log.Debug().Err(err).Str("pod", t.pod).Msg("port-forward: no tunnel")
		return
	}
	h := http.Header{}
	h.Set(corev1.StreamType, corev1.StreamTypeError)
	h.Set(corev1.PortHeader, strconv.Itoa(t.port))
	h.Set(corev1.PortForwardRequestIDHeader, strconv.Itoa(id))
	errStream, err := conn.CreateStream(h)
	if err != nil {
		t.log.Debug().Err(err).Msg("port-forward: error stream")
		conn.Close() // dialled again by the next connection
		return
	}
	errStream.Close() // nothing is written to it
	defer conn.RemoveStreams(errStream)
	remoteErr := make(chan []byte, 1)
	go func() {
		msg, _ := io.ReadAll(errStream)
		remoteErr <- msg
	}()
	h.Set(corev1.StreamType, corev1.StreamTypeData)
	data, err := conn.CreateStream(h)
	if err != nil {
		t.log.Debug().Err(err).Msg("port-forward: data stream")
		conn.Close()
		return
	}
	defer conn.RemoveStreams(data)
	remoteDone, localFailed := make(chan struct{}), make(chan struct{})
	go func() {
		io.Copy(local, data)
		close(remoteDone)
	}()
	go func() {
		defer data.Close()
		if _, err := io.Copy(data, local); err != nil {
			close(localFailed)
		}
	}()
	select {
	case <-remoteDone:
	case <-localFailed:
	}
	data.Reset()
	select {
	case msg := <-remoteErr:
		if len(msg) > 0 {
			// The kubelet's side of a connection that carried an error
			// stops taking streams (kubectl ends there); the next local
			// connection dials a new one.
			refused = strings.Contains(string(msg), "connection refused")
			t.log.Debug().Str("pod", t.pod).Str("error", string(msg)).Msg("port-forward: the pod's side")
			conn.Close()
		}
	case <-time.After(5 * time.Second):
		conn.Close()
	}
}

func (t *tunnel) close() {
	t.mu.Lock()
	t.closed = true
	conn := t.conn
	t.mu.Unlock()
	if t.ln != nil {
		t.ln.Close()
	}
	if conn != nil {
		conn.Close()
	}
	t.wg.Wait()
}

// exec runs cmd in the pod's container (as kubectl exec, WebSocket else
// SPDY) and streams its standard output; Close stops it and says how it
// ended (its standard error with a failure).
func (k *Kube) exec(ctx context.Context, pod string, cmd []string) (io.ReadCloser, error) {
	req := k.cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(k.namespace).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: k.container, Command: cmd, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	sp, err := remotecommand.NewSPDYExecutor(k.acc.Config, http.MethodPost, req.URL())
	if err != nil {
		return nil, err
	}
	ex := sp
	if ws, err := remotecommand.NewWebSocketExecutor(k.acc.Config, http.MethodGet, req.URL().String()); err == nil {
		if fb, err := remotecommand.NewFallbackExecutor(ws, sp, func(err error) bool {
			return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
		}); err == nil {
			ex = fb
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	stderr := &headBuffer{n: 4096}
	done := make(chan error, 1)
	go func() {
		err := ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: pw, Stderr: stderr})
		if err != nil {
			if msg := stderr.String(); msg != "" {
				err = fmt.Errorf("%w: %s", err, msg)
			}
		}
		pw.CloseWithError(err)
		done <- err
	}()
	return &execStream{r: pr, cancel: cancel, done: done}, nil
}

// headBuffer keeps the first n bytes written to it, for the streams'
// goroutines and the reader alike.
type headBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
	n  int
}

func (h *headBuffer) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.b.Write(p[:min(len(p), max(h.n-h.b.Len(), 0))])
	return len(p), nil
}

func (h *headBuffer) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.TrimSpace(h.b.String())
}

type execStream struct {
	r      *io.PipeReader
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

func (s *execStream) Read(p []byte) (int, error) { return s.r.Read(p) }

// Close stops the command; an ending vgrid asked for is not an error.
func (s *execStream) Close() error {
	s.once.Do(func() {
		s.cancel()
		s.r.Close()
		err := <-s.done
		if err != nil && !errors.Is(err, context.Canceled) && !strings.Contains(err.Error(), "context canceled") {
			s.err = err
		}
	})
	return s.err
}

// execOutput runs cmd in the pod's container and returns its output, for
// commands that end (up to 1 MiB, within 30 seconds).
func (k *Kube) execOutput(ctx context.Context, pod string, cmd []string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rc, err := k.exec(ctx, pod, cmd)
	if err != nil {
		return "", err
	}
	out, rerr := io.ReadAll(io.LimitReader(rc, 1<<20))
	cerr := rc.Close()
	if rerr != nil {
		return string(out), rerr
	}
	return string(out), cerr
}

// gpuSource samples the trial's GPUs: nvidia-smi in its container, as the
// NVIDIA container toolkit mounts it there.
func (k *Kube) gpuSource(pod string) benchmark.GPUSource {
	return func(ctx context.Context, interval time.Duration) (io.ReadCloser, error) {
		return k.exec(ctx, pod, benchmark.NvidiaSMIArgs(interval))
	}
}

// LabelGPUProduct is the node label NVIDIA's GPU feature discovery sets
// to the GPUs' product name (NVIDIA-H100-80GB-HBM3).
const LabelGPUProduct = "nvidia.com/gpu.product"

// hardware names the GPUs a trial ran on, as "2x NVIDIA-H100-80GB-HBM3":
// the node's GPU product label, else nvidia-smi in the trial's container
// (its names written as the label writes them, spaces as dashes, so that
// nodes labelled and unlabelled compare); "" when neither says.
func (k *Kube) hardware(ctx context.Context, node *corev1.Node, pod string, gpus int) (string, error) {
	if node != nil {
		if p := node.Labels[LabelGPUProduct]; p != "" {
			return fmt.Sprintf("%dx %s", max(gpus, 1), p), nil
		}
	}
	out, err := k.execOutput(ctx, pod, []string{"nvidia-smi", "--query-gpu=index,name", "--format=csv,noheader"})
	if err != nil {
		return "", fmt.Errorf("nvidia-smi in pod %s: %w", pod, err)
	}
	names, err := benchmark.ParseGPUNames(strings.NewReader(out))
	if err != nil {
		return "", fmt.Errorf("nvidia-smi in pod %s: %w", pod, err)
	}
	var devs []int
	for i := range names {
		names[i] = ProductLabel(names[i])
		devs = append(devs, i)
	}
	if len(devs) == 0 {
		return "", fmt.Errorf("nvidia-smi in pod %s lists no GPU", pod)
	}
	// The container sees only its own GPUs.
	slices.Sort(devs)
	return benchmark.Hardware(names, devs), nil
}

// ProductLabel writes an nvidia-smi GPU name as GPU feature discovery
// labels it: "NVIDIA H100 80GB HBM3" -> "NVIDIA-H100-80GB-HBM3".
func ProductLabel(name string) string {
	return strings.Join(strings.Fields(name), "-")
}
