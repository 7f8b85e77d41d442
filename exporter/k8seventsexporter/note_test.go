package k8seventsexporter

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestNote(t *testing.T) {
	base := kill{PID: 42, Process: "celery", Container: "worker", PodName: "p", Namespace: "n", Scope: scopeContainer, AnonRSSKB: -1, LimitB: -1}
	for name, tc := range map[string]struct {
		mutate func(*kill)
		want   string
	}{
		"container limit, sizes unknown": {func(*kill) {}, `The kernel OOM killer killed process "celery" (pid 42) in container "worker": the container's memory limit was hit.`},
		"container limit with sizes": {
			func(k *kill) { k.LimitB, k.AnonRSSKB = 512<<20, 500*1024+512 },
			`The kernel OOM killer killed process "celery" (pid 42) in container "worker": the container's memory limit (512Mi) was hit; the process used 500.5Mi of anonymous memory.`,
		},
		"pod limit, exited": {
			func(k *kill) { k.Scope, k.Outcome = scopePod, "exited" },
			`The kernel OOM killer killed process "celery" (pid 42) in container "worker": the pod's memory limit was hit. The container exited: Kubernetes restarts it and reports OOMKilled.`,
		},
		"node, survived": {
			func(k *kill) { k.Scope, k.Outcome = scopeNode, "survived" },
			`The kernel OOM killer killed process "celery" (pid 42) in container "worker": the node ran out of memory. The container kept running: Kubernetes records no restart for this.`,
		},
		"unknown outcome says nothing": {func(k *kill) { k.Outcome = "unknown" }, `The kernel OOM killer killed process "celery" (pid 42) in container "worker": the container's memory limit was hit.`},
		"no container name":            {func(k *kill) { k.Container = "" }, `The kernel OOM killer killed process "celery" (pid 42) in this pod: the container's memory limit was hit.`},
		"hostile process name":         {func(k *kill) { k.Process = "x\"\n\x1b[31m" }, `The kernel OOM killer killed process "x\"\n\x1b[31m" (pid 42) in container "worker": the container's memory limit was hit.`},
		"rate-limited report":          {func(k *kill) { k.Scope, k.PID, k.Process = scopeUnknown, -1, "" }, `The kernel OOM killer killed a process in container "worker": the kernel did not say which limit was hit.`},
		"cpuset":                       {func(k *kill) { k.Scope = scopeCpuset }, `The kernel OOM killer killed process "celery" (pid 42) in container "worker": the memory of its cpuset ran out.`},
	} {
		t.Run(name, func(t *testing.T) {
			k := base
			tc.mutate(&k)
			assert.Equal(t, tc.want, note(k))
		})
	}
}

func TestNoteFitsTheAPI(t *testing.T) {
	k := kill{PID: 1, Process: strings.Repeat("é", 600), Container: "c", PodName: "p", Namespace: "n", Scope: scopeContainer, AnonRSSKB: -1, LimitB: -1}
	n := note(k)
	assert.LessOrEqual(t, len(n), maxNote)
	assert.True(t, strings.HasPrefix(n, "The kernel OOM killer"))
}

func TestScopeOf(t *testing.T) {
	const uid = "6f0e4e8a-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
	ctr := "/kubepods/burstable/pod" + uid + "/" + ctr64
	systemd := "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod6f0e4e8a_1c2d_4e5f_8a9b_0c1d2e3f4a5b.slice"
	for _, tc := range []struct {
		constraint, memcg, cgroup string
		want                      limitScope
	}{
		{"memcg", ctr, ctr, scopeContainer},
		{"memcg", "/kubepods/burstable/pod" + uid, ctr, scopePod},
		{"memcg", systemd, systemd + "/cri-containerd-" + ctr64 + ".scope", scopePod},
		{"memcg", systemd + "/cri-containerd-" + ctr64 + ".scope", systemd + "/cri-containerd-" + ctr64 + ".scope", scopeContainer},
		{"memcg", "/kubepods/burstable", ctr, scopeMemcg},
		{"memcg", "", ctr, scopeMemcg},
		{"system", "", ctr, scopeNode},
		{"cpuset", "", ctr, scopeCpuset},
		{"mempolicy", "", ctr, scopeMempolicy},
		{"unknown", "", "", scopeUnknown},
		{"", "", "", scopeUnknown},
	} {
		assert.Equal(t, tc.want, scopeOf(tc.constraint, tc.memcg, tc.cgroup, ctr64, uid), "%s %s", tc.constraint, tc.memcg)
	}
}

func TestEventObjectNameIsAValidName(t *testing.T) {
	s := &series{key: seriesKey{Pod: strings.Repeat("a", 240) + "-b"}, first: kill{ID: "x"}}
	n := eventObjectName(s)
	assert.LessOrEqual(t, len(n), 253)
	assert.Regexp(t, `^a+\.oom-[0-9a-f]{16}$`, n)
	assert.Equal(t, n, eventObjectName(s), "stable")
}

// The sentence on the memory at the kill is built from the report's
// numbers only, names the size of the limit that was hit (a pod's is the
// sum of its containers'), and says nothing when the report was not seen.
func TestNoteMemoryContext(t *testing.T) {
	base := kill{PID: 4242, Process: "php-fpm: pool", Container: "php-fpm", PodName: "p", Namespace: "n", Scope: scopeContainer, AnonRSSKB: 60 << 10, LimitB: 512 << 20}
	full := memoryContext{
		Usage: optInt{256 << 20, true}, Limit: optInt{256 << 20, true},
		Anon: optInt{250 << 20, true}, File: optInt{2 << 20, true}, Shmem: optInt{0, true}, Kernel: optInt{4 << 20, true},
		Tasks: optInt{12, true}, LargestName: "php-fpm: pool", LargestPID: optInt{4243, true}, Largest: optInt{70 << 20, true},
		VictimFileKB: optInt{2 << 10, true}, VictimShmemKB: optInt{1 << 10, true},
	}
	for name, tc := range map[string]struct {
		mutate func(*kill)
		want   string
	}{
		"container, the kernel's limit": {
			func(k *kill) { k.Mem = full },
			`The kernel OOM killer killed process "php-fpm: pool" (pid 4242) in container "php-fpm": the container's memory limit (256Mi) was hit; the process used 60Mi of anonymous memory. ` +
				`Usage 256Mi of 256Mi: anon 250Mi, file 2Mi, shmem 0, kernel 4Mi; 12 processes; the victim held 63Mi, the largest was "php-fpm: pool" (pid 4243) with 70Mi.`,
		},
		"pod limit: the sum of the containers' limits": {
			func(k *kill) { k.Mem, k.Scope = full, scopePod },
			`The kernel OOM killer killed process "php-fpm: pool" (pid 4242) in container "php-fpm": the pod's memory limit (256Mi, the sum of its containers' limits) was hit; the process used 60Mi of anonymous memory. ` +
				`Usage 256Mi of 256Mi: anon 250Mi, file 2Mi, shmem 0, kernel 4Mi; 12 processes; the victim held 63Mi, the largest was "php-fpm: pool" (pid 4243) with 70Mi.`,
		},
		"the victim was the largest, a group kill": {
			func(k *kill) {
				k.Mem = full
				k.Mem.LargestPID, k.Mem.GroupSize = optInt{4242, true}, optInt{3, true}
			},
			`The kernel OOM killer killed process "php-fpm: pool" (pid 4242) in container "php-fpm": the container's memory limit (256Mi) was hit; the process used 60Mi of anonymous memory. ` +
				`Usage 256Mi of 256Mi: anon 250Mi, file 2Mi, shmem 0, kernel 4Mi; 12 processes; 3 processes killed together (memory.oom.group); the victim held 63Mi, it was the largest process.`,
		},
		"node": {
			func(k *kill) {
				k.Scope = scopeNode
				k.Mem = memoryContext{SystemFree: optInt{50 << 20, true}, SystemRAM: optInt{8 << 30, true}, Tasks: optInt{230, true}, VictimFileKB: optInt{0, true}}
			},
			`The kernel OOM killer killed process "php-fpm: pool" (pid 4242) in container "php-fpm": the node ran out of memory; the process used 60Mi of anonymous memory. The node had 50Mi free of 8Gi; 230 processes; the victim held 60Mi.`,
		},
		"rate-limited: no report, no sentence, the API's limit": {
			func(*kill) {},
			`The kernel OOM killer killed process "php-fpm: pool" (pid 4242) in container "php-fpm": the container's memory limit (512Mi) was hit; the process used 60Mi of anonymous memory.`,
		},
		"no limit printed as a size": {
			func(k *kill) {
				k.Scope, k.Mem = scopePod, memoryContext{Usage: optInt{1 << 20, true}, Limit: optInt{9007199254740988 << 10, true}}
			},
			`The kernel OOM killer killed process "php-fpm: pool" (pid 4242) in container "php-fpm": the pod's memory limit was hit; the process used 60Mi of anonymous memory. Usage 1Mi.`,
		},
	} {
		t.Run(name, func(t *testing.T) {
			k := base
			tc.mutate(&k)
			assert.Equal(t, tc.want, note(k))
		})
	}

	// Bounded whatever the name.
	k := base
	k.Mem = full
	k.Mem.LargestName = strings.Repeat("é\"\x1b", 200)
	s := memorySentence(k)
	assert.LessOrEqual(t, len(s), maxMemorySentence)
	assert.Contains(t, s, `the largest was "`)
	assert.LessOrEqual(t, len(note(k)), maxNote)
}
