package kubecgroup

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

const (
	uid  = "1f6a2c3e-8b4d-4e5f-9a0b-123456789abc"
	uid_ = "1f6a2c3e_8b4d_4e5f_9a0b_123456789abc" //nolint:revive // uid spelled with underscores, as systemd slice names carry it
	id   = "94fa0437bf378ced2c1cd2f9cb3eccb62ae833f896541a9407e69ebe3c03ec57"
)

func TestParse(t *testing.T) {
	container := func(qos, rt string) Ref {
		return Ref{Kind: KindContainer, PodUID: uid, ContainerID: id, QoSClass: qos, Runtime: rt}
	}
	pod := func(qos string) Ref { return Ref{Kind: KindPod, PodUID: uid, QoSClass: qos} }
	tests := []struct {
		path string
		want Ref
	}{
		// cgroupfs driver
		{"/kubepods/pod" + uid + "/" + id, container("guaranteed", "")},
		{"/kubepods/burstable/pod" + uid + "/" + id, container("burstable", "")},
		{"/kubepods/besteffort/pod" + uid + "/" + id, container("besteffort", "")},
		{"/kubepods/besteffort/pod" + uid + "/crio-" + id, container("besteffort", "cri-o")},
		// systemd driver
		{"/kubepods.slice/kubepods-pod" + uid_ + ".slice/cri-containerd-" + id + ".scope", container("guaranteed", "containerd")},
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uid_ + ".slice/cri-containerd-" + id + ".scope", container("burstable", "containerd")},
		{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uid_ + ".slice/crio-" + id + ".scope", container("besteffort", "cri-o")},
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uid_ + ".slice/docker-" + id + ".scope", container("burstable", "docker")},
		// prefixes before the kubepods part: --cgroup-root, kind nodes
		{"/kubelet/kubepods/burstable/pod" + uid + "/" + id, container("burstable", "")},
		{"/docker/" + id + "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod" + uid_ + ".slice/cri-containerd-" + id + ".scope", container("besteffort", "containerd")},
		// cgroup v2 nested below the container: still the container
		{"/kubepods.slice/kubepods-pod" + uid_ + ".slice/cri-containerd-" + id + ".scope/init", container("guaranteed", "containerd")},
		// pod without container level
		{"/kubepods/burstable/pod" + uid, pod("burstable")},
		{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uid_ + ".slice", pod("besteffort")},
		{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uid_ + ".slice/crio-conmon-" + id + ".scope", pod("besteffort")},
		// plain Docker
		{"/docker/" + id, Ref{Kind: KindStandaloneContainer, ContainerID: id, Runtime: "docker"}},
		{"/system.slice/docker-" + id + ".scope", Ref{Kind: KindStandaloneContainer, ContainerID: id, Runtime: "docker"}},
		// not containers
		{"/system.slice/kubelet.service", Ref{Kind: KindOther}},
		{"/user.slice/user-1000.slice/session-2.scope", Ref{Kind: KindOther}},
		{"/", Ref{Kind: KindOther}},
		{"", Ref{Kind: KindOther}},
		{"/kubepods", Ref{Kind: KindOther}},
		{"/kubepods/burstable", Ref{Kind: KindOther}},
		{"/kubepods/burstable/podnot-a-uid/" + id, Ref{Kind: KindOther}},
		{"/kubepods/burstable/pod" + uid + "/" + id[:63], pod("burstable")},
		{"/kubepods/burstable/pod" + uid + "/" + "ABCDEF" + id[6:], pod("burstable")},
		{"/docker/notanid", Ref{Kind: KindOther}},
		// a cgroup named like kubepods inside a container cannot move attribution
		{"/kubepods/burstable/pod" + uid + "/" + id + "/kubepods/pod00000000-0000-0000-0000-000000000000/" + id, container("burstable", "")},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, Parse(tt.path), tt.path)
	}
}

func BenchmarkParse(b *testing.B) {
	p := "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uid_ + ".slice/cri-containerd-" + id + ".scope"
	b.ReportAllocs()
	for b.Loop() {
		_ = Parse(p)
	}
}
