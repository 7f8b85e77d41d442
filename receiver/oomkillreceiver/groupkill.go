package oomkillreceiver

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/oomparse"
)

// A memory.oom.group kill is one incident of several processes: the kernel
// kills one victim (the leader), then says "Tasks in <cgroup> are going to
// be killed due to memory.oom.group set" and kills every member. Its
// records share oom.group.id and carry oom.group.size, the number of
// processes the kernel killed in it, so a dashboard can show one incident
// of N processes.

// groupSettle is how long reading waits for more of a group kill's member
// lines when the journal ended right after one: the kernel prints them in
// one go, so they reach the journal together.
var groupSettle = 50 * time.Millisecond

// groupID is oom.group.id: the first 16 bytes of SHA-256 over
// "<boot ID>\n<leader pid>\n<leader's journal time, µs>", hex. Every input
// comes from the journal, so reading it again gives the same ID.
func groupID(bootID string, g oomparse.GroupRef) string {
	b := make([]byte, 0, len(bootID)+48)
	b = append(b, bootID...)
	b = append(b, '\n')
	b = strconv.AppendInt(b, g.LeaderPID, 10)
	b = append(b, '\n')
	b = strconv.AppendInt(b, g.LeaderTime.UnixMicro(), 10)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// markGroupLeader gives the leader's record, read before the kernel named
// the group, the group. It is the latest kill of that pid in the batch.
func markGroupLeader(kills []killRecord, g oomparse.GroupRef, bootID string) {
	for i := len(kills) - 1; i >= 0; i-- {
		k := &kills[i]
		if k.PID == g.LeaderPID && k.BootID == bootID && !k.GroupKill {
			if k.Group == (oomparse.GroupRef{}) {
				k.Group = g
			}
			return
		}
	}
}

// countGroups sets oom.group.id and oom.group.size on the records of group
// kills: the size is how many of the batch's records belong to the group
// (reading does not end a batch while the kernel may still be printing a
// group's members).
func countGroups(kills []killRecord) {
	size := map[string]int{}
	for i := range kills {
		k := &kills[i]
		if !k.GroupKill && k.Group == (oomparse.GroupRef{}) {
			continue
		}
		k.GroupID = groupID(k.BootID, k.Group)
		size[k.GroupID]++
	}
	for i := range kills {
		if id := kills[i].GroupID; id != "" {
			kills[i].GroupSize = size[id]
		}
	}
}
