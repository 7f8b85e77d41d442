//go:build linux && !cgo

package oomkillreceiver

import (
	"os"
	"testing"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// Built without cgo (make cross runs this with CGO_ENABLED=0), the receiver
// reads /dev/kmsg: this machine's, from its oldest record.
func TestKmsgWithoutCgo(t *testing.T) {
	if os.Geteuid() != 0 {
		msg := "reading this machine's /dev/kmsg needs root (CAP_SYSLOG)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	cfg := testConfig("")
	cfg.Source = SourceKmsg
	r := start(t, cfg, componenttest.NewNopHost(), nil, nil)
	defer r.stop()
	eventually(t, "records read from /dev/kmsg", func() bool {
		m, err := r.tel.GetMetric("otelcol_oomkill_receiver_entries_read")
		if err != nil {
			return false
		}
		sum, ok := m.Data.(metricdata.Sum[int64])
		return ok && len(sum.DataPoints) == 1 && sum.DataPoints[0].Value > 0
	})
}
