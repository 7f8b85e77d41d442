package oomkillreceiver

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/journaltest"
)

// The documented derivation, computed independently of killID.
func TestKillIDDerivation(t *testing.T) {
	sum := sha256.Sum256([]byte("689e000bb04b4d4fb2d31ba7e2ead017\n890913510\n20608"))
	want := hex.EncodeToString(sum[:16])
	got := killID("689e000bb04b4d4fb2d31ba7e2ead017", 890913510, 20608)
	assert.Equal(t, want, got)
	assert.Regexp(t, regexp.MustCompile(`^[0-9a-f]{32}$`), got)
	assert.NotEqual(t, got, killID("689e000bb04b4d4fb2d31ba7e2ead017", 890913510, 20609), "pid")
	assert.NotEqual(t, got, killID("689e000bb04b4d4fb2d31ba7e2ead017", 890913511, 20608), "time")
	assert.NotEqual(t, got, killID("689e000bb04b4d4fb2d31ba7e2ead018", 890913510, 20608), "boot")
}

// Real journal files read twice from the beginning (as after a crash before
// the checkpoint) give every kill the same oom.kill.id both times, the ID
// is the documented one (the kernel's _SOURCE_MONOTONIC_TIMESTAMP where
// journald stored it, __MONOTONIC_TIMESTAMP otherwise), and no two kills
// share one: not even the members of a group kill the kernel printed in
// the same microsecond, nor the first victim printed again among them.
func TestKillIDStableAcrossReadsAndUnique(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"systemd_burstable_containerd_child.export", "rate_limited.export"} {
		export, err := os.ReadFile(filepath.Join("..", "..", "testdata", "journal", "captured", name))
		require.NoError(t, err)
		journaltest.WriteExport(t, filepath.Join(dir, name+".journal"), export)
	}
	// Group kill: 5001 (victim), then 5000, 5001 again, 5002, all stamped
	// by the kernel at one instant.
	group := kernelFixture(t, "v6.6-group-kill.txt", t0, bootA)
	for i := range group {
		group[i].SourceMonotonic = 7 * time.Hour
	}
	// No _SOURCE_MONOTONIC_TIMESTAMP: journald's own monotonic stamp.
	plain := report(4242, t0.Add(time.Minute), bootB)
	journaltest.Write(t, filepath.Join(dir, "fixtures.journal"), append(group, plain...))

	type kill struct {
		pid  int64
		line string
		time int64
	}
	read := func() map[kill]string {
		r := start(t, testConfig(dir), componenttest.NewNopHost(), nil, nil)
		eventually(t, "all 22 kills", func() bool { return r.logs.LogRecordCount() >= 22 })
		r.stop()
		ids := map[kill]string{}
		for _, lr := range logRecords(r.logs) {
			pid, _ := lr.Attributes().Get("process.pid")
			id, ok := lr.Attributes().Get("oom.kill.id")
			require.True(t, ok, "oom.kill.id on every record")
			k := kill{pid.Int(), lr.Body().Str(), int64(lr.Timestamp())}
			_, dup := ids[k]
			require.False(t, dup, "one record per kill")
			ids[k] = id.Str()
		}
		require.Len(t, ids, 22)
		return ids
	}
	first, second := read(), read()
	assert.Equal(t, first, second, "same journal, same IDs")

	seen := map[string]kill{}
	byPID := map[int64]string{}
	for k, id := range first {
		assert.Regexp(t, `^[0-9a-f]{32}$`, id)
		other, dup := seen[id]
		assert.False(t, dup, "kills %+v and %+v share %s", k, other, id)
		seen[id] = k
		byPID[k.pid] = id
	}
	// The documented derivation, from the fields of the victim lines.
	assert.Equal(t, killID("689e000bb04b4d4fb2d31ba7e2ead017", 890913510, 20608), byPID[20608], "real journald: _SOURCE_MONOTONIC_TIMESTAMP")
	for _, pid := range []int64{5000, 5001, 5002} {
		assert.Equal(t, killID(bootA, uint64((7*time.Hour).Microseconds()), pid), byPID[pid], "group member %d", pid)
	}
	plainMono := plain[2].Time.Sub(journaltest.BootTime).Microseconds()
	assert.Equal(t, killID(bootB, uint64(plainMono), 4242), byPID[4242], "no _SOURCE_MONOTONIC_TIMESTAMP: __MONOTONIC_TIMESTAMP")
}
