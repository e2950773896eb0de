package compose

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/moby/client"
)

// Endpoint is where a Docker engine is reached, chosen the way the docker
// CLI chooses it, and why.
type Endpoint struct {
	// Host is a DOCKER_HOST-style address; "" leaves the choice to the
	// environment (DOCKER_HOST with DOCKER_TLS_VERIFY and DOCKER_CERT_PATH,
	// else the platform's default: the unix socket, or Docker Desktop's
	// named pipe on Windows).
	Host string
	// Context is the docker context Host came from; "" when none did.
	Context string
	// TLSDir holds the context's ca.pem, cert.pem and key.pem; "" when the
	// context stores no TLS material.
	TLSDir string
	// SkipTLSVerify is the context's "skip TLS verification" setting.
	SkipTLSVerify bool
	// Source says where the choice was made, for messages.
	Source string
}

// defaultContext is the docker CLI's name for "no context": the
// environment and the platform's default socket.
const defaultContext = "default"

// ResolveEndpoint chooses the Docker engine like the docker CLI does. An
// address (with "://") is used as is (a tcp:// one with TLS when
// DOCKER_TLS_VERIFY or DOCKER_CERT_PATH is set); any other non-empty host
// names a docker context. With host "": DOCKER_HOST wins, then DOCKER_CONTEXT, then
// the currentContext of the docker config ($DOCKER_CONFIG/config.json,
// else ~/.docker/config.json), then the platform's default. Contexts are
// read from the config folder's contexts/meta/<sha256 of the name>/meta.json
// and their TLS material from contexts/tls/<same>/docker/.
func ResolveEndpoint(host string, getenv func(string) string) (Endpoint, error) {
	switch {
	case strings.HasPrefix(host, "tcp://") && (getenv("DOCKER_TLS_VERIFY") != "" || getenv("DOCKER_CERT_PATH") != ""):
		// As the docker CLI: TLS with ca.pem, cert.pem and key.pem of
		// DOCKER_CERT_PATH (default ~/.docker).
		dir := getenv("DOCKER_CERT_PATH")
		if dir == "" {
			dir = dockerConfigDir(getenv)
		}
		return Endpoint{Host: host, TLSDir: dir, Source: "the address given, TLS files from " + dir}, nil
	case strings.Contains(host, "://"):
		return Endpoint{Host: host, Source: "the address given"}, nil
	case host != "":
		return readContext(host, "the context given", getenv)
	case strings.HasPrefix(getenv("DOCKER_HOST"), "ssh://"):
		return Endpoint{Host: getenv("DOCKER_HOST"), Source: "DOCKER_HOST"}, nil // the client library has no ssh: vgrid dials it
	case getenv("DOCKER_HOST") != "":
		return Endpoint{Source: "DOCKER_HOST"}, nil
	case getenv("DOCKER_CONTEXT") != "":
		return readContext(getenv("DOCKER_CONTEXT"), "DOCKER_CONTEXT", getenv)
	}
	dir := dockerConfigDir(getenv)
	name, err := currentContext(dir)
	if err != nil {
		return Endpoint{}, err
	}
	if name == "" {
		return Endpoint{Source: "the platform's default"}, nil
	}
	return readContext(name, "currentContext in "+filepath.Join(dir, "config.json"), getenv)
}

// dockerConfigDir is $DOCKER_CONFIG, else .docker in the home folder
// (%USERPROFILE% on Windows).
func dockerConfigDir(getenv func(string) string) string {
	if d := getenv("DOCKER_CONFIG"); d != "" {
		return d
	}
	home := getenv("HOME")
	if home == "" {
		home = getenv("USERPROFILE")
	}
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	return filepath.Join(home, ".docker")
}

// currentContext reads config.json's currentContext; a missing file is no
// context.
func currentContext(dir string) (string, error) {
	path := filepath.Join(dir, "config.json")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("docker config: %w", err)
	}
	var cfg struct {
		CurrentContext string `json:"currentContext"`
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return "", nil // the docker CLI treats an empty config as none
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return "", fmt.Errorf("docker config %s is not JSON (%v); fix or remove it, or set DOCKER_HOST", path, err)
	}
	return cfg.CurrentContext, nil
}

// readContext reads one context's docker endpoint.
func readContext(name, source string, getenv func(string) string) (Endpoint, error) {
	if name == defaultContext {
		return Endpoint{Source: "docker context default (" + source + ")"}, nil
	}
	dir := dockerConfigDir(getenv)
	sum := sha256.Sum256([]byte(name))
	id := hex.EncodeToString(sum[:])
	meta := filepath.Join(dir, "contexts", "meta", id, "meta.json")
	b, err := os.ReadFile(meta)
	if errors.Is(err, os.ErrNotExist) {
		return Endpoint{}, fmt.Errorf("docker context %q (from %s) does not exist: no %s; `docker context ls` lists the contexts, `docker context use default` goes back to the local engine", name, source, meta)
	}
	if err != nil {
		return Endpoint{}, fmt.Errorf("docker context %q: %w", name, err)
	}
	var m struct {
		Name      string
		Endpoints map[string]struct {
			Host          string
			SkipTLSVerify bool
		}
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return Endpoint{}, fmt.Errorf("docker context %q: %s is damaged (%v; %d bytes); recreate the context (docker context rm, then create) or remove that folder", name, meta, err, len(b))
	}
	ep, ok := m.Endpoints["docker"]
	if !ok || ep.Host == "" {
		return Endpoint{}, fmt.Errorf("docker context %q (%s) has no docker endpoint host; `docker context inspect %s` shows it", name, meta, name)
	}
	e := Endpoint{Host: ep.Host, Context: name, SkipTLSVerify: ep.SkipTLSVerify, Source: "docker context " + name + " (" + source + ")"}
	tls := filepath.Join(dir, "contexts", "tls", id, "docker")
	if info, err := os.Stat(tls); err == nil && info.IsDir() {
		e.TLSDir = tls
	}
	return e, nil
}

// options are the Docker client's options for this endpoint.
func (e Endpoint) options() ([]client.Opt, error) {
	if e.Host == "" {
		return []client.Opt{client.FromEnv}, nil
	}
	if u, err := sshHost(e.Host); err != errNoSSH {
		if err != nil {
			return nil, err
		}
		dial, err := sshDialer(u)
		if err != nil {
			return nil, err
		}
		// The address is a placeholder: every connection is an ssh session.
		return []client.Opt{client.WithHost("http://" + u.Hostname()), client.WithDialContext(dial), client.WithAPIVersionFromEnv()}, nil
	}
	var opts []client.Opt
	if e.SkipTLSVerify {
		cfg := &tls.Config{InsecureSkipVerify: true} // the context asks for it (docker context create --docker skip-tls-verify=true)
		if cert, key := e.tlsFile("cert.pem"), e.tlsFile("key.pem"); cert != "" && key != "" {
			if pair, err := tls.LoadX509KeyPair(cert, key); err == nil {
				cfg.Certificates = []tls.Certificate{pair}
			}
		}
		opts = append(opts, client.WithHTTPClient(&http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}))
	}
	opts = append(opts, client.WithHost(e.Host))
	if e.TLSDir != "" && !e.SkipTLSVerify {
		opts = append(opts, client.WithTLSClientConfig(e.tlsFile("ca.pem"), e.tlsFile("cert.pem"), e.tlsFile("key.pem")))
	}
	return append(opts, client.WithAPIVersionFromEnv()), nil
}

// tlsFile is a context's TLS file, or "" when it has none.
func (e Endpoint) tlsFile(name string) string {
	p := filepath.Join(e.TLSDir, name)
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}
