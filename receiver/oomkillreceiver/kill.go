package oomkillreceiver

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"strconv"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/metadata"
	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/oomparse"
)

// killRecord is one kill as the follower read it from the kernel log: what
// every stage after it (outcome, series, delivery) works on.
type killRecord struct {
	// ID is oom.kill.id (killID).
	ID string
	oomparse.Kill
	// Host is the host name the kernel log names (the journal's _HOSTNAME).
	Host string
	// Outcome is oom.container.outcome, set by the outcome observer.
	Outcome string
	// Source is oom.source: sourceLog, or sourceKernelCounter for a kill
	// known only from the kernel's counters (witness.go).
	Source string
	// CounterAttributed: the log named no cgroup; the counters did.
	CounterAttributed bool
	// GroupID and GroupSize are oom.group.id and oom.group.size of a
	// memory.oom.group kill (groupkill.go).
	GroupID   string
	GroupSize int
}

// Values of oom.container.outcome.
var (
	outcomeSurvived = metadata.AttributeOomContainerOutcomeSurvived.String()
	outcomeExited   = metadata.AttributeOomContainerOutcomeExited.String()
	outcomeUnknown  = metadata.AttributeOomContainerOutcomeUnknown.String()
)

// Values of oom.source.
var (
	sourceLog           = metadata.AttributeOomSourceLog.String()
	sourceKernelCounter = metadata.AttributeOomSourceKernelCounter.String()
)

func (k killRecord) source() string { return cmp.Or(k.Source, sourceLog) }

// killID is the value of oom.kill.id: the first 16 bytes of SHA-256 over
// "<boot ID>\n<kernel monotonic µs>\n<pid>", as 32 lowercase hex digits.
// All three are the kernel's own stamps of the victim line, so reading the
// same log again (after a crash before the checkpoint) gives the same ID,
// and a backend or the k8sevents exporter can drop the redelivered copy.
// Within one boot the kernel never kills one pid twice at the same
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
