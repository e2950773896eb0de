package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// curl is the subset of curl(1) that the user's compose health checks and
// watchdog sidecars use, so a FROM-scratch image can run their profiles
// unchanged: -f, -s, -S, -o FILE, -w FORMAT (%{http_code}), -X METHOD,
// -H HEADER, -d DATA, -m/--max-time SECONDS, -L (ignored: no redirects
// are followed). Exit codes follow curl: 0 ok, 2 usage, 6 bad host,
// 7 cannot connect, 22 HTTP >= 400 with -f, 28 timeout.
func curl(args []string, stdout, stderr io.Writer) int {
	var (
		fail, silent, showErr bool
		outFile, writeOut     string
		method, data, url     string
		headers               []string
		maxTime               time.Duration
	)
	for i := 0; i < len(args); i++ {
		a := args[i]
		next := func() (string, bool) {
			if i+1 >= len(args) {
				fmt.Fprintf(stderr, "curl: option %s: requires parameter\n", a)
				return "", false
			}
			i++
			return args[i], true
		}
		var ok = true
		switch a {
		case "-f", "--fail":
			fail = true
		case "-s", "--silent":
			silent = true
		case "-S", "--show-error":
			showErr = true
		case "-L", "--location":
		case "-fs", "-sf":
			fail, silent = true, true
		case "-sS", "-Ss":
			silent, showErr = true, true
		case "-o", "--output":
			outFile, ok = next()
		case "-w", "--write-out":
			writeOut, ok = next()
		case "-X", "--request":
			method, ok = next()
		case "-H", "--header":
			var h string
			h, ok = next()
			headers = append(headers, h)
		case "-d", "--data", "--data-raw", "--data-binary":
			data, ok = next()
		case "-m", "--max-time":
			var v string
			if v, ok = next(); ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					fmt.Fprintf(stderr, "curl: option %s: expected a proper numerical parameter\n", a)
					return 2
				}
				maxTime = time.Duration(f * float64(time.Second))
			}
		default:
			if strings.HasPrefix(a, "-") {
				fmt.Fprintf(stderr, "curl: option %s: is unknown (vllm-sim's curl supports -f -s -S -o -w -X -H -d -m -L)\n", a)
				return 2
			}
			url = a
		}
		if !ok {
			return 2
		}
	}
	if url == "" {
		fmt.Fprintln(stderr, "curl: no URL specified")
		return 2
	}
	if !strings.Contains(url, "://") {
		url = "http://" + url
	}
	if method == "" {
		method = "GET"
		if data != "" {
			method = "POST"
		}
	}
	ctx := context.Background()
	if maxTime > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, maxTime)
		defer cancel()
	}
	var body io.Reader
	if data != "" {
		body = strings.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		fmt.Fprintf(stderr, "curl: (3) URL rejected: %v\n", err)
		return 3
	}
	if data != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	complain := func(code int, msg string) int {
		if !silent || showErr {
			fmt.Fprintf(stderr, "curl: (%d) %s\n", code, msg)
		}
		if writeOut != "" {
			fmt.Fprint(stdout, strings.ReplaceAll(writeOut, "%{http_code}", "000"))
		}
		return code
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		var dns *net.DNSError
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			return complain(28, fmt.Sprintf("Operation timed out after %d milliseconds", maxTime.Milliseconds()))
		case errors.As(err, &dns):
			return complain(6, "Could not resolve host: "+dns.Name)
		default:
			return complain(7, "Failed to connect: "+err.Error())
		}
	}
	defer resp.Body.Close()
	if fail && resp.StatusCode >= 400 {
		io.Copy(io.Discard, resp.Body)
		return complain(22, fmt.Sprintf("The requested URL returned error: %d", resp.StatusCode))
	}
	var out io.Writer = stdout
	if outFile != "" && outFile != "-" {
		f, err := os.Create(outFile)
		if err != nil {
			return complain(23, "Failure writing output to destination: "+err.Error())
		}
		defer f.Close()
		out = f
	}
	if _, err := io.Copy(out, resp.Body); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return complain(28, "Operation timed out")
		}
		return complain(18, "transfer closed with outstanding read data remaining")
	}
	if writeOut != "" {
		fmt.Fprint(stdout, strings.ReplaceAll(writeOut, "%{http_code}", strconv.Itoa(resp.StatusCode)))
	}
	return 0
}
