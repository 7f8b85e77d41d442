package oomkillreceiver

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/oomparse"
)

// killID is the value of oom.kill.id: the first 16 bytes of SHA-256 over
// "<boot ID>\n<kernel monotonic µs>\n<pid>", as 32 lowercase hex digits.
// All three come from the journal entry of the victim line, so reading the
// same journal again (after a crash before the checkpoint) gives the same
// ID, and a backend or the k8sevents exporter can drop the redelivered
// copy. Within one boot the kernel never kills one pid twice at the same
// microsecond, and different boots have different boot IDs.
func killID(bootID string, kernelUsec uint64, pid int64) string {
	b := make([]byte, 0, len(bootID)+42)
	b = append(b, bootID...)
	b = append(b, '\n')
	b = strconv.AppendUint(b, kernelUsec, 10)
	b = append(b, '\n')
	b = strconv.AppendInt(b, pid, 10)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// killID computes oom.kill.id for k, read from the journal's current entry
// (the victim line). Every journal entry has a monotonic stamp; should
// libsystemd fail to return it, 0 keeps the ID deterministic (boot and pid
// still tell kills apart).
func (r *oomReceiver) killID(k oomparse.Kill) string {
	us, _ := r.reader.KernelMonotonicUsec()
	return killID(k.BootID, us, k.PID)
}
