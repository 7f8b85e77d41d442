package collector

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/journaltest"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/testutil"
)

// scrapeSelf sums a metric of the collector's own telemetry endpoint (-1
// while it does not answer).
func scrapeSelf(t *testing.T, port int, name string) float64 {
	t.Helper()
	samples, err := testutil.Scrape(fmt.Sprintf("http://127.0.0.1:%d/metrics", port), name)
	if err != nil {
		return -1
	}
	return testutil.Sum(samples)
}

// While the memory limiter refuses data, the receiver drops nothing and
// stops reading: it retries the refused delivery (delivery_retries grows),
// kills appended meanwhile are not read, and nothing is checkpointed, so
// after a restart with memory to spare every kill arrives. The pipeline is
// the shipped OTLP one (durableConfig); in the refusing run only the
// memory_limiter's limit (1 MiB, below any Go heap) and the receiver's
// retry backoff (50-200 ms, to see retries quickly) differ.
func TestMemoryLimiterRefusalPausesReading(t *testing.T) {
	testutil.CollectorBinary(t)
	journaltest.Require(t, journaltest.RemoteBinary, "systemd-journal-remote")
	journalDir, stateDir := t.TempDir(), t.TempDir()
	journal := filepath.Join(journalDir, "system.journal")
	sink := testutil.StartOTLPSink(t)
	selfPort := testutil.FreePort(t)
	shipped := durableConfig(t, journalDir, stateDir, selfPort)
	b, err := os.ReadFile(shipped)
	require.NoError(t, err)
	var cfg map[string]any
	require.NoError(t, yaml.Unmarshal(b, &cfg))
	cfg["processors"].(map[string]any)["memory_limiter"] = map[string]any{"check_interval": "100ms", "limit_mib": 1}
	cfg["receivers"].(map[string]any)["oomkill"].(map[string]any)["retry"] = map[string]any{"initial_interval": "50ms", "max_interval": "200ms"}
	out, err := yaml.Marshal(cfg)
	require.NoError(t, err)
	refusing := filepath.Join(t.TempDir(), "refusing.yaml")
	require.NoError(t, os.WriteFile(refusing, out, 0o600))
	env := []string{"K8S_NODE_NAME=node-a", "OTLP_ENDPOINT=" + sink.Addr()}
	logPath := filepath.Join(t.TempDir(), "collector.log")
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("collector log:\n%s", b)
		}
	})

	// The limiter checks memory every check_interval: write the first kills
	// once it refuses.
	c := startReady(t, refusing, env, logPath)
	require.Eventually(t, func() bool { return c.Logged("Refusing data") }, 60*time.Second, 50*time.Millisecond, "memory_limiter refuses")
	var kills []durableKill
	for pid := 30001; pid <= 30003; pid++ {
		kills = append(kills, writeKill(t, journal, pid))
	}
	retries := func() float64 { return scrapeSelf(t, selfPort, "otelcol_oomkill_receiver_delivery_retries") }
	require.Eventually(t, func() bool { return retries() >= 3 }, 60*time.Second, 50*time.Millisecond, "the limiter refuses and the receiver retries")
	read := scrapeSelf(t, selfPort, "otelcol_oomkill_receiver_entries_read")
	require.Positive(t, read)
	for pid := 30004; pid <= 30006; pid++ {
		kills = append(kills, writeKill(t, journal, pid))
	}
	// Enough retries after the appends to be sure the reader had its chances.
	r0 := retries()
	require.Eventually(t, func() bool { return retries() >= r0+5 }, 60*time.Second, 50*time.Millisecond)
	assert.Equal(t, read, scrapeSelf(t, selfPort, "otelcol_oomkill_receiver_entries_read"), "no entry read while the delivery is refused")
	assert.Empty(t, sink.LogRecords(), "refused data reached the exporter")
	t.Logf("while refused: %v delivery retries, entries read stayed at %v after 3 more kills were appended", retries(), read)
	c.SignalAndWait(t, syscall.SIGTERM)

	c = startReady(t, shipped, env, logPath)
	ids := func() map[string]int {
		got := map[string]int{}
		for _, lr := range sink.LogRecords() {
			id, _ := lr.Attributes().Get("oom.kill.id")
			got[id.Str()]++
		}
		return got
	}
	require.Eventually(t, func() bool { return len(ids()) == len(kills) && killTotal(sink) == int64(len(kills)) },
		60*time.Second, 100*time.Millisecond, "every kill arrives once memory is available")
	c.SignalAndWait(t, syscall.SIGTERM)
	for _, k := range kills {
		assert.Equal(t, 1, ids()[k.id], "pid %d", k.pid)
	}
	assert.Equal(t, int64(len(kills)), killTotal(sink))
}

// A full persistent queue (backend down, queue_size 1) is not a drop
// either: Offer returns a retryable error, the receiver retries and stops
// reading, and once the backend is back every kill arrives. Only
// sending_queue::queue_size differs from the shipped OTLP pipeline (and
// the receiver's backoff, as above).
func TestFullQueuePausesReading(t *testing.T) {
	testutil.CollectorBinary(t)
	journaltest.Require(t, journaltest.RemoteBinary, "systemd-journal-remote")
	journalDir, stateDir := t.TempDir(), t.TempDir()
	journal := filepath.Join(journalDir, "system.journal")
	sink := testutil.StartOTLPSink(t)
	sink.Down()
	selfPort := testutil.FreePort(t)
	b, err := os.ReadFile(durableConfig(t, journalDir, stateDir, selfPort))
	require.NoError(t, err)
	var cfg map[string]any
	require.NoError(t, yaml.Unmarshal(b, &cfg))
	cfg["exporters"].(map[string]any)["otlp_grpc"].(map[string]any)["sending_queue"].(map[string]any)["queue_size"] = 1
	cfg["receivers"].(map[string]any)["oomkill"].(map[string]any)["retry"] = map[string]any{"initial_interval": "50ms", "max_interval": "200ms"}
	out, err := yaml.Marshal(cfg)
	require.NoError(t, err)
	small := filepath.Join(t.TempDir(), "small-queue.yaml")
	require.NoError(t, os.WriteFile(small, out, 0o600))
	logPath := filepath.Join(t.TempDir(), "collector.log")
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("collector log:\n%s", b)
		}
	})

	c := startReady(t, small, []string{"K8S_NODE_NAME=node-a", "OTLP_ENDPOINT=" + sink.Addr()}, logPath)
	retries := func() float64 { return scrapeSelf(t, selfPort, "otelcol_oomkill_receiver_delivery_retries") }
	entriesRead := func() float64 { return scrapeSelf(t, selfPort, "otelcol_oomkill_receiver_entries_read") }
	// The first kill fills the queue (its request stays in it while the
	// export is retried); the second is refused.
	kills := []durableKill{writeKill(t, journal, 40001)}
	require.Eventually(t, func() bool { return entriesRead() >= 3 }, 60*time.Second, 50*time.Millisecond, "first kill read")
	kills = append(kills, writeKill(t, journal, 40002))
	require.Eventually(t, func() bool { return retries() >= 3 }, 60*time.Second, 50*time.Millisecond, "a full queue makes the receiver retry")
	require.True(t, c.Logged("sending queue is full"), "the receiver was refused by the full queue")
	read := entriesRead()
	kills = append(kills, writeKill(t, journal, 40003), writeKill(t, journal, 40004))
	r0 := retries()
	require.Eventually(t, func() bool { return retries() >= r0+5 }, 60*time.Second, 50*time.Millisecond)
	assert.Equal(t, read, entriesRead(), "no entry read while the queue is full")
	full := retries()

	sink.Up(t)
	ids := func() map[string]int {
		got := map[string]int{}
		for _, lr := range sink.LogRecords() {
			id, _ := lr.Attributes().Get("oom.kill.id")
			got[id.Str()]++
		}
		return got
	}
	require.Eventually(t, func() bool { return len(ids()) == len(kills) && killTotal(sink) == int64(len(kills)) },
		90*time.Second, 100*time.Millisecond, "every kill arrives once the backend is back")
	c.SignalAndWait(t, syscall.SIGTERM)
	for _, k := range kills {
		assert.Equal(t, 1, ids()[k.id], "pid %d", k.pid)
	}
	t.Logf("queue full: %v delivery retries while entries read stayed at %v of %d", full, read, 3*len(kills))
}
