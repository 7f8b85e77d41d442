// Package collector tests the built otelcol-oomkill binary (make build) as
// a user runs it: real journal files, the Prometheus exporter, SIGKILL.
package collector

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/journaltest"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/testutil"
)

const boot = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"

// report is a 6.x memcg OOM report killing pid in one of three containers.
func report(pid int, at time.Time) []journaltest.Entry {
	pod := fmt.Sprintf("1f6a2c3e-8b4d-4e5f-9a0b-12345678900%d", pid%3)
	ctr := strings.Repeat(strconv.Itoa(pid%3), 64)
	return journaltest.Entries(journaltest.OOMReport("php-fpm", pid, 33, "/kubepods/burstable/pod"+pod+"/"+ctr), at, boot, "node-a")
}

// scrapeKills sums container_oom_kill_count_total on the Prometheus
// exporter; ok is false while the endpoint does not answer.
func scrapeKills(url string) (total float64, series int, ok bool) {
	kills, err := testutil.Scrape(url, "container_oom_kill_count_total")
	return testutil.Sum(kills), len(kills), err == nil
}

// A journal holding N kills, with the collector SIGKILLed and restarted at
// random points while more kills land, gives exactly N.
func TestSIGKILLRestartsCountExactly(t *testing.T) {
	bin := testutil.CollectorBinary(t)
	const kills = 40
	dir, state := t.TempDir(), t.TempDir()
	port := testutil.FreePort(t)
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf(`
extensions:
  file_storage:
    directory: %s
receivers:
  oomkill:
    journal:
      directory: %s
    start_at: beginning
    storage: file_storage
    # fixtures, not this machine's log: its real OOM kills must not count here
    witness:
      enabled: false
exporters:
  prometheus:
    endpoint: 127.0.0.1:%d
    resource_constant_labels:
      included: ["*"]
service:
  extensions: [file_storage]
  telemetry:
    metrics:
      level: none
    logs:
      level: debug
  pipelines:
    metrics:
      receivers: [oomkill]
      exporters: [prometheus]
`, state, dir, port)), 0o600))

	journalFile := filepath.Join(dir, "system.journal")
	journaltest.Write(t, journalFile, report(10000, time.Now()))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; i < kills; i++ {
			journaltest.Write(t, journalFile, report(10000+i, time.Now()))
			time.Sleep(time.Duration(20+rand.IntN(80)) * time.Millisecond)
		}
	}()

	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	for i := 0; i < 5; i++ {
		c := testutil.StartProcess(t, fmt.Sprintf("otelcol-oomkill-%d", i), bin, []string{"--config", cfgPath}, testutil.ProcessOptions{})
		time.Sleep(time.Duration(300+rand.IntN(900)) * time.Millisecond)
		c.SignalAndWait(t, syscall.SIGKILL)
	}
	wg.Wait()

	testutil.StartCollector(t, cfgPath, testutil.ProcessOptions{})
	var got float64
	require.Eventually(t, func() bool {
		got, _, _ = scrapeKills(url)
		return got >= kills
	}, 60*time.Second, 200*time.Millisecond, "waiting for %d kills on %s", kills, url)
	time.Sleep(2 * time.Second) // nothing more may arrive
	got, series, _ := scrapeKills(url)
	require.Equal(t, float64(kills), got, "container_oom_kill_count_total summed over %d series", series)
	require.Equal(t, 3, series, "one series per container")
}
