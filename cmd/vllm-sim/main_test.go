package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vgrid/vgrid/profiles"
	"github.com/vgrid/vgrid/vllm"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vllm-sim-test")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "vllm-sim")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		panic(fmt.Sprintf("build vllm-sim: %v\n%s", err, out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const fixtures = "../../profiles/testdata/fixtures/"

// fixtureArgs returns the vLLM arguments of a fixture profile as docker
// compose would pass them, interpolated with env.example.
func fixtureArgs(t *testing.T, name string) []string {
	t.Helper()
	p := profiles.Project{Files: []string{fixtures + name}, EnvFiles: []string{fixtures + "env.example"}}
	_, flags, _, err := p.Show(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	return flags.Words()
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

type proc struct {
	cmd  *exec.Cmd
	out  *strings.Builder
	done chan error
	url  string
}

// start runs `vllm-sim serve ARGS --host 127.0.0.1 --port P` (the last
// --host/--port win, as with argparse).
func start(t *testing.T, args []string, env ...string) *proc {
	t.Helper()
	port := freePort(t)
	args = append(append([]string{"serve"}, args...), "--host", "127.0.0.1", "--port", fmt.Sprint(port))
	cmd := exec.Command(binary, args...)
	cmd.Env = append([]string{"VLLM_SIM_TIME_SCALE=0.002"}, env...)
	p := &proc{cmd: cmd, out: &strings.Builder{}, done: make(chan error, 1), url: fmt.Sprintf("http://127.0.0.1:%d", port)}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	go func() { err := cmd.Wait(); pw.Close(); p.done <- err }()
	t.Cleanup(func() { cmd.Process.Kill() })
	deadline := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				return p // exited; the caller looks at p.done
			}
			p.out.WriteString(l + "\n")
			if strings.Contains(l, "Application startup complete") {
				go func() {
					for l := range lines {
						p.out.WriteString(l + "\n")
					}
				}()
				return p
			}
		case <-deadline:
			t.Fatalf("no startup after 20s:\n%s", p.out)
		}
	}
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func TestFixtureProfilesBoot(t *testing.T) {
	for _, name := range []string{"medium.original.yml", "medium.grid-baseline.yml", "medium.chunked_only_safe.yml",
		"medium.yml", "mini-solo.yml", "medium-ornith15-awq.yml"} {
		t.Run(name, func(t *testing.T) {
			args := fixtureArgs(t, name)
			p := start(t, args)
			select {
			case err := <-p.done:
				t.Fatalf("exited (%v):\n%s", err, p.out)
			default:
			}
			// A real streamed completion with the profile's own API key and model name.
			model, key := "", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
			fl := vllm.Flags(vllm.ParseArgs(args))
			if v, ok := fl.Get("served-model-name"); ok {
				model = strings.Fields(v)[0]
			} else {
				model, _ = fl.Get("model")
			}
			body := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"What is 2 + 3?"}],"stream":true,"max_tokens":64}`, model)
			req, _ := http.NewRequest("POST", p.url+"/v1/chat/completions", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			all, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(all), "data: [DONE]") || !strings.Contains(string(all), `"content":"5."`) {
				t.Fatalf("status %d body %s", resp.StatusCode, all)
			}
			p.cmd.Process.Signal(syscall.SIGTERM)
			if err := <-p.done; exitCode(err) != 0 {
				t.Errorf("exit after SIGTERM: %v\n%s", err, p.out)
			}
		})
	}
}

func TestBootFailuresExitWithVLLMMessages(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  []string
		code int
		want string
	}{
		{"desktop on GPU 0 at 0.9999", fixtureArgs(t, "medium.grid-baseline.yml"), []string{"VLLM_SIM_GPU_USED_MIB=1500,0"}, 1,
			"ValueError: Free memory on device cuda:0 (22.52/23.99 GiB) on startup is less than desired GPU memory utilization (0.9999, 23.99 GiB)"},
		{"unknown flag", []string{"--model", "m", "--bogus-flag", "1"}, nil, 2, "vllm serve: error: unrecognized arguments: --bogus-flag"},
		{"no chunked prefill at 131072", append(fixtureArgs(t, "medium.yml"), "--no-enable-chunked-prefill"), nil, 1,
			"To serve at least one request with the models's max seq len (131072)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := start(t, tt.args, tt.env...)
			err := <-p.done
			if exitCode(err) != tt.code || !strings.Contains(p.out.String(), tt.want) {
				t.Fatalf("exit %v, want %d and %q in:\n%s", err, tt.code, tt.want, p.out)
			}
			if tt.code == 1 && !strings.Contains(p.out.String(), "Traceback (most recent call last):") {
				t.Errorf("no traceback before the error:\n%s", p.out)
			}
		})
	}
}
