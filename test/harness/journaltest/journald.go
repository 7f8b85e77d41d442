package journaltest

import (
	"os"
	"path/filepath"
)

// JournaldRunning says whether a systemd-journald process runs. It reads
// each process's executable, not its name: systemd-journal-remote, which
// the tests run to write journal files, has the same 15-byte comm
// ("systemd-journal") that `pgrep -x` would match.
func JournaldRunning() bool {
	exes, _ := filepath.Glob("/proc/[0-9]*/exe")
	for _, exe := range exes {
		if target, err := os.Readlink(exe); err == nil && filepath.Base(target) == "systemd-journald" {
			return true
		}
	}
	return false
}
