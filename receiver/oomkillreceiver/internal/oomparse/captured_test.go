package oomparse

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/kubecgroup"
)

// TestCapturedFixtures runs reports captured from real OOM kills on this
// kind of machine (testdata/kernel/capture.sh) in kubelet-shaped cgroups.
func TestCapturedFixtures(t *testing.T) {
	tests := []struct {
		file                string
		kills, attributed   int
		pid                 int64
		comm, taskMemcg     string
		kind                kubecgroup.Kind
		podUID, containerID string
	}{
		{
			file: "cgroup_root_prefix.txt", kills: 1, attributed: 1, pid: 20852, comm: "python3", taskMemcg: "/kubelet/kubepods/burstable/podfb736407-a3be-4327-95c4-dd3efa4459c6/0fa5b13fc443e572b4aa88f0ff9e731c8cd3847929b73fb6355ed755b78154ac",
			kind: kubecgroup.KindContainer, podUID: "fb736407-a3be-4327-95c4-dd3efa4459c6", containerID: "0fa5b13fc443e572b4aa88f0ff9e731c8cd3847929b73fb6355ed755b78154ac",
		},
		{
			file: "cgroupfs_besteffort_crio_child.txt", kills: 1, attributed: 1, pid: 20585, comm: "python3", taskMemcg: "/kubepods/besteffort/podc3f58a2f-1762-4085-963a-2f95f3f75899/crio-8ceb7442449a887dbfc9ac395ded9007d83a5d3ca2c0106926bac15a751da49e",
			kind: kubecgroup.KindContainer, podUID: "c3f58a2f-1762-4085-963a-2f95f3f75899", containerID: "8ceb7442449a887dbfc9ac395ded9007d83a5d3ca2c0106926bac15a751da49e",
		},
		{
			file: "cgroupfs_burstable_containerd_child.txt", kills: 1, attributed: 1, pid: 20541, comm: "python3", taskMemcg: "/kubepods/burstable/pod9ebd2433-1942-4ba8-90cd-b72b18948548/e7831b56831a3c461b886f4db7354a0704862a0424627fd35683c2fc57897c6e",
			kind: kubecgroup.KindContainer, podUID: "9ebd2433-1942-4ba8-90cd-b72b18948548", containerID: "e7831b56831a3c461b886f4db7354a0704862a0424627fd35683c2fc57897c6e",
		},
		{
			file: "cgroupfs_guaranteed_main.txt", kills: 1, attributed: 1, pid: 20563, comm: "python3", taskMemcg: "/kubepods/podd66a2e3a-c2bd-4b30-9822-59ad7b76ebd6/5e3a15257ccea8338daa79994b7f4c24e1c532f134d37f065e58a968e395b405",
			kind: kubecgroup.KindContainer, podUID: "d66a2e3a-c2bd-4b30-9822-59ad7b76ebd6", containerID: "5e3a15257ccea8338daa79994b7f4c24e1c532f134d37f065e58a968e395b405",
		},
		{
			file: "hostile_comm_invoked.txt", kills: 1, attributed: 1, pid: 21102, comm: " invoked oom-k", taskMemcg: "/kubepods/burstable/podff87d0d3-7fd3-4d1f-a863-c50a46f9f5c5/82b04cdb8f3be7d059e7d5ab7124ca2402c560670e1eb001fd7431b87bc00c27",
			kind: kubecgroup.KindContainer, podUID: "ff87d0d3-7fd3-4d1f-a863-c50a46f9f5c5", containerID: "82b04cdb8f3be7d059e7d5ab7124ca2402c560670e1eb001fd7431b87bc00c27",
		},
		{
			file: "hostile_comm_killed_process.txt", kills: 1, attributed: 1, pid: 21141, comm: "Killed process", taskMemcg: "/kubepods/burstable/pod0071c552-cebd-4f6b-b112-0203924477d8/edac56a24f68b8356c9e0d336a4c37aed3b7ab89064851bce2f0f8a5d931a95b",
			kind: kubecgroup.KindContainer, podUID: "0071c552-cebd-4f6b-b112-0203924477d8", containerID: "edac56a24f68b8356c9e0d336a4c37aed3b7ab89064851bce2f0f8a5d931a95b",
		},
		{
			file: "hostile_comm_oom_kill.txt", kills: 1, attributed: 1, pid: 21079, comm: "evil oom-kill:", taskMemcg: "/kubepods/burstable/pod70a5b11a-f35d-4cd3-ad92-544b2f529302/3ea56acfd6c018c88b5e16a869c05a318f2ce937ba0e1b1ee47a10e43f560c30",
			kind: kubecgroup.KindContainer, podUID: "70a5b11a-f35d-4cd3-ad92-544b2f529302", containerID: "3ea56acfd6c018c88b5e16a869c05a318f2ce937ba0e1b1ee47a10e43f560c30",
		},
		{
			file: "hostile_comm_pid_uid.txt", kills: 1, attributed: 1, pid: 21010, comm: "a,pid=1,uid=0", taskMemcg: "/kubepods/burstable/pod65cac9df-1f55-494b-a837-98cf6e38dab1/4bc8c04e53344f521e8a20233ac26829eaf7345629081fe10ea3503c42b67a3a",
			kind: kubecgroup.KindContainer, podUID: "65cac9df-1f55-494b-a837-98cf6e38dab1", containerID: "4bc8c04e53344f521e8a20233ac26829eaf7345629081fe10ea3503c42b67a3a",
		},
		{
			file: "hostile_comm_task_evil.txt", kills: 1, attributed: 1, pid: 21056, comm: "x,task=evil", taskMemcg: "/kubepods/burstable/pod3ac081fb-1bf3-4c11-804f-f5b3ad92afdc/940549fea423b220fd55b64e171492e1c82f0cbdbf7f7bf64d7d14d55d9d3e07",
			kind: kubecgroup.KindContainer, podUID: "3ac081fb-1bf3-4c11-804f-f5b3ad92afdc", containerID: "940549fea423b220fd55b64e171492e1c82f0cbdbf7f7bf64d7d14d55d9d3e07",
		},
		{
			file: "hostile_comm_total_vm.txt", kills: 1, attributed: 1, pid: 21033, comm: ") total-vm:1kB", taskMemcg: "/kubepods/burstable/pod07ef12a4-ef17-4afa-84b2-2b15a55cc7c0/194a244d6e9710f37b7c81042c1634db7349dd37391ed0f0e8d8f56e14d363a8",
			kind: kubecgroup.KindContainer, podUID: "07ef12a4-ef17-4afa-84b2-2b15a55cc7c0", containerID: "194a244d6e9710f37b7c81042c1634db7349dd37391ed0f0e8d8f56e14d363a8",
		},
		{
			file: "multi_kill_same_report.txt", kills: 3, attributed: 3, pid: 21164, comm: "python3", taskMemcg: "/kubepods/burstable/pod1a871734-ef54-4ec9-a3b6-76c49414c09b/0288d992a9e9f9a8e97a0bb47abffd515acd11e7556903e1626989132b3a9656",
			kind: kubecgroup.KindContainer, podUID: "1a871734-ef54-4ec9-a3b6-76c49414c09b", containerID: "0288d992a9e9f9a8e97a0bb47abffd515acd11e7556903e1626989132b3a9656",
		},
		{
			file: "plain_docker.txt", kills: 1, attributed: 1, pid: 20940, comm: "python3", taskMemcg: "/docker/7ed259af0b3c0568d6f63bc007198861e5a394378d41c09eec5ff8dee24bb596",
			kind: kubecgroup.KindStandaloneContainer, podUID: "", containerID: "7ed259af0b3c0568d6f63bc007198861e5a394378d41c09eec5ff8dee24bb596",
		},
		{
			file: "pod_limit.txt", kills: 1, attributed: 1, pid: 20702, comm: "python3", taskMemcg: "/kubepods/burstable/pod121bc481-6186-4d27-ac69-1c26ae2abfed/0e8b74b52f2f298f46154fe55b31e7cf7eb91c2f50643abe14ce4d9d7a70a0be",
			kind: kubecgroup.KindContainer, podUID: "121bc481-6186-4d27-ac69-1c26ae2abfed", containerID: "0e8b74b52f2f298f46154fe55b31e7cf7eb91c2f50643abe14ce4d9d7a70a0be",
		},
		{
			file: "rate_limited.txt", kills: 17, attributed: 11, pid: 21209, comm: "python3", taskMemcg: "/kubepods/burstable/pod0efd39fa-bb72-476e-b44a-d2b964c7c202/1ced05f130cb28cad590c80d6d5754f45230ab0fe3351ec8abbeae7b98b10e33",
			kind: kubecgroup.KindContainer, podUID: "0efd39fa-bb72-476e-b44a-d2b964c7c202", containerID: "1ced05f130cb28cad590c80d6d5754f45230ab0fe3351ec8abbeae7b98b10e33",
		},
		{
			file: "system_service.txt", kills: 1, attributed: 1, pid: 20974, comm: "python3", taskMemcg: "/system.slice/oomtest.service",
			kind: kubecgroup.KindOther, podUID: "", containerID: "",
		},
		{
			file: "systemd_besteffort_crio_child.txt", kills: 1, attributed: 1, pid: 20631, comm: "python3", taskMemcg: "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1a7ab7e3_ef29_4cc4_8cb2_5140d32820a9.slice/crio-85c9be50982876b836e690cd35d8ba7bc06d93892d81f572ecf5a69a0871dd9a.scope",
			kind: kubecgroup.KindContainer, podUID: "1a7ab7e3-ef29-4cc4-8cb2-5140d32820a9", containerID: "85c9be50982876b836e690cd35d8ba7bc06d93892d81f572ecf5a69a0871dd9a",
		},
		{
			file: "systemd_burstable_containerd_child.txt", kills: 1, attributed: 1, pid: 20608, comm: "python3", taskMemcg: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podf7935365_b478_41fe_8ad7_8d79328a4a16.slice/cri-containerd-21f39a37bedacc259b250d62a97945c7e06d98fd04e7672736c95113e41658cb.scope",
			kind: kubecgroup.KindContainer, podUID: "f7935365-b478-41fe-8ad7-8d79328a4a16", containerID: "21f39a37bedacc259b250d62a97945c7e06d98fd04e7672736c95113e41658cb",
		},
		{
			file: "systemd_guaranteed_docker_child.txt", kills: 1, attributed: 1, pid: 20680, comm: "python3", taskMemcg: "/kubepods.slice/kubepods-pod23d0d51b_b8fa_41d0_a306_0cc0bd0e066d.slice/docker-9c5ba396c9a52294bc3df3887249ee6785519d77dddc66b1527c32d5debed844.scope",
			kind: kubecgroup.KindContainer, podUID: "23d0d51b-b8fa-41d0-a306-0cc0bd0e066d", containerID: "9c5ba396c9a52294bc3df3887249ee6785519d77dddc66b1527c32d5debed844",
		},
		{
			file: "task_in_pod_cgroup.txt", kills: 1, attributed: 1, pid: 20829, comm: "python3", taskMemcg: "/kubepods/burstable/pod8cbf670e-2f6d-479c-b949-fb5c130fd500",
			kind: kubecgroup.KindPod, podUID: "8cbf670e-2f6d-479c-b949-fb5c130fd500", containerID: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			kills, stats := feedAll(loadFixture(t, fixturePath("captured/"+tt.file)))
			require.Len(t, kills, tt.kills)
			attributed := 0
			for _, k := range kills {
				if k.Attributed {
					attributed++
					// Every attributed kill names the scenario's cgroup.
					assert.Equal(t, tt.taskMemcg, k.TaskMemcg)
					assert.Equal(t, tt.kind, k.Cgroup.Kind)
					assert.Equal(t, tt.podUID, k.Cgroup.PodUID)
					assert.Equal(t, tt.containerID, k.Cgroup.ContainerID)
				} else {
					assert.Equal(t, kubecgroup.KindOther, k.Cgroup.Kind)
				}
				assert.Equal(t, ConstraintMemcg, k.Constraint)
				assert.Equal(t, tt.comm, k.Comm)
				assert.Equal(t, OptInt{0, true}, k.UID)
			}
			assert.Equal(t, tt.attributed, attributed, "attributed kills")
			assert.Equal(t, tt.pid, kills[0].PID)
			assert.True(t, kills[0].Attributed)
			assert.Equal(t, uint64(0), stats.Unrecognized, "unrecognized lines")
			assert.Equal(t, uint64(0), stats.Duplicates)
		})
	}
}
