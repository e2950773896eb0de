package compose

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/vgrid/vgrid/internal/dockertest"
)

// writeContext writes a context the way the docker CLI stores it.
func writeContext(t *testing.T, dir, name, meta string, tls bool) {
	t.Helper()
	sum := sha256.Sum256([]byte(name))
	id := hex.EncodeToString(sum[:])
	m := filepath.Join(dir, "contexts", "meta", id)
	if err := os.MkdirAll(m, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(m, "meta.json"), []byte(meta), 0o644); err != nil {
		t.Fatal(err)
	}
	if tls {
		d := filepath.Join(dir, "contexts", "tls", id, "docker")
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "ca.pem"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestResolveEndpoint(t *testing.T) {
	dir := t.TempDir()
	// Docker Desktop's context on Windows (WSL 2 backend), as `docker
	// context inspect desktop-linux` shows it.
	writeContext(t, dir, "desktop-linux", `{"Name":"desktop-linux","Metadata":{"Description":"Docker Desktop"},"Endpoints":{"docker":{"Host":"npipe:////./pipe/dockerDesktopLinuxEngine","SkipTLSVerify":false}}}`+"\n", false)
	writeContext(t, dir, "gpu-box", `{"Name":"gpu-box","Metadata":{},"Endpoints":{"docker":{"Host":"tcp://10.0.0.7:2376","SkipTLSVerify":false}}}`, true)
	writeContext(t, dir, "lab", `{"Name":"lab","Metadata":{},"Endpoints":{"docker":{"Host":"tcp://lab:2376","SkipTLSVerify":true}}}`, false)
	// An update of Docker Desktop left some users a zero-length meta.json
	// (docker/for-win#13180: "unexpected end of JSON input").
	writeContext(t, dir, "broken", ``, false)
	writeContext(t, dir, "k8s-only", `{"Name":"k8s-only","Endpoints":{"kubernetes":{"Host":"https://x"}}}`, false)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"auths":{},"currentContext":"desktop-linux"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	if err := os.WriteFile(filepath.Join(empty, "config.json"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".docker"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".docker", "config.json"), []byte(`{"currentContext":"nowhere"}`), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		host    string
		env     map[string]string
		want    Endpoint
		wantErr string
	}{
		{name: "an address is used as is", host: "tcp://h:2375", env: map[string]string{"DOCKER_CONFIG": dir, "DOCKER_HOST": "unix:///x"},
			want: Endpoint{Host: "tcp://h:2375", Source: "the address given"}},
		{name: "a named pipe address", host: "npipe:////./pipe/docker_engine", env: map[string]string{"DOCKER_CONFIG": dir},
			want: Endpoint{Host: "npipe:////./pipe/docker_engine", Source: "the address given"}},
		{name: "DOCKER_HOST beats DOCKER_CONTEXT and the current context", env: map[string]string{"DOCKER_CONFIG": dir, "DOCKER_HOST": "unix:///x", "DOCKER_CONTEXT": "gpu-box"},
			want: Endpoint{Source: "DOCKER_HOST"}},
		{name: "DOCKER_CONTEXT beats the current context", env: map[string]string{"DOCKER_CONFIG": dir, "DOCKER_CONTEXT": "gpu-box"},
			want: Endpoint{Host: "tcp://10.0.0.7:2376", Context: "gpu-box", TLSDir: filepath.Join(dir, "contexts", "tls", hash("gpu-box"), "docker"), Source: "docker context gpu-box (DOCKER_CONTEXT)"}},
		{name: "Docker Desktop's current context", env: map[string]string{"DOCKER_CONFIG": dir},
			want: Endpoint{Host: "npipe:////./pipe/dockerDesktopLinuxEngine", Context: "desktop-linux", Source: "docker context desktop-linux (currentContext in " + filepath.Join(dir, "config.json") + ")"}},
		{name: "a context named on the target", host: "lab", env: map[string]string{"DOCKER_CONFIG": dir},
			want: Endpoint{Host: "tcp://lab:2376", Context: "lab", SkipTLSVerify: true, Source: "docker context lab (the context given)"}},
		{name: "default is the environment", host: "default", env: map[string]string{"DOCKER_CONFIG": dir},
			want: Endpoint{Source: "docker context default (the context given)"}},
		{name: "no config", env: map[string]string{"DOCKER_CONFIG": t.TempDir()},
			want: Endpoint{Source: "the platform's default"}},
		{name: "an empty config.json", env: map[string]string{"DOCKER_CONFIG": empty},
			want: Endpoint{Source: "the platform's default"}},
		{name: "HOME/.docker when DOCKER_CONFIG is unset", env: map[string]string{"HOME": home},
			wantErr: `docker context "nowhere" (from currentContext in ` + filepath.Join(home, ".docker", "config.json") + `) does not exist`},
		{name: "USERPROFILE on Windows", env: map[string]string{"USERPROFILE": home},
			wantErr: `docker context "nowhere"`},
		{name: "an unknown context", host: "nope", env: map[string]string{"DOCKER_CONFIG": dir},
			wantErr: "docker context ls"},
		{name: "a damaged meta.json", env: map[string]string{"DOCKER_CONFIG": dir, "DOCKER_CONTEXT": "broken"},
			wantErr: `docker context "broken": ` + filepath.Join(dir, "contexts", "meta", hash("broken"), "meta.json") + ` is damaged (unexpected end of JSON input; 0 bytes)`},
		{name: "a context without a docker endpoint", host: "k8s-only", env: map[string]string{"DOCKER_CONFIG": dir},
			wantErr: "has no docker endpoint host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ResolveEndpoint(tt.host, func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %+v, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func hash(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:])
}

// TestDockerContexts makes contexts with the real docker CLI (so the
// storage layout is the CLI's, not ours) and connects through them.
func TestDockerContexts(t *testing.T) {
	dockertest.Engine(t)
	local := dockertest.Docker(t, "context", "inspect", "default", "--format", "{{.Endpoints.docker.Host}}")
	cfg := t.TempDir()
	t.Setenv("DOCKER_CONFIG", cfg)
	t.Setenv("DOCKER_HOST", "")
	t.Setenv("DOCKER_CONTEXT", "")
	dockertest.Docker(t, "context", "create", "vgrid-local", "--docker", "host="+local)
	dead := filepath.Join(t.TempDir(), "no-engine.sock")
	dockertest.Docker(t, "context", "create", "vgrid-dead", "--docker", "host=unix://"+dead)
	dockertest.Docker(t, "context", "use", "vgrid-local")

	ctx := context.Background()
	ep, err := ResolveEndpoint("", os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	if ep.Context != "vgrid-local" || ep.Host != local {
		t.Fatalf("current context: got %+v, want vgrid-local at %s", ep, local)
	}
	d, err := Connect(ctx, "", zerolog.Nop())
	if err != nil {
		t.Fatalf("through the current context: %v", err)
	}
	d.Close()

	_, err = Connect(ctx, "vgrid-dead", zerolog.Nop())
	if err == nil || !strings.Contains(err.Error(), "docker context vgrid-dead (the context given)") || !strings.Contains(err.Error(), dead) {
		t.Fatalf("a context whose engine is down: got %v, want an error naming the context and its socket", err)
	}
	t.Setenv("DOCKER_CONTEXT", "vgrid-dead")
	if _, err = Connect(ctx, "", zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "(DOCKER_CONTEXT)") {
		t.Fatalf("DOCKER_CONTEXT: got %v, want it named", err)
	}
	// The CLI agrees on which engine DOCKER_CONTEXT picks.
	out, _ := exec.Command("docker", "context", "show").CombinedOutput()
	if strings.TrimSpace(string(out)) != "vgrid-dead" {
		t.Errorf("docker context show with DOCKER_CONTEXT=vgrid-dead: %s", out)
	}
	t.Setenv("DOCKER_HOST", local)
	if d, err := Connect(ctx, "", zerolog.Nop()); err != nil {
		t.Fatalf("DOCKER_HOST beats DOCKER_CONTEXT: %v", err)
	} else {
		d.Close()
	}
}
