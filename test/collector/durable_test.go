package collector

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/journaltest"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/testutil"
)

// durableConfig is examples/otlp/otelcol-otlp.yaml as shipped, except for
// what cannot be the same in a test: file_storage's directories (a temporary
// one), the receiver reads the test's journal directory from the beginning
// instead of the system journal from its end, the collector's own metrics
// listen on 127.0.0.1 and a free port instead of 0.0.0.0:8888, and k8smeta
// is left out (no Kubernetes API here). The exporter, its persistent queue,
// retry settings, memory_limiter and the pipelines are the shipped ones;
// the OTLP endpoint comes from OTLP_ENDPOINT as in the example.
// DURABLE_CONFIG names another file to start from (e.g. the old example,
// to see this test fail).
func durableConfig(t *testing.T, journalDir, stateDir string, telemetryPort int) string {
	t.Helper()
	src := os.Getenv("DURABLE_CONFIG")
	if src == "" {
		src = testutil.RepoPath(t, "examples/otlp/otelcol-otlp.yaml")
	}
	b, err := os.ReadFile(src)
	require.NoError(t, err)
	var cfg map[string]any
	require.NoError(t, yaml.Unmarshal(b, &cfg))
	m := func(v any) map[string]any { return v.(map[string]any) }

	fs := m(m(cfg["extensions"])["file_storage"])
	fs["directory"] = stateDir
	if c, ok := fs["compaction"].(map[string]any); ok {
		c["directory"] = stateDir
	}
	rcv := m(m(cfg["receivers"])["oomkill"])
	rcv["journal"] = map[string]any{"directory": journalDir}
	rcv["start_at"] = "beginning"
	// The journal is made of fixtures, not this machine's log: its real OOM
	// kills (other test packages make them) must not be counted here.
	rcv["witness"] = map[string]any{"enabled": false}
	delete(m(cfg["processors"]), "k8smeta")
	svc := m(cfg["service"])
	for _, p := range m(svc["pipelines"]) {
		procs, _ := m(p)["processors"].([]any)
		m(p)["processors"] = slices.DeleteFunc(procs, func(v any) bool { return v == "k8smeta" })
	}
	for _, r := range m(svc["telemetry"])["metrics"].(map[string]any)["readers"].([]any) {
		prom := m(m(m(r)["pull"])["exporter"])["prometheus"].(map[string]any)
		prom["host"], prom["port"] = "127.0.0.1", telemetryPort
	}
	out, err := yaml.Marshal(cfg)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(path, out, 0o600))
	return path
}

// startReady starts the collector, its output appended to log, and waits
// until it logged that every component started (so a SIGKILL lands while
// it reads and delivers, not while it loads).
func startReady(t *testing.T, cfg string, env []string, log string) *testutil.Process {
	t.Helper()
	c := testutil.StartCollector(t, cfg, testutil.ProcessOptions{Env: env, LogFile: log})
	c.WaitReady(t, 60*time.Second)
	return c
}

// durableKill is a kill as the test wrote it to the journal.
type durableKill struct {
	pid int
	id  string // oom.kill.id as documented, computed here independently
}

// writeKill appends one kernel OOM report to the journal, with the kernel's
// own time (_SOURCE_MONOTONIC_TIMESTAMP) a little before journald's.
func writeKill(t *testing.T, journal string, pid int) durableKill {
	t.Helper()
	entries := report(pid, time.Now())
	for i := range entries {
		entries[i].SourceMonotonic = entries[i].Time.Sub(journaltest.BootTime) - 3*time.Millisecond
	}
	journaltest.Write(t, journal, entries)
	victim := entries[len(entries)-1]
	require.Contains(t, victim.Message, "Killed process")
	sum := sha256.Sum256(fmt.Appendf(nil, "%s\n%d\n%d", boot, victim.SourceMonotonic.Microseconds(), pid))
	return durableKill{pid: pid, id: hex.EncodeToString(sum[:16])}
}

// The shipped OTLP pipeline delivers every kill at least once although the
// collector is SIGKILLed at random points, before, while and after it
// reads, queues, exports and checkpoints, with kills landing while it runs
// and while it is down, and the OTLP backend down across restarts. Copies
// sent again carry the same oom.kill.id, and the counter is exact.
func TestDurableDeliveryUnderSIGKILL(t *testing.T) {
	testutil.CollectorBinary(t)
	journaltest.Require(t, journaltest.RemoteBinary, "systemd-journal-remote")
	journalDir, stateDir := t.TempDir(), t.TempDir()
	journal := filepath.Join(journalDir, "system.journal")
	sink := testutil.StartOTLPSink(t)
	cfg := durableConfig(t, journalDir, stateDir, testutil.FreePort(t))
	env := []string{"K8S_NODE_NAME=node-a", "OTLP_ENDPOINT=" + sink.Addr()}
	logPath := filepath.Join(t.TempDir(), "collector.log")
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600) // shared with the collectors
	require.NoError(t, err)
	defer log.Close()
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 20000 {
				b = b[len(b)-20000:]
			}
			t.Logf("collector log (tail):\n%s", b)
		}
	})

	const rounds = 14
	// The backend goes down in the middle of rounds 3 and 10, while kills
	// are being delivered, and comes back at the start of rounds 7 and 12:
	// down across several SIGKILLs and restarts.
	downAt := map[int]bool{3: true, 10: true}
	upAt := map[int]bool{7: true, 12: true}
	var kills []durableKill
	at := map[string]int{}
	pid := 20000
	sinkUp := true
	for round := 0; round < rounds; round++ {
		if upAt[round] && !sinkUp {
			sink.Up(t)
			sinkUp = true
		}
		c := startReady(t, cfg, env, logPath)
		n := 2 + rand.IntN(4)
		for i := 0; i < n; i++ {
			if downAt[round] && i == n/2 && sinkUp {
				sink.Down()
				sinkUp = false
			}
			pid++
			if i == n-1 && round%3 == 1 {
				// Every third round the SIGKILL races the last append.
				c.KillWithin(30 * time.Millisecond)
				kills = append(kills, writeKill(t, journal, pid))
				break
			}
			kills = append(kills, writeKill(t, journal, pid))
			time.Sleep(time.Duration(rand.IntN(200)) * time.Millisecond)
		}
		// The receiver holds fresh kills back for outcome.delay (2s) before
		// it delivers and checkpoints them: SIGKILL anywhere from before
		// that ends to well after the export.
		time.Sleep(time.Duration(rand.IntN(4000)) * time.Millisecond)
		c.SignalAndWait(t, syscall.SIGKILL)
		// Where the SIGKILL fell, for the last kill written (for the log).
		last := kills[len(kills)-1]
		switch {
		case sinkHas(sink, last.id):
			at["after its export"]++
		case c.Logged(fmt.Sprintf(`"pid": %d,`, last.pid)) && !sinkUp:
			at["after reading it, backend down"]++
		case c.Logged(fmt.Sprintf(`"pid": %d,`, last.pid)):
			at["after reading it, before its export"]++
		default:
			at["before it was counted (unread, or held back for its outcome)"]++
		}
		fmt.Fprintf(log, "=== round %d: %d kills while running, SIGKILLed (sink up: %v)\n", round, n, sinkUp)
		// A kill lands while the collector is down.
		pid++
		kills = append(kills, writeKill(t, journal, pid))
	}
	require.GreaterOrEqual(t, len(kills), 42)
	for len(kills) < 50 {
		// Not enough from the random counts: more while the collector is down.
		pid++
		kills = append(kills, writeKill(t, journal, pid))
	}
	if !sinkUp {
		sink.Up(t)
	}

	c := startReady(t, cfg, env, logPath)
	want := map[string]int{}
	for _, k := range kills {
		want[k.id] = k.pid
	}
	missing := func() []int {
		got := map[string]bool{}
		for _, lr := range sink.LogRecords() {
			id, _ := lr.Attributes().Get("oom.kill.id")
			got[id.Str()] = true
		}
		var out []int
		for id, p := range want {
			if !got[id] {
				out = append(out, p)
			}
		}
		slices.Sort(out)
		return out
	}
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) && (len(missing()) > 0 || killTotal(sink) != int64(len(kills))) {
		time.Sleep(200 * time.Millisecond)
	}
	c.SignalAndWait(t, syscall.SIGTERM) // drains the queue; the counter must not overshoot either

	lost := missing()
	require.Empty(t, lost, "%d of %d kills' log records never reached the sink (pids %v)", len(lost), len(kills), lost)
	assert.Equal(t, int64(len(kills)), killTotal(sink), "container.oom_kill.count summed over its series")

	// Every record is one of the kills written, and copies are identical.
	records := sink.LogRecords()
	first := map[string]string{}
	for _, lr := range records {
		id, _ := lr.Attributes().Get("oom.kill.id")
		p, _ := lr.Attributes().Get("process.pid")
		require.Contains(t, want, id.Str(), "a record with an unknown oom.kill.id (pid %d)", p.Int())
		require.Equal(t, int64(want[id.Str()]), p.Int(), "oom.kill.id %s names pid %d", id.Str(), want[id.Str()])
		desc := fmt.Sprintf("%d|%s|%d", p.Int(), lr.Body().Str(), lr.Timestamp())
		if prev, ok := first[id.Str()]; ok {
			require.Equal(t, prev, desc, "copies of %s differ", id.Str())
		}
		first[id.Str()] = desc
	}
	collectorLog, err := os.ReadFile(logPath)
	require.NoError(t, err)
	assert.Contains(t, string(collectorLog), "Will retry the request", "the exporter met the backend down")
	assert.NotContains(t, string(collectorLog), "Dropping data", "the exporter gave data up")
	t.Logf("SIGKILL fell, relative to the last kill of its round: %v", at)
	dups := len(records) - len(want)
	t.Logf("%d kills, %d log records at the sink: %d duplicate records (%.1f%% of kills)",
		len(kills), len(records), dups, 100*float64(dups)/float64(len(kills)))
}

// killTotal is container.oom_kill.count at the sink, summed over its series.
func killTotal(s *testutil.OTLPSink) int64 { return s.SumTotal("container.oom_kill.count") }

func sinkHas(s *testutil.OTLPSink, id string) bool {
	for _, lr := range s.LogRecords() {
		if v, _ := lr.Attributes().Get("oom.kill.id"); v.Str() == id {
			return true
		}
	}
	return false
}
