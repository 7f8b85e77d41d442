package k8seventsexporter

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/otel/attribute"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/metadatatest"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/statustest"
)

// A hung API server fills the sending queue; the batches after that are
// dropped and counted, not refused, so the receiver never pauses.
// hungExporter is the exporter through its factory, started on host, in
// front of an API server whose first event create hangs until release is
// closed; started receives once that create began.
func hungExporter(t *testing.T, host component.Host) (exp exporter.Logs, tel *componenttest.Telemetry, started, release chan struct{}) {
	t.Helper()
	c := fake.NewClientset(testPodObject(phpKill(0)))
	release, started = make(chan struct{}), make(chan struct{}, 1)
	c.PrependReactor("create", "events", func(k8stesting.Action) (bool, runtime.Object, error) {
		started <- struct{}{}
		<-release
		return false, nil, nil
	})
	f := newFactory(func(*Config) (kubernetes.Interface, error) { return c, nil })
	cfg := f.CreateDefaultConfig().(*Config)
	q := cfg.QueueConfig.Get()
	q.Sizer, q.QueueSize = exporterhelper.RequestSizerTypeRequests, 2 // the batch being written counts too
	require.False(t, q.Batch.HasValue(), "no batching in the queue by default")
	tel = componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	exp, err := f.CreateLogs(context.Background(), metadatatest.NewSettings(tel), cfg)
	require.NoError(t, err)
	require.NoError(t, exp.Start(context.Background(), host))
	return exp, tel, started, release
}

// A hung API server fills the sending queue; the batches after that are
// dropped and counted, not refused, so the receiver never pauses.
func TestFullQueueDropsInsteadOfBlocking(t *testing.T) {
	exp, tel, started, release := hungExporter(t, componenttest.NewNopHost())

	ctx := context.Background()
	require.NoError(t, exp.ConsumeLogs(ctx, logsOf(phpKill(0)))) // taken by the consumer, which hangs
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("the queue's consumer did not write")
	}
	require.NoError(t, exp.ConsumeLogs(ctx, logsOf(phpKill(1)))) // waits in the queue
	err := exp.ConsumeLogs(ctx, logsOf(phpKill(2), phpKill(3)))
	require.Error(t, err)
	assert.True(t, consumererror.IsPermanent(err), "the receiver must not retry (and pause) for events")
	assert.EqualValues(t, 2, counter(t, tel, "k8sevents_kills_dropped", attribute.String("reason", "queue_full")))
	close(release)
	require.NoError(t, exp.Shutdown(context.Background()))
}

// A full queue is a failing spell: reported and logged once however many
// batches it refuses, OK again once a batch is taken.
func TestFullQueueStatus(t *testing.T) {
	host := statustest.NewHost()
	exp, _, started, release := hungExporter(t, host)
	ctx := context.Background()
	require.NoError(t, exp.ConsumeLogs(ctx, logsOf(phpKill(0))))
	<-started
	require.NoError(t, exp.ConsumeLogs(ctx, logsOf(phpKill(1))))
	for i := range 3 {
		require.Error(t, exp.ConsumeLogs(ctx, logsOf(phpKill(2+i))))
	}
	assert.Equal(t, []componentstatus.Status{componentstatus.StatusRecoverableError}, host.Statuses())
	close(release)
	require.Eventually(t, func() bool { return exp.ConsumeLogs(ctx, logsOf(phpKill(9))) == nil }, 30*time.Second, 10*time.Millisecond)
	statuses := host.Statuses()
	assert.Equal(t, componentstatus.StatusOK, statuses[len(statuses)-1])
	require.NoError(t, exp.Shutdown(context.Background()))
}
