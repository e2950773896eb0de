package main

import (
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vgrid/vgrid/internal/dockertest"
	"github.com/vgrid/vgrid/store"
)

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// Issue 17 item 2, process driver: a grid whose flags the server's own
// --help does not list is refused before anything boots, by vgrid plan and
// by vgrid run, with the flag meant: exit 2 as for any wrong grid, and no
// run is left in the store.
func TestRunRefusesFlagsTheServerRefuses(t *testing.T) {
	port := freePortT(t)
	grid := quickGrid(t, port, "0.02")
	src, _ := os.ReadFile(grid)
	bad := strings.Replace(string(src), "    enable-prefix-caching: [true, false]\n", "    enable-prefix-caching: [true, false]\n    max-num-sqs: [8]\n", 1)
	os.WriteFile(grid, []byte(bad), 0o644)
	env := binEnv(t)
	db := filepath.Join(t.TempDir(), "vgrid.db")

	code, out, errs := runBin(t, env, "plan", grid, "--store", db)
	want := "--max-num-sqs is not a flag of the simulator ("
	if code != 2 || !strings.Contains(errs, want) || !strings.Contains(errs, "did you mean --max-num-seqs?") || !strings.Contains(errs, "(all 4 candidates)") || !strings.Contains(out, "REFUSED: note 1") {
		t.Fatalf("plan: exit %d\n%s\n%s", code, out, errs)
	}
	start := time.Now()
	code, out, errs = runBin(t, env, "run", grid, "--store", db)
	if code != 2 || !strings.Contains(errs, want) || !strings.Contains(errs, "nothing was booted") {
		t.Fatalf("run: exit %d\n%s\n%s", code, out, errs)
	}
	st, err := store.OpenReadOnly(db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if r, err := st.GetRun("latest"); err == nil {
		t.Errorf("the refused grid left run %s (%s) in the store", r.ID, r.State)
	}
	if httpAnswers(fmt.Sprintf("http://127.0.0.1:%d", port)) {
		t.Error("a server was started")
	}
	t.Logf("refused in %s", time.Since(start).Round(time.Millisecond))
}

// Issue 17 item 2, images: vgrid profile set asks the vLLM in the
// service's image for its flags (the simulator image here, in both help
// shapes: --help=all, and --help for a release that refuses --help=all),
// refuses what it would refuse with the image ID, leaves the profile
// untouched, and caches the answer in the store by image ID.
func TestProfileSetChecksTheImage(t *testing.T) {
	img := dockertest.BuildSimImage(t)
	dockertest.Exclusive(t)
	old := "vllm-sim-085:test"
	ctx := t.TempDir()
	os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte("FROM "+img+"\nENV VLLM_SIM_VERSION=0.8.5\n"), 0o644)
	if out, err := exec.Command("docker", "build", "-q", "-t", old, ctx).CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", old, err, out)
	}
	env := append(binEnv(t), "VGRID_STORE="+filepath.Join(t.TempDir(), "vgrid.db"))
	dir := t.TempDir()
	args := filepath.Join(dir, "args.yml")
	os.WriteFile(args, []byte("services:\n  vllm:\n    image: "+img+"\n    command: >\n      --model Qwen/Qwen3-8B\n      --max-num-seqs 32\n"), 0o644)
	script := filepath.Join(dir, "script.yml")
	os.WriteFile(script, []byte("services:\n  vllm:\n    image: "+old+"\n    entrypoint: [/bin/sh, -c]\n    command:\n      - |\n        exec python3 -m vllm.entrypoints.openai.api_server \\\n          --model Qwen/Qwen3-8B \\\n          --max-num-seqs 32\n"), 0o644)
	id := strings.TrimSpace(dockertest.Docker(t, "image", "inspect", "-f", "{{.Id}}", img))

	for _, tt := range []struct {
		file, set, want string
	}{
		{args, "max-num-seq=48", "--max-num-seq is an abbreviation of --max-num-seqs: the vLLM in image " + id[:19] + " (" + img + ") accepts it"},
		{args, "max-num-sqs=48", "--max-num-sqs is not a flag of the vLLM in image " + id[:19] + " (" + img + "); did you mean --max-num-seqs?"},
		{script, "max-num-sqs=48", "--max-num-sqs is not a flag of the vLLM in image sha256:"},
	} {
		before := fileSum(t, tt.file)
		code, out, errs := runBin(t, env, "profile", "set", "-f", tt.file, tt.set, "--write")
		if code != 1 || !strings.Contains(errs, tt.want) || !strings.Contains(errs, "nothing written") {
			t.Errorf("set %s on %s: exit %d\n%s\n%s", tt.set, filepath.Base(tt.file), code, out, errs)
		}
		if fileSum(t, tt.file) != before {
			t.Errorf("%s changed", tt.file)
		}
		if m, _ := filepath.Glob(tt.file + ".backup_*"); len(m) > 0 {
			t.Errorf("backups written: %v", m)
		}
	}
	// Accepted flags pass, in both help shapes.
	for _, f := range []string{args, script} {
		if code, out, errs := runBin(t, env, "profile", "set", "-f", f, "max-num-seqs=16", "--check=always"); code != 0 || !strings.Contains(out, "dry run") {
			t.Errorf("%s: exit %d\n%s\n%s", filepath.Base(f), code, out, errs)
		}
	}
	// Both answers are in the store, with the command that produced them.
	st, err := store.OpenReadOnly(strings.TrimPrefix(env[len(env)-1], "VGRID_STORE="))
	if err != nil {
		t.Fatal(err)
	}
	e, ok, _ := st.Help("image " + id + "\x00")
	oldID := strings.TrimSpace(dockertest.Docker(t, "image", "inspect", "-f", "{{.Id}}", old))
	e2, ok2, _ := st.Help("image " + oldID + "\x00python3 -m vllm.entrypoints.openai.api_server")
	st.Close()
	if !ok || strings.Join(e.Args, " ") != "--help=all" || !ok2 || strings.Join(e2.Args, " ") != "python3 -m vllm.entrypoints.openai.api_server --help" {
		t.Fatalf("cache: %v %v / %v %v", ok, e.Args, ok2, e2.Args)
	}
	// The cache is what is read the next time: a cached help without
	// --max-num-seqs makes vgrid refuse it, though the image accepts it.
	w, err := store.Open(strings.TrimPrefix(env[len(env)-1], "VGRID_STORE="))
	if err != nil {
		t.Fatal(err)
	}
	w.PutHelp("image "+id+"\x00", store.HelpEntry{Text: "usage: vllm serve [-h] [--model MODEL] [--max-num-batched-tokens MAX_NUM_BATCHED_TOKENS]\n", At: time.Now()})
	w.Close()
	if code, _, errs := runBin(t, env, "profile", "set", "-f", args, "max-num-seqs=16"); code != 1 || !strings.Contains(errs, "--max-num-seqs is not a flag") {
		t.Errorf("with the cached help: exit %d %s", code, errs)
	}
	// No engine: a note, and the rendering goes on; --check=always refuses.
	noEngine := append(env, "DOCKER_HOST=unix:///nonexistent.sock")
	if code, _, errs := runBin(t, noEngine, "profile", "set", "-f", args, "max-num-seqs=16"); code != 0 || !strings.Contains(errs, "note: flags not checked against the image's vLLM") {
		t.Errorf("no engine, auto: exit %d %s", code, errs)
	}
	if code, _, errs := runBin(t, noEngine, "profile", "set", "-f", args, "max-num-seqs=16", "--check=always"); code != 1 || !strings.Contains(errs, "flags not checked") {
		t.Errorf("no engine, always: exit %d %s", code, errs)
	}
}
