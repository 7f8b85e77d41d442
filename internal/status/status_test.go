package status

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/statustest"
)

func TestOKOnlyOnceEveryCauseCleared(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	host := statustest.NewHost()
	r := New(zap.New(core))
	r.SetHost(host)

	assert.True(t, r.Fail("checkpoint", errors.New("disk full"), "Saving checkpoint failed"))
	assert.False(t, r.Fail("checkpoint", errors.New("disk full"), "Saving checkpoint failed"))
	assert.True(t, r.Fail("delivery", errors.New("refused"), "Next consumer refused data"))
	assert.Equal(t, "checkpoint,delivery", r.Failing())

	assert.True(t, r.Clear("checkpoint"))
	assert.False(t, r.Clear("checkpoint"), "a cause not failing is not cleared twice")
	require.Equal(t, []componentstatus.Status{componentstatus.StatusRecoverableError, componentstatus.StatusRecoverableError}, host.Statuses(),
		"no OK while delivery still fails")
	r.Record("delivery", nil, "unused")
	assert.Equal(t, []componentstatus.Status{
		componentstatus.StatusRecoverableError, componentstatus.StatusRecoverableError, componentstatus.StatusOK,
	}, host.Statuses())
	assert.Empty(t, r.Failing())

	// One error line per spell, the repeats at debug level, one recovery line per spell.
	assert.Equal(t, 2, logs.FilterLevelExact(zapcore.ErrorLevel).Len())
	assert.Equal(t, 1, logs.FilterLevelExact(zapcore.DebugLevel).Len())
	recovered := logs.FilterMessage("Recovered").All()
	require.Len(t, recovered, 2)
	assert.Equal(t, int64(2), recovered[0].ContextMap()["failures"])
}

func TestWithoutHostOnlyLogs(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	r := New(zap.New(core))
	r.Record("read", errors.New("EIO"), "Reading failed")
	r.Record("read", nil, "unused")
	assert.Equal(t, 2, logs.Len())
}
