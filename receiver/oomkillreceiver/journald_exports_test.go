package oomkillreceiver

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/journaltest"
)

// Kills recorded by a real systemd-journald from real OOM kills on this
// kind of machine (testdata/kernel/capture.sh), replayed as journal files.
func TestRealJournaldExports(t *testing.T) {
	tests := []struct {
		file                  string
		kills, unattributed   int
		executable, container string
	}{
		{"cgroupfs_burstable_containerd_child.export", 1, 0, "python3", "e7831b56831a3c461b886f4db7354a0704862a0424627fd35683c2fc57897c6e"},
		{"hostile_comm_pid_uid.export", 1, 0, "a,pid=1,uid=0", "4bc8c04e53344f521e8a20233ac26829eaf7345629081fe10ea3503c42b67a3a"},
		{"hostile_comm_total_vm.export", 1, 0, ") total-vm:1kB", "194a244d6e9710f37b7c81042c1634db7349dd37391ed0f0e8d8f56e14d363a8"},
		{"hostile_comm_task_evil.export", 1, 0, "x,task=evil", "940549fea423b220fd55b64e171492e1c82f0cbdbf7f7bf64d7d14d55d9d3e07"},
		{"hostile_comm_killed_process.export", 1, 0, "Killed process", "edac56a24f68b8356c9e0d336a4c37aed3b7ab89064851bce2f0f8a5d931a95b"},
		{"rate_limited.export", 17, 6, "python3", "1ced05f130cb28cad590c80d6d5754f45230ab0fe3351ec8abbeae7b98b10e33"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			export, err := os.ReadFile(filepath.Join("..", "..", "testdata", "journal", "captured", tt.file))
			require.NoError(t, err)
			dir := t.TempDir()
			journaltest.WriteExport(t, filepath.Join(dir, "system.journal"), export)
			r := start(t, testConfig(dir), componenttest.NewNopHost(), nil, nil)
			eventually(t, "all kills", func() bool { return r.logs.LogRecordCount() >= tt.kills })
			eventually(t, "counter", func() bool { return lastTotal(r.metrics) == int64(tt.kills) })
			records := logRecords(r.logs)
			require.Len(t, records, tt.kills)
			unattributed := 0
			for _, lr := range records {
				exe, _ := lr.Attributes().Get("process.executable.name")
				assert.Equal(t, tt.executable, exe.Str())
				if a, _ := lr.Attributes().Get("oom.attributed"); !a.Bool() {
					unattributed++
				}
			}
			assert.Equal(t, tt.unattributed, unattributed)
			// The first kill always has its report: its container is named.
			res := r.logs.AllLogs()[0].ResourceLogs().At(0).Resource().Attributes()
			id, _ := res.Get("container.id")
			assert.Equal(t, tt.container, id.Str())
		})
	}
}
