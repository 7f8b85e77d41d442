package oomkillreceiver

import (
	"path/filepath"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/metadatatest"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/journaltest"
)

// The series gauge is the number of live series, read from the table.
func TestSeriesGaugeCountsLiveSeries(t *testing.T) {
	dir := t.TempDir()
	at := time.Now().Add(-time.Hour)
	other := "/kubepods/besteffort/pod0f6a2c3e-8b4d-4e5f-9a0b-123456789abc/" + testCtr[:63] + "0"
	entries := append(report(10, at, bootA), report(11, at.Add(time.Second), bootA)...)
	entries = append(entries, journaltest.Entries(journaltest.OOMReport("python3", 12, 0, other), at.Add(2*time.Second), bootA, hostName)...)
	journaltest.Write(t, filepath.Join(dir, "system.journal"), entries)
	cfg := testConfig(dir)
	cfg.Outcome.CgroupRoot = ""
	r := start(t, cfg, componenttest.NewNopHost(), nil, nil)
	eventually(t, "3 kills", func() bool { return lastTotal(r.metrics) == 3 })
	metadatatest.AssertEqualOomkillReceiverSeries(t, r.tel, []metricdata.DataPoint[int64]{{Value: 2}}, metricdatatest.IgnoreTimestamp())
}
