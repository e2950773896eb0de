package compose

import (
	"context"
	"errors"
	"github.com/vgrid/vgrid/failure"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vgrid/vgrid/internal/dockertest"
)

// BenchmarkBootFailureDetection measures how long after vLLM logs a fatal
// startup line vgrid reports the typed reason (target: under 1 s). The sim
// runs the user's grid baseline with a desktop on GPU 0, which fails the
// free-memory check. Reported: line_to_reason_ms (Docker's timestamp of the
// line to vgrid's conclusion) and start_to_reason_ms.
//
//	go test ./compose -run '^$' -bench BootFailureDetection -benchtime 5x
func BenchmarkBootFailureDetection(b *testing.B) {
	dockertest.BuildSimImage(b)
	dockertest.Exclusive(b)
	d, err := Connect(context.Background(), "", zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	var lineTo, startTo time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		cleanupProject("myia_vllm")
		p := stage(b, "medium.grid-baseline.yml", simOverride(medium, freePort(b), "VLLM_SIM_GPU_USED_MIB=1500,0"))
		s := load(b, p, medium, ConvertOptions{GPUsOff: true})
		b.StartTimer()
		start := time.Now()
		res, err := d.Recreate(context.Background(), s)
		if err != nil {
			b.Fatal(err)
		}
		_, err = d.WaitReady(context.Background(), s, res, ReadyOptions{})
		var f *failure.Failure
		if !errors.As(err, &f) || f.Reason != failure.ReasonFreeMemory {
			b.Fatalf("got %v", err)
		}
		lineTo += f.DetectedAt.Sub(f.LineAt)
		startTo += f.DetectedAt.Sub(start)
	}
	b.StopTimer()
	cleanupProject("myia_vllm")
	b.ReportMetric(float64(lineTo.Microseconds())/1000/float64(b.N), "line_to_reason_ms")
	b.ReportMetric(float64(startTo.Microseconds())/1000/float64(b.N), "start_to_reason_ms")
}
