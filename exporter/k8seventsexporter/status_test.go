package k8seventsexporter

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/otelcol-oomkill/otelcol-oomkill/internal/status"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/statustest"
)

// observeStatus makes e report to a recording host and log to an observer.
func observeStatus(e *eventsExporter) (*statustest.Host, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.DebugLevel)
	host := statustest.NewHost()
	e.status = status.New(zap.New(core))
	e.status.SetHost(host)
	return host, logs
}

// While the API server fails, the status is a recoverable error reported
// and logged once; the first batch written again makes it OK.
func TestStatusOKAgainOnceWritesSucceed(t *testing.T) {
	c := fake.NewClientset(testPodObject(phpKill(0)))
	down := true
	c.PrependReactor("create", "events", func(k8stesting.Action) (bool, runtime.Object, error) {
		if down {
			return true, nil, apierrors.NewServiceUnavailable("etcd is down")
		}
		return false, nil, nil
	})
	e, _, _ := newTestExporter(t, c, nil)
	host, logs := observeStatus(e)
	ctx := context.Background()
	for range 3 {
		require.Error(t, e.push(ctx, logsOf(phpKill(0))))
	}
	assert.Equal(t, []componentstatus.Status{componentstatus.StatusRecoverableError}, host.Statuses())
	failed := logs.FilterMessageSnippet("Writing Kubernetes Events failed")
	assert.Equal(t, 1, failed.FilterLevelExact(zapcore.ErrorLevel).Len(), "one error line per failing spell")
	assert.Equal(t, 2, failed.FilterLevelExact(zapcore.DebugLevel).Len(), "the retries at debug level")

	down = false
	require.NoError(t, e.push(ctx, logsOf(phpKill(0))))
	assert.Equal(t, []componentstatus.Status{componentstatus.StatusRecoverableError, componentstatus.StatusOK}, host.Statuses())
	assert.Equal(t, 1, logs.FilterMessage("Recovered").Len())
}

// Forbidden is retried for a grace period; the retries do not log a line
// each, and the one error line says what is wrong.
func TestForbiddenRetriesAreLoggedOnce(t *testing.T) {
	c := fake.NewClientset()
	c.PrependReactor("create", "events", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "events.k8s.io", Resource: "events"}, "", errors.New("RBAC"))
	})
	e, _, _ := newTestExporter(t, c, func(cfg *Config) { cfg.VerifyPod = false })
	_, logs := observeStatus(e)
	for range 5 {
		require.Error(t, e.push(context.Background(), logsOf(phpKill(0))))
	}
	assert.Zero(t, logs.FilterLevelExact(zapcore.WarnLevel).Len())
	errs := logs.FilterLevelExact(zapcore.ErrorLevel).All()
	require.Len(t, errs, 1)
	assert.Contains(t, errs[0].ContextMap()["error"], "forbids writing events")
}
