package oomparse

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/kubecgroup"
)

const (
	podUID  = "1f6a2c3e-8b4d-4e5f-9a0b-123456789abc"
	podUID_ = "1f6a2c3e_8b4d_4e5f_9a0b_123456789abc" //nolint:revive // podUID spelled with underscores, as systemd slice names carry it
	ctrID   = "94fa0437bf378ced2c1cd2f9cb3eccb62ae833f896541a9407e69ebe3c03ec57"
)

// wantKill is what a test checks of one Kill.
type wantKill struct {
	pid         int64
	comm        string
	attributed  bool
	group       bool
	constraint  Constraint
	taskMemcg   string
	oomMemcg    string
	kind        kubecgroup.Kind
	podUID      string
	containerID string
	uid         OptInt
	anonRSSKB   int64
	invoker     string
}

func checkKills(t *testing.T, want []wantKill, got []Kill) {
	t.Helper()
	require.Len(t, got, len(want), "kills")
	for i, w := range want {
		g := got[i]
		assert.Equal(t, w.pid, g.PID, "kill %d pid", i)
		assert.Equal(t, w.comm, g.Comm, "kill %d comm", i)
		assert.Equal(t, w.attributed, g.Attributed, "kill %d attributed", i)
		assert.Equal(t, w.group, g.GroupKill, "kill %d group", i)
		assert.Equal(t, w.constraint, g.Constraint, "kill %d constraint", i)
		assert.Equal(t, w.taskMemcg, g.TaskMemcg, "kill %d task memcg", i)
		if w.oomMemcg != "" {
			assert.Equal(t, w.oomMemcg, g.OOMMemcg, "kill %d oom memcg", i)
		}
		assert.Equal(t, w.kind, g.Cgroup.Kind, "kill %d kind", i)
		assert.Equal(t, w.podUID, g.Cgroup.PodUID, "kill %d pod", i)
		assert.Equal(t, w.containerID, g.Cgroup.ContainerID, "kill %d container", i)
		if w.uid.Valid {
			assert.Equal(t, w.uid, g.UID, "kill %d uid", i)
		}
		if w.anonRSSKB != 0 {
			assert.Equal(t, OptInt{w.anonRSSKB, true}, g.AnonRSSKB, "kill %d anon-rss", i)
		}
		if w.invoker != "" {
			assert.Equal(t, w.invoker, g.Invoker.Comm, "kill %d invoker", i)
		}
		assert.NotEmpty(t, g.Line, "kill %d line", i)
		assert.False(t, g.Time.IsZero(), "kill %d time", i)
	}
}

func TestFixtures(t *testing.T) {
	cgfs := "/kubepods/burstable/pod" + podUID + "/" + ctrID
	sdBurstable := "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + podUID_ + ".slice/cri-containerd-" + ctrID + ".scope"
	tests := []struct {
		file         string
		want         []wantKill
		unrecognized uint64
		duplicates   uint64
	}{
		{file: "v3.10-memcg-cgroupfs.txt", want: []wantKill{{
			pid: 4523, comm: "php-fpm", attributed: true, constraint: ConstraintMemcg, taskMemcg: cgfs, oomMemcg: cgfs,
			kind: kubecgroup.KindContainer, podUID: podUID, containerID: ctrID, anonRSSKB: 64000, invoker: "php-fpm",
		}}},
		{file: "rhel7-memcg-systemd.txt", want: []wantKill{{
			pid: 7001, comm: "celery", attributed: true, constraint: ConstraintMemcg,
			taskMemcg: "/kubepods.slice/kubepods-pod" + podUID_ + ".slice/cri-containerd-" + ctrID + ".scope",
			kind:      kubecgroup.KindContainer, podUID: podUID, containerID: ctrID, uid: OptInt{1000, true}, anonRSSKB: 65024,
		}}},
		{file: "v4.4-memcg-sacrifice-child.txt", want: []wantKill{{
			pid: 3301, comm: "gunicorn", attributed: true, constraint: ConstraintMemcg,
			taskMemcg: "/kubepods/besteffort/pod" + podUID + "/" + ctrID, oomMemcg: "/kubepods/besteffort/pod" + podUID,
			kind: kubecgroup.KindContainer, podUID: podUID, containerID: ctrID,
		}}},
		{file: "v4.14-memcg-reaper.txt", want: []wantKill{{
			pid: 2962, comm: "python3", attributed: true, constraint: ConstraintMemcg, taskMemcg: cgfs,
			kind: kubecgroup.KindContainer, podUID: podUID, containerID: ctrID, anonRSSKB: 65024,
		}}},
		{file: "v4.19-global-nocgroup.txt", want: []wantKill{{
			pid: 8123, comm: "java", attributed: false, constraint: ConstraintUnknown, kind: kubecgroup.KindOther, invoker: "java",
		}}},
		{file: "v4.20-memory-limit-reached.txt", want: []wantKill{{
			// The kernel named only the limit's cgroup, not the victim's.
			pid: 901, comm: "node", attributed: false, constraint: ConstraintMemcg, kind: kubecgroup.KindOther,
			oomMemcg: "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + podUID_ + ".slice/crio-" + ctrID + ".scope",
		}}},
		{file: "v5.0-memcg-summary.txt", want: []wantKill{{
			pid: 2962, comm: "python3", attributed: true, constraint: ConstraintMemcg, taskMemcg: cgfs, oomMemcg: "/kubepods/burstable/pod" + podUID,
			kind: kubecgroup.KindContainer, podUID: podUID, containerID: ctrID, uid: OptInt{0, true},
		}}},
		{file: "v5.2-memcg-prefix.txt", want: []wantKill{{
			pid: 4242, comm: "ruby", attributed: true, constraint: ConstraintMemcg,
			taskMemcg: "/kubepods/besteffort/pod" + podUID + "/crio-" + ctrID,
			kind:      kubecgroup.KindContainer, podUID: podUID, containerID: ctrID, uid: OptInt{1001, true},
		}}},
		{file: "v6.1-global-systemd.txt", want: []wantKill{{
			pid: 61234, comm: "java", attributed: true, constraint: ConstraintSystem, taskMemcg: sdBurstable,
			kind: kubecgroup.KindContainer, podUID: podUID, containerID: ctrID, uid: OptInt{1000, true}, invoker: "kworker/u4:2",
		}}},
		{file: "v6.6-group-kill.txt", duplicates: 1, want: []wantKill{
			{pid: 5001, comm: "uwsgi", attributed: true, constraint: ConstraintMemcg, taskMemcg: sdBurstable, kind: kubecgroup.KindContainer, podUID: podUID, containerID: ctrID},
			{pid: 5000, comm: "uwsgi", attributed: true, group: true, constraint: ConstraintMemcg, taskMemcg: sdBurstable, kind: kubecgroup.KindContainer, podUID: podUID, containerID: ctrID},
			{pid: 5002, comm: "uwsgi", attributed: true, group: true, constraint: ConstraintMemcg, taskMemcg: sdBurstable, kind: kubecgroup.KindContainer, podUID: podUID, containerID: ctrID},
		}},
		{file: "v6.8-rate-limited.txt", want: []wantKill{
			{pid: 3100, comm: "python3", attributed: true, constraint: ConstraintMemcg, taskMemcg: cgfs, kind: kubecgroup.KindContainer, podUID: podUID, containerID: ctrID},
			{pid: 3101, comm: "python3", attributed: false, constraint: ConstraintMemcg, kind: kubecgroup.KindOther},
			{pid: 3102, comm: "python3", attributed: false, constraint: ConstraintMemcg, kind: kubecgroup.KindOther},
		}},
		{file: "not-a-kill.txt"},
		{file: "drift.txt", unrecognized: 4},
		{file: "public-examples.txt", want: []wantKill{
			{
				pid: 1381, comm: "gunpowder-memho", attributed: true, constraint: ConstraintMemcg,
				taskMemcg: "/docker/2e088fe462e25e60be1dafafe2c05c47bda1a97978648d10ad2b7484fc0b8f50",
				kind:      kubecgroup.KindStandaloneContainer, containerID: "2e088fe462e25e60be1dafafe2c05c47bda1a97978648d10ad2b7484fc0b8f50",
			},
			{pid: 2962, comm: "python3", attributed: true, constraint: ConstraintMemcg, taskMemcg: cgfs, kind: kubecgroup.KindContainer, podUID: podUID, containerID: ctrID},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			kills, stats := feedAll(loadFixture(t, fixturePath(tt.file)))
			checkKills(t, tt.want, kills)
			assert.Equal(t, tt.unrecognized, stats.Unrecognized, "unrecognized")
			assert.Equal(t, tt.duplicates, stats.Duplicates, "duplicates")
			assert.Equal(t, uint64(len(tt.want)), stats.Kills, "kills stat")
		})
	}
}
