package event

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/kill"
)

// The sentence on the memory at the kill is built from the report's
// numbers only, names the size of the limit that was hit (a pod's is the
// sum of its containers'), and says nothing when the report was not seen.
func TestNoteMemoryContext(t *testing.T) {
	base := kill.Kill{PID: 4242, Process: "php-fpm: pool", Container: "php-fpm", PodName: "p", Namespace: "n", Scope: kill.ScopeContainer, AnonRSSKB: 60 << 10, LimitB: 512 << 20}
	full := kill.Memory{
		Usage: some(256 << 20), Limit: some(256 << 20),
		Anon: some(250 << 20), File: some(2 << 20), Shmem: some(0), Kernel: some(4 << 20),
		Tasks: some(12), LargestName: "php-fpm: pool", LargestPID: some(4243), Largest: some(70 << 20),
		VictimFileKB: some(2 << 10), VictimShmemKB: some(1 << 10),
	}
	for name, tc := range map[string]struct {
		mutate func(*kill.Kill)
		want   string
	}{
		"container, the kernel's limit": {
			func(k *kill.Kill) { k.Mem = full },
			`The kernel OOM killer killed process "php-fpm: pool" (pid 4242) in container "php-fpm": the container's memory limit (256Mi) was hit; the process used 60Mi of anonymous memory. ` +
				`Usage 256Mi of 256Mi: anon 250Mi, file 2Mi, shmem 0, kernel 4Mi; 12 processes; the victim held 63Mi, the largest was "php-fpm: pool" (pid 4243) with 70Mi.`,
		},
		"pod limit: the sum of the containers' limits": {
			func(k *kill.Kill) { k.Mem, k.Scope = full, kill.ScopePod },
			`The kernel OOM killer killed process "php-fpm: pool" (pid 4242) in container "php-fpm": the pod's memory limit (256Mi, the sum of its containers' limits) was hit; the process used 60Mi of anonymous memory. ` +
				`Usage 256Mi of 256Mi: anon 250Mi, file 2Mi, shmem 0, kernel 4Mi; 12 processes; the victim held 63Mi, the largest was "php-fpm: pool" (pid 4243) with 70Mi.`,
		},
		"the victim was the largest, a group kill": {
			func(k *kill.Kill) {
				k.Mem = full
				k.Mem.LargestPID, k.Mem.GroupSize = some(4242), some(3)
			},
			`The kernel OOM killer killed process "php-fpm: pool" (pid 4242) in container "php-fpm": the container's memory limit (256Mi) was hit; the process used 60Mi of anonymous memory. ` +
				`Usage 256Mi of 256Mi: anon 250Mi, file 2Mi, shmem 0, kernel 4Mi; 12 processes; 3 processes killed together (memory.oom.group); the victim held 63Mi, it was the largest process.`,
		},
		"node": {
			func(k *kill.Kill) {
				k.Scope = kill.ScopeNode
				k.Mem = kill.Memory{SystemFree: some(50 << 20), SystemRAM: some(8 << 30), Tasks: some(230), VictimFileKB: some(0)}
			},
			`The kernel OOM killer killed process "php-fpm: pool" (pid 4242) in container "php-fpm": the node ran out of memory; the process used 60Mi of anonymous memory. The node had 50Mi free of 8Gi; 230 processes; the victim held 60Mi.`,
		},
		"rate-limited: no report, no sentence, the API's limit": {
			func(*kill.Kill) {},
			`The kernel OOM killer killed process "php-fpm: pool" (pid 4242) in container "php-fpm": the container's memory limit (512Mi) was hit; the process used 60Mi of anonymous memory.`,
		},
		"no limit printed as a size": {
			func(k *kill.Kill) {
				k.Scope, k.Mem = kill.ScopePod, kill.Memory{Usage: some(1 << 20), Limit: some(9007199254740988 << 10)}
			},
			`The kernel OOM killer killed process "php-fpm: pool" (pid 4242) in container "php-fpm": the pod's memory limit was hit; the process used 60Mi of anonymous memory. Usage 1Mi.`,
		},
	} {
		t.Run(name, func(t *testing.T) {
			k := base
			tc.mutate(&k)
			assert.Equal(t, tc.want, Note(k))
		})
	}

	// Bounded whatever the name.
	k := base
	k.Mem = full
	k.Mem.LargestName = strings.Repeat("é\"\x1b", 200)
	s := MemorySentence(k)
	assert.LessOrEqual(t, len(s), MaxMemorySentence)
	assert.Contains(t, s, `the largest was "`)
	assert.LessOrEqual(t, len(Note(k)), MaxNote)
}

func some(v int64) kill.Opt { return kill.Opt{V: v, OK: true} }
