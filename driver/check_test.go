package driver

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/vgrid/vgrid/failure"
)

// A server that stops answering while vgrid reads its configuration (its
// connection reset, or refused) is unreachable, which the orchestrator
// checks against its engine going away; one that answers without vLLM's
// configuration is a configuration it cannot verify.
func TestVerifyEndpointTellsALostServerFromAnUnverifiableOne(t *testing.T) {
	reset := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		conn.(*net.TCPConn).SetLinger(0) // close with a reset, as a killed server's kernel does
		conn.Close()
	}))
	defer reset.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("# HELP up a metric\n# TYPE up gauge\nup 1\n"))
	}))
	defer plain.Close()
	for _, c := range []struct {
		name, endpoint string
		want           failure.Reason
		detail         string
	}{
		{"reset", reset.URL, failure.ReasonUnreachable, "stopped answering"},
		{"refused", closedURL, failure.ReasonUnreachable, "stopped answering"},
		{"not vLLM", plain.URL, failure.ReasonConfigDrift, "no vllm:cache_config_info"},
	} {
		_, err := VerifyEndpoint(context.Background(), c.endpoint, nil)
		var f *failure.Failure
		if !errors.As(err, &f) || f.Reason != c.want || !strings.Contains(f.Detail, c.detail) {
			t.Errorf("%s: %v, want %s with %q", c.name, err, c.want, c.detail)
		}
	}
}
