package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vgrid/vgrid/internal/dockertest"
)

// TestDaemonImage builds the vgrid image (FROM scratch) and runs vgrid serve
// in it against the host's engine through the mounted socket.
func TestDaemonImage(t *testing.T) {
	dockertest.Engine(t)
	if out, err := exec.Command("../../scripts/build-vgrid-image.sh", "vgrid:test").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	data := t.TempDir()
	port := freePortT(t)
	id := dockertest.Docker(t, "run", "-d", "-v", "/var/run/docker.sock:/var/run/docker.sock", "-v", data+":/data",
		"-p", fmt.Sprintf("127.0.0.1:%d:8321", port), "vgrid:test")
	t.Cleanup(func() { exec.Command("docker", "rm", "-f", id).Run() })
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	var health map[string]string
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(url + "/healthz")
		if err == nil {
			json.NewDecoder(resp.Body).Decode(&health)
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no healthz: %v\n%s", err, dockertest.Docker(t, "logs", id))
		}
		time.Sleep(200 * time.Millisecond)
	}
	tok, err := os.ReadFile(filepath.Join(data, "token"))
	if err != nil {
		t.Fatal(err)
	}
	// The daemon in the container reaches the host's engine through the
	// socket (healthz says which engine to the token's holder only).
	hreq, _ := http.NewRequest("GET", url+"/healthz", nil)
	hreq.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	if hresp, err := http.DefaultClient.Do(hreq); err == nil {
		json.NewDecoder(hresp.Body).Decode(&health)
		hresp.Body.Close()
	}
	if !strings.Contains(health["docker"], "engine ") || !strings.Contains(health["docker"], "API 1.") {
		t.Errorf("healthz %v: the daemon cannot see the host's engine", health)
	}
	req, _ := http.NewRequest("GET", url+"/v1/runs", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("authenticated call: %v %v", resp, err)
	}
	resp.Body.Close()
	if _, err := os.Stat(filepath.Join(data, "vgrid.db")); err != nil {
		t.Errorf("the store is not on the volume: %v", err)
	}
}

func freePortT(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
