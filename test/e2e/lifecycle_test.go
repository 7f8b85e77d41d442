//go:build linux

package e2e

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/journaltest"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/testutil"
)

// TestSeriesExpireAndReturnInPrometheus: the built collector on real
// journal files, scraped by a real Prometheus. A gone container's series
// stops being exported after series.retention, disappears from Prometheus,
// and comes back continuing its count when the same identity is killed
// again, so the counter never looks reset.
func TestSeriesExpireAndReturnInPrometheus(t *testing.T) {
	requireRealKernel(t)
	testutil.CollectorBinary(t)

	const boot = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
	pod, ctr := "7c1d0e2f-1111-4a2b-9c3d-00000000aaaa", "ab"+fmt.Sprintf("%062x", time.Now().UnixNano())
	memcg := "/kubepods/burstable/pod" + pod + "/" + ctr // no such cgroup here: the container is gone
	kill := func(pid int) []journaltest.Entry {
		return journaltest.Entries(journaltest.OOMReport("php-fpm", pid, 33, memcg), time.Now(), boot, "node-a")
	}
	dir, state := t.TempDir(), t.TempDir()

	exporter, self := testutil.FreePort(t), testutil.FreePort(t)
	cfg := testutil.WriteConfig(t, fmt.Sprintf(`
extensions:
  file_storage:
    directory: %s
receivers:
  oomkill:
    journal:
      directory: %s
    start_at: beginning
    storage: file_storage
    node_name: node-a
    # fixtures, not this machine's log: its real OOM kills must not count here
    witness:
      enabled: false
    metrics_refresh_interval: 1s
    series:
      retention: 6s
exporters:
  prometheus:
    endpoint: 127.0.0.1:%d
    metric_expiration: 2s
    resource_constant_labels:
      included: ["*"]
service:
  extensions: [file_storage]
  telemetry:
    metrics:
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: %d
  pipelines:
    metrics:
      receivers: [oomkill]
      exporters: [prometheus]
`, state, dir, exporter, self))
	testutil.StartCollector(t, cfg, testutil.ProcessOptions{})
	prom := startPrometheus(t, exporter, self)
	series := fmt.Sprintf(`container_oom_kill_count_total{container_id=%q}`, ctr)
	present := fmt.Sprintf(`count(%s)`, series)

	// Kills only once Prometheus scrapes the exporter: the series lives for
	// the retention (6 s) and the exporter's expiration (2 s) after them.
	require.Eventually(t, func() bool { return prom.Query(t, "count(up == 1)") == 2 }, 60*time.Second, 250*time.Millisecond, "both targets scraped")
	journaltest.Write(t, filepath.Join(dir, "a.journal"), append(kill(101), kill(102)...))
	require.Eventually(t, func() bool { return prom.Query(t, series) == 2 }, 60*time.Second, 250*time.Millisecond, "two kills scraped")
	require.Eventually(t, func() bool { return prom.Query(t, present) == 0 }, 60*time.Second, 250*time.Millisecond,
		"the gone container's series expired and left Prometheus: %s", prom.Raw(t, series))
	require.Eventually(t, func() bool { return prom.Query(t, "otelcol_oomkill_receiver_series_expired") >= 1 }, 30*time.Second, 250*time.Millisecond)
	require.Equal(t, 1.0, prom.Query(t, "count(otelcol_oomkill_receiver_series == 0)"), "no live series left")

	// The same identity killed again: back, continuing from 2.
	journaltest.Write(t, filepath.Join(dir, "b.journal"), kill(103))
	require.Eventually(t, func() bool { return prom.Query(t, series) == 3 }, 60*time.Second, 250*time.Millisecond,
		"the series came back continuing its count: %s", prom.Raw(t, series))
	// Never a lower value in between: the highest and the latest agree.
	require.Equal(t, 3.0, prom.Query(t, fmt.Sprintf(`max_over_time(%s[5m])`, series)))
}
