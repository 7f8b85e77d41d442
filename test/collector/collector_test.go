// Package collector tests the built otelcol-oomkill binary (make build) as
// a user runs it: real journal files, the Prometheus exporter, SIGKILL.
package collector

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/journaltest"
)

// collectorBinary is the distribution built by `make build`.
func collectorBinary(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "bin", "otelcol-oomkill"))
	require.NoError(t, err)
	if _, err := os.Stat(p); err != nil {
		msg := p + " is missing: run `make build` (make test does)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

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
	resp, err := http.Get(url)
	if err != nil {
		return 0, 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "container_oom_kill_count_total{") {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err == nil {
			total += v
			series++
		}
	}
	return total, series, resp.StatusCode == http.StatusOK
}

// A journal holding N kills, with the collector SIGKILLed and restarted at
// random points while more kills land, gives exactly N.
func TestSIGKILLRestartsCountExactly(t *testing.T) {
	bin := collectorBinary(t)
	const kills = 40
	dir, state := t.TempDir(), t.TempDir()
	port := freePort(t)
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
	startCollector := func() *exec.Cmd {
		cmd := exec.Command(bin, "--config", cfgPath)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		require.NoError(t, cmd.Start())
		return cmd
	}
	for i := 0; i < 5; i++ {
		cmd := startCollector()
		time.Sleep(time.Duration(300+rand.IntN(900)) * time.Millisecond)
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait()
	}
	wg.Wait()

	cmd := startCollector()
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
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
