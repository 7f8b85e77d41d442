package k8smetaprocessor

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/processor/processortest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/otelcol-oomkill/otelcol-oomkill/processor/k8smetaprocessor/internal/metadata"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/statustest"
)

// startK8smeta starts the processor itself (no pipeline) over client, with
// its logs observed; it stops when the test ends.
func startK8smeta(t *testing.T, client kubernetes.Interface, host *statustest.Host, mutate func(*Config)) (*k8smeta, *observer.ObservedLogs) {
	t.Helper()
	cfg := createDefaultConfig()
	if mutate != nil {
		mutate(cfg)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	tel := componenttest.NewTelemetry()
	set := processortest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = tel.NewTelemetrySettings()
	set.Logger = zap.New(core)
	p, err := newK8smeta(cfg, set, func(*Config) (kubernetes.Interface, error) { return client, nil })
	require.NoError(t, err)
	require.NoError(t, p.Start(context.Background(), host))
	t.Cleanup(func() {
		require.NoError(t, p.Shutdown(context.Background()))
		require.NoError(t, tel.Shutdown(context.Background()))
	})
	return p, logs
}

func lastStatus(h *statustest.Host) componentstatus.Status {
	s := h.Statuses()
	if len(s) == 0 {
		return componentstatus.StatusNone
	}
	return s[len(s)-1]
}

// An API server that refuses the first pod lists: the status is a
// recoverable error, each cause logged once, and OK once the watch synced.
func TestStatusOKAgainOnceSynced(t *testing.T) {
	client := fake.NewClientset(testPod())
	var refuse atomic.Bool
	refuse.Store(true)
	client.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		if refuse.Load() {
			return true, nil, apierrors.NewServiceUnavailable("etcd is down")
		}
		return false, nil, nil
	})
	host := statustest.NewHost()
	_, logs := startK8smeta(t, client, host, func(c *Config) { c.SyncTimeout = 300 * time.Millisecond })
	require.Eventually(t, func() bool { return len(host.Statuses()) == 2 }, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, []componentstatus.Status{componentstatus.StatusRecoverableError, componentstatus.StatusRecoverableError}, host.Statuses(),
		"the failed list and the missed sync")

	refuse.Store(false)
	require.Eventually(t, func() bool { return lastStatus(host) == componentstatus.StatusOK }, 30*time.Second, 20*time.Millisecond)
	assert.Len(t, host.Statuses(), 3, "OK once, when both causes cleared")
	assert.Equal(t, 2, logs.FilterLevelExact(zapcore.ErrorLevel).Len(), "one line per cause, however many lists failed")
	assert.Equal(t, 2, logs.FilterMessage("Recovered").Len())
	assert.Equal(t, 1, logs.FilterMessage("Pod watch synced; enriching records").Len())
}

// With nothing deleted the processor does not wake up to sweep; a deleted
// pod is forgotten after its grace period in one sweep.
func TestSweepSleepsWhileNothingIsGone(t *testing.T) {
	client := fake.NewClientset(testPod())
	p, _ := startK8smeta(t, client, statustest.NewHost(), func(c *Config) { c.DeletedPodGrace = 200 * time.Millisecond })
	time.Sleep(500 * time.Millisecond)
	assert.Zero(t, p.sweeps.Load(), "nothing gone: no sweep")
	pods, _ := p.store.Sizes()
	require.Equal(t, 1, pods)

	require.NoError(t, client.CoreV1().Pods("shop").Delete(context.Background(), testPod().Name, metav1.DeleteOptions{}))
	require.Eventually(t, func() bool {
		pods, ctrs := p.store.Sizes()
		return pods+ctrs == 0
	}, 10*time.Second, 10*time.Millisecond, "the deleted pod and its container IDs are forgotten after the grace period")
	time.Sleep(500 * time.Millisecond)
	assert.EqualValues(t, 1, p.sweeps.Load(), "one sweep; a ticker at the old grace/4 would have made about ten")
}
