package k8seventsexporter

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/metadatatest"
)

// benchExporter is the exporter without its queue (push called directly).
func benchExporter(b *testing.B, client kubernetes.Interface, mutate func(*Config)) *eventsExporter {
	cfg := createDefaultConfig()
	cfg.FlushInterval = time.Hour
	cfg.Aggregation.MaxKillIDs = 1 << 20
	if mutate != nil {
		mutate(cfg)
	}
	tel := componenttest.NewTelemetry()
	b.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	e, err := newExporter(cfg, metadatatest.NewSettings(tel), func(*Config) (kubernetes.Interface, error) { return client, nil })
	require.NoError(b, err)
	require.NoError(b, e.start(context.Background(), componenttest.NewNopHost()))
	b.Cleanup(func() { _ = e.shutdown(context.Background()) })
	return e
}

// A storm on one container, 10 kills per batch: the in-memory cost of a
// kill that is aggregated (the writes are rate-limited away).
func BenchmarkStormOneContainer(b *testing.B) {
	k := phpKill(0)
	e := benchExporter(b, fake.NewClientset(testPodObject(k)), nil)
	batches := make([]testKill, 0, 10)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += 10 {
		batches = batches[:0]
		for j := i; j < i+10; j++ {
			kk := k
			kk.id, kk.pid = fmt.Sprintf("%032x", j+1), int64(j)
			batches = append(batches, kk)
		}
		b.StopTimer()
		ld := logsOf(batches...)
		b.StartTimer()
		if err := e.push(context.Background(), ld); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "kills/s")
}
