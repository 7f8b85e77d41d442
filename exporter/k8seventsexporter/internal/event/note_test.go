package event

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/kill"
)

func TestNote(t *testing.T) {
	base := kill.Kill{PID: 42, Process: "celery", Container: "worker", PodName: "p", Namespace: "n", Scope: kill.ScopeContainer, AnonRSSKB: -1, LimitB: -1}
	for name, tc := range map[string]struct {
		mutate func(*kill.Kill)
		want   string
	}{
		"container limit, sizes unknown": {func(*kill.Kill) {}, `The kernel OOM killer killed process "celery" (pid 42) in container "worker": the container's memory limit was hit.`},
		"container limit with sizes": {
			func(k *kill.Kill) { k.LimitB, k.AnonRSSKB = 512<<20, 500*1024+512 },
			`The kernel OOM killer killed process "celery" (pid 42) in container "worker": the container's memory limit (512Mi) was hit; the process used 500.5Mi of anonymous memory.`,
		},
		"pod limit, exited": {
			func(k *kill.Kill) { k.Scope, k.Outcome = kill.ScopePod, "exited" },
			`The kernel OOM killer killed process "celery" (pid 42) in container "worker": the pod's memory limit was hit. The container exited: Kubernetes restarts it and reports OOMKilled.`,
		},
		"node, survived": {
			func(k *kill.Kill) { k.Scope, k.Outcome = kill.ScopeNode, "survived" },
			`The kernel OOM killer killed process "celery" (pid 42) in container "worker": the node ran out of memory. The container kept running: Kubernetes records no restart for this.`,
		},
		"unknown outcome says nothing": {func(k *kill.Kill) { k.Outcome = "unknown" }, `The kernel OOM killer killed process "celery" (pid 42) in container "worker": the container's memory limit was hit.`},
		"no container name":            {func(k *kill.Kill) { k.Container = "" }, `The kernel OOM killer killed process "celery" (pid 42) in this pod: the container's memory limit was hit.`},
		"hostile process name":         {func(k *kill.Kill) { k.Process = "x\"\n\x1b[31m" }, `The kernel OOM killer killed process "x\"\n\x1b[31m" (pid 42) in container "worker": the container's memory limit was hit.`},
		"rate-limited report":          {func(k *kill.Kill) { k.Scope, k.PID, k.Process = kill.ScopeUnknown, -1, "" }, `The kernel OOM killer killed a process in container "worker": the kernel did not say which limit was hit.`},
		"cpuset":                       {func(k *kill.Kill) { k.Scope = kill.ScopeCpuset }, `The kernel OOM killer killed process "celery" (pid 42) in container "worker": the memory of its cpuset ran out.`},
	} {
		t.Run(name, func(t *testing.T) {
			k := base
			tc.mutate(&k)
			assert.Equal(t, tc.want, Note(k))
		})
	}
}

func TestNoteFitsTheAPI(t *testing.T) {
	k := kill.Kill{PID: 1, Process: strings.Repeat("é", 600), Container: "c", PodName: "p", Namespace: "n", Scope: kill.ScopeContainer, AnonRSSKB: -1, LimitB: -1}
	n := Note(k)
	assert.LessOrEqual(t, len(n), MaxNote)
	assert.True(t, strings.HasPrefix(n, "The kernel OOM killer"))
}

func TestEventObjectNameIsAValidName(t *testing.T) {
	base := strings.Repeat("a", 240) + "-b"
	n := ObjectName(base, "x")
	assert.LessOrEqual(t, len(n), 253)
	assert.Regexp(t, `^a+\.oom-[0-9a-f]{16}$`, n)
	assert.Equal(t, n, ObjectName(base, "x"), "stable")
}
