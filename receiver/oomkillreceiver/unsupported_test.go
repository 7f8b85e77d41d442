//go:build !linux || !cgo

package oomkillreceiver

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/journal"
	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/metadata"
)

// Without the cgo journal reader (not Linux, or CGO_ENABLED=0) the receiver
// builds but refuses to start, saying why. `make cross` runs this on Linux
// with CGO_ENABLED=0.
func TestStartWithoutJournalReader(t *testing.T) {
	ctx := context.Background()
	f := NewFactory()
	r, err := f.CreateLogs(ctx, receivertest.NewNopSettings(metadata.Type), f.CreateDefaultConfig(), consumertest.NewNop())
	require.NoError(t, err)
	err = r.Start(ctx, componenttest.NewNopHost())
	require.ErrorIs(t, err, journal.ErrUnsupported)
	require.ErrorContains(t, err, "oomkill receiver cannot read the journal: the oomkill receiver reads the systemd journal through libsystemd and runs only on Linux")
	require.NoError(t, r.Shutdown(ctx))
}
