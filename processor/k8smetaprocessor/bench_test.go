package k8smetaprocessor

import (
	"context"
	"testing"

	"go.opentelemetry.io/collector/pdata/plog"
)

// BenchmarkEnrich measures the processor's lookup and attribute writes for
// one record naming a known container (the hot path): records/s and
// allocations per record. Run with `make bench`.
func BenchmarkEnrich(b *testing.B) {
	h := newHarness(b, nil, testPod())
	p := h.proc
	payloads := make([]plog.Logs, 0, 1024)
	fresh := func() plog.Logs {
		ld := plog.NewLogs()
		rl := ld.ResourceLogs().AppendEmpty()
		rl.Resource().Attributes().PutStr("container.id", idRunning)
		rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty().Body().SetStr("Killed process 1 (php-fpm)")
		return ld
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		if len(payloads) == 0 {
			for i := 0; i < cap(payloads); i++ {
				payloads = append(payloads, fresh())
			}
		}
		ld := payloads[len(payloads)-1]
		payloads = payloads[:len(payloads)-1]
		b.StartTimer()
		if err := p.ConsumeLogs(context.Background(), ld); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
