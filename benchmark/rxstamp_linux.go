package benchmark

import (
	"context"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// stampConn is a TCP connection that asks the kernel when the bytes of each
// read arrived (SO_TIMESTAMPNS: the time the packet was received, taken in
// the kernel before any process ran). A chunk's arrival is then the moment it
// reached this host, not the moment the Go scheduler got round to the
// goroutine reading it: when hundreds of streams receive a token in the same
// instant, or when the benchmark shares its CPUs with the server, the two
// differ by milliseconds.
type stampConn struct {
	*net.TCPConn
	raw syscall.RawConn
	rx  atomic.Int64 // arrival of the latest read, ns since stampBase; 0: unknown

	// recvmsg's arguments and results live here, and recv is built once,
	// so that a read allocates nothing. Reads are never concurrent.
	oob   []byte
	iov   unix.Iovec
	msg   unix.Msghdr
	n     int
	errno syscall.Errno
	recv  func(fd uintptr) bool
}

// stampBase anchors arrival times on Go's monotonic clock.
var stampBase = time.Now()

// maxStampLag bounds how far before the read a kernel stamp may be: beyond
// it the wall clock was probably stepped between the two readings, and the
// read time is used instead.
const maxStampLag = time.Minute

// dialStamped dials TCP and enables receive timestamps; a socket that
// refuses them is used as it is. Reads that come without a stamp fall back
// to their own time: Linux turns stamping on through a work queue when the
// first socket asks for it, so the first packets after that may carry none.
func dialStamped(ctx context.Context, d *net.Dialer, network, addr string) (net.Conn, error) {
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tcp, ok := conn.(*net.TCPConn)
	if !ok {
		return conn, nil
	}
	raw, err := tcp.SyscallConn()
	if err != nil {
		return conn, nil
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	}); err != nil || serr != nil {
		return conn, nil
	}
	c := &stampConn{TCPConn: tcp, raw: raw, oob: make([]byte, unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{}))))}
	c.recv = c.recvmsg
	return c, nil
}

// recvmsg is one non-blocking recvmsg(2) into c.iov; false asks the
// runtime's poller to wait until the socket is readable.
func (c *stampConn) recvmsg(fd uintptr) bool {
	for {
		c.msg.SetControllen(len(c.oob))
		n, _, e := unix.Syscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&c.msg)), 0)
		if e == unix.EINTR {
			continue
		}
		c.n, c.errno = int(n), e
		return e != unix.EAGAIN
	}
}

// Read reads like net.TCPConn.Read (deadlines and Close included, through
// the runtime's poller) and records the kernel's arrival stamp.
func (c *stampConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.iov.Base = &p[0]
	c.iov.SetLen(len(p))
	c.msg.Iov, c.msg.Control = &c.iov, &c.oob[0]
	c.msg.SetIovlen(1)
	rerr := c.raw.Read(c.recv)
	c.iov.Base, c.msg.Iov = nil, nil // do not keep p reachable
	n, oobn := c.n, int(c.msg.Controllen)
	if rerr != nil { // closed, or past the read deadline
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: rerr}
	}
	if c.errno != 0 {
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("recvmsg", c.errno)}
	}
	if n == 0 {
		return 0, io.EOF
	}
	now := time.Now()
	var at int64
	if ns, ok := cmsgStamp(c.oob[:oobn]); ok {
		if lag := time.Duration(now.UnixNano() - ns); lag >= 0 && lag <= maxStampLag {
			at = int64(now.Sub(stampBase) - lag)
		}
	}
	c.rx.Store(at)
	return n, nil
}

// cmsgStamp finds the SCM_TIMESTAMPNS message in oob.
func cmsgStamp(oob []byte) (int64, bool) {
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(oob) {
			return 0, false
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && l >= unix.CmsgLen(int(unsafe.Sizeof(unix.Timespec{}))) {
			ts := (*unix.Timespec)(unsafe.Pointer(&oob[unix.CmsgLen(0)]))
			return ts.Nano(), true
		}
		space := unix.CmsgSpace(l - unix.CmsgLen(0))
		if space > len(oob) {
			return 0, false
		}
		oob = oob[space:]
	}
	return 0, false
}

// arrival returns when the kernel received the bytes of conn's latest read,
// if conn records it.
func arrival(conn net.Conn) (time.Time, bool) {
	for {
		switch c := conn.(type) {
		case *stampConn:
			at := c.rx.Load()
			if at == 0 {
				return time.Time{}, false
			}
			return stampBase.Add(time.Duration(at)), true
		case interface{ NetConn() net.Conn }: // *tls.Conn
			conn = c.NetConn()
		default:
			return time.Time{}, false
		}
	}
}
