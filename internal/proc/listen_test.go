//go:build linux || windows

package proc

import (
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestOwnsListener(t *testing.T) {
	if os.Getenv("PROC_LISTEN") != "" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			os.Exit(3)
		}
		os.Stdout.WriteString(strconv.Itoa(ln.Addr().(*net.TCPAddr).Port) + "\n")
		time.Sleep(time.Minute)
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	mine := ln.Addr().(*net.TCPAddr).Port
	if _, known := OwnsListener(os.Getpid(), mine); !known && runtime.GOOS == "windows" {
		t.Skip("skipped: the socket table names no owners here (Wine reports them all as pid 0); Windows does")
	}
	if owns, known := OwnsListener(os.Getpid(), mine); !owns || !known {
		t.Errorf("own listener: owns %v known %v", owns, known)
	}
	// A child's listener belongs to the child (and so to its parent's family).
	cmd := exec.Command(os.Args[0], "-test.run=^TestOwnsListener$")
	cmd.Env = append(os.Environ(), "PROC_LISTEN=1")
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	buf := make([]byte, 16)
	n, _ := out.Read(buf)
	port, err := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	if err != nil {
		t.Fatalf("child port: %q", buf[:n])
	}
	if owns, known := OwnsListener(cmd.Process.Pid, port); !owns || !known {
		t.Errorf("child's listener, asked of the child: owns %v known %v", owns, known)
	}
	if owns, known := OwnsListener(os.Getpid(), port); !owns || !known {
		t.Errorf("child's listener, asked of the parent: owns %v known %v", owns, known)
	}
	if owns, known := OwnsListener(cmd.Process.Pid, mine); owns || !known {
		t.Errorf("parent's listener, asked of the child: owns %v known %v, want false true", owns, known)
	}
	free, _ := net.Listen("tcp", "127.0.0.1:0")
	p := free.Addr().(*net.TCPAddr).Port
	free.Close()
	if _, known := OwnsListener(os.Getpid(), p); known {
		t.Error("a port nobody listens on: known")
	}
}
