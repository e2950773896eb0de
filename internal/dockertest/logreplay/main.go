// Command logreplay prints a log file a line at a time, as a server would,
// then waits: the image tests build around it (FROM scratch) replays real
// vLLM logs through the Docker engine, so the log-following path of vgrid
// is tested, not only its classifier.
//
//	logreplay FILE [DELAY_MS [exit CODE]]
//
// Lines that look like errors go to stderr, the rest to stdout. Without
// "exit CODE" it waits for SIGTERM after the last line.
package main

import (
	"bufio"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: logreplay FILE [DELAY_MS [exit CODE]]")
		os.Exit(2)
	}
	delay := 2 * time.Millisecond
	if len(os.Args) > 2 {
		ms, err := strconv.Atoi(os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, "logreplay: DELAY_MS:", err)
			os.Exit(2)
		}
		delay = time.Duration(ms) * time.Millisecond
	}
	f, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "logreplay:", err)
		os.Exit(2)
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		out := os.Stdout
		if l := sc.Text(); strings.Contains(l, "ERROR") || strings.Contains(l, "Error") || strings.Contains(l, "Traceback") {
			out = os.Stderr
		}
		fmt.Fprintln(out, sc.Text())
		time.Sleep(delay)
	}
	if len(os.Args) > 4 && os.Args[3] == "exit" {
		code, _ := strconv.Atoi(os.Args[4])
		os.Exit(code)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}
