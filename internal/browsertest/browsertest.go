// Package browsertest gives tests a real browser: Debian's chromium,
// headless, driven with chromedp. Outside CI a machine without chromium
// skips and says why; in CI it fails (.ci/run installs it).
package browsertest

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Start starts chromium for the test; it ends with the test.
func Start(t testing.TB, timeout time.Duration) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium is not installed in CI")
		}
		t.Skip("skipped: no chromium (apt-get install chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.WindowSize(1280, 1000),
		chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, timeout)
	t.Cleanup(func() { cancelT(); cancelC(); cancelA() })
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// Shot saves a full-page PNG screenshot as dir/name.png and checks that
// it is not blank: a page that rendered has many colours.
func Shot(t testing.TB, ctx context.Context, dir, name string) {
	t.Helper()
	var buf []byte
	if err := chromedp.Run(ctx, chromedp.FullScreenshot(&buf, 100)); err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), buf, 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(buf))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if n := colours(img); n < 8 {
		t.Errorf("screenshot %s is blank (%d colours)", name, n)
	}
}

func colours(img image.Image) int {
	seen := map[uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			r, g, bl, _ := img.At(x, y).RGBA()
			seen[(r>>8)<<16|(g>>8)<<8|bl>>8] = true
			if len(seen) > 64 {
				return len(seen)
			}
		}
	}
	return len(seen)
}

// Accessible checks that every visible control of the page has a label
// (or an aria-label), every button a name, and every table header cells.
func Accessible(t testing.TB, ctx context.Context, page string) {
	t.Helper()
	var problems []string
	js := `(() => {
	  const out = [];
	  document.querySelectorAll("input:not([type=hidden]),select,textarea").forEach(e => {
	    if (!(e.labels && e.labels.length) && !e.getAttribute("aria-label")) out.push("control without a label: " + e.outerHTML.slice(0, 80));
	  });
	  document.querySelectorAll("button").forEach(b => { if (!b.textContent.trim() && !b.getAttribute("aria-label")) out.push("button without a name"); });
	  document.querySelectorAll("table").forEach(tb => { if (!tb.querySelector("th")) out.push("table without headers: " + (tb.id || tb.className)); });
	  return out;
	})()`
	if err := chromedp.Run(ctx, chromedp.Evaluate(js, &problems)); err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", page, p)
	}
}
