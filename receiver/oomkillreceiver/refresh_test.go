package oomkillreceiver

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"

	"github.com/otelcol-oomkill/otelcol-oomkill/internal/resend"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/journaltest"
)

// The refresh re-sends a series the pipeline has seen, marked so (internal/resend) that
// k8smeta does not hold it back waiting for a container ID it did not learn when the kill was
// first delivered; that first delivery is not marked, and may wait.
func TestRefreshIsMarkedResent(t *testing.T) {
	dir := t.TempDir()
	journaltest.Write(t, filepath.Join(dir, "a.journal"), report(4242, t0, bootA))
	cfg := testConfig(dir)
	cfg.MetricsRefreshInterval = 20 * time.Millisecond
	r := start(t, cfg, componenttest.NewNopHost(), nil, nil)
	eventually(t, "the kill's delivery and two refreshes", func() bool { return len(r.metrics.Contexts()) >= 3 })
	r.stop()

	ctxs := r.metrics.Contexts()
	require.Equal(t, int64(1), lastTotal(r.metrics))
	assert.False(t, resend.FromContext(ctxs[0]), "the kill's first delivery")
	for i, ctx := range ctxs[1:] {
		assert.True(t, resend.FromContext(ctx), "refresh %d", i+1)
	}
}
