//go:build !linux

package benchmark

import (
	"context"
	"net"
	"time"
)

// dialStamped dials TCP. Kernel receive stamps are read on Linux only;
// elsewhere a chunk's arrival is the time its read returned.
func dialStamped(ctx context.Context, d *net.Dialer, network, addr string) (net.Conn, error) {
	return d.DialContext(ctx, network, addr)
}

// arrival reports no kernel stamp outside Linux.
func arrival(net.Conn) (time.Time, bool) { return time.Time{}, false }
