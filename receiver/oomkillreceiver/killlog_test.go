package oomkillreceiver

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/oomparse"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/journaltest"
)

// linesAndSummed counts the per-kill lines and the kills the summary lines
// say were not logged.
func linesAndSummed(logs *observer.ObservedLogs) (lines, summed int) {
	for _, e := range logs.All() {
		if e.Message == "OOM kill" {
			lines++
		}
		if n, ok := e.ContextMap()["kills_not_logged"]; ok {
			summed += int(n.(int64))
		}
	}
	return lines, summed
}

// The line says whether the kill was a member of a group kill: on a cgroup
// v2 node with memory.oom.group=1 one allocation kills every process.
func TestKillLogLineSaysGroupKill(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	l := &killLog{logger: zap.New(core)}
	now := time.Unix(1_000_000, 0)
	l.log(killRecord{Kill: oomparse.Kill{PID: 1, Comm: "php-fpm"}}, now)
	l.log(killRecord{Kill: oomparse.Kill{PID: 2, Comm: "php-fpm", GroupKill: true}}, now)
	require.Equal(t, 2, logs.Len())
	assert.Equal(t, false, logs.All()[0].ContextMap()["group_kill"])
	assert.Equal(t, true, logs.All()[1].ContextMap()["group_kill"])
}

// A catch-up of 100,000 kills over 25 s writes killLogBurst lines in each
// 10 s window and one summary line per window; every kill is either logged
// or summed up.
func TestKillLogIsBoundedInACatchUp(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	l := &killLog{logger: zap.New(core)}
	start := time.Unix(1_000_000, 0)
	const kills = 100_000
	const catchUp = 25 * time.Second
	for i := 0; i < kills; i++ {
		l.log(killRecord{Kill: oomparse.Kill{PID: int64(i), Comm: "php-fpm"}}, start.Add(time.Duration(i)*catchUp/kills))
	}
	require.False(t, l.dueAt().IsZero(), "a summary is pending")
	l.flush(l.dueAt().Add(-time.Nanosecond))
	assert.False(t, l.dueAt().IsZero(), "not before the window ends")
	l.flush(l.dueAt())
	assert.True(t, l.dueAt().IsZero(), "written when the window ends")

	lines, summed := linesAndSummed(logs)
	assert.Equal(t, 3*killLogBurst, lines, "killLogBurst lines in each of 3 windows")
	assert.Equal(t, 3*killLogBurst+3, logs.Len(), "and one summary each")
	assert.Equal(t, kills, lines+summed, "every kill logged or summed up")
}

// The receiver writes its summary when the window ends even if no other
// kill comes: the summary's time is one of the idle loop's deadlines.
func TestKillLogSummaryComesWithoutAnotherKill(t *testing.T) {
	defer func(w time.Duration) { killLogWindow = w }(killLogWindow)
	killLogWindow = 300 * time.Millisecond
	dir := t.TempDir()
	var entries []journaltest.Entry
	const kills = 50
	for i := 0; i < kills; i++ {
		entries = append(entries, report(3000+i, t0.Add(time.Duration(i)*time.Second), bootA)...)
	}
	journaltest.Write(t, filepath.Join(dir, "system.journal"), entries)
	core, logs := observer.New(zapcore.InfoLevel)
	r := startLogging(t, testConfig(dir), componenttest.NewNopHost(), nil, nil, zap.New(core))
	eventually(t, "every kill delivered", func() bool { return r.logs.LogRecordCount() == kills })
	eventually(t, "every kill logged or summed up", func() bool {
		lines, summed := linesAndSummed(logs)
		return lines+summed == kills
	})
	lines, _ := linesAndSummed(logs)
	assert.LessOrEqual(t, lines, kills, fmt.Sprintf("at most %d per window", killLogBurst))
	assert.GreaterOrEqual(t, lines, killLogBurst)
	assert.Positive(t, logs.FilterMessageSnippet("more OOM kills not logged one by one").Len())
}
