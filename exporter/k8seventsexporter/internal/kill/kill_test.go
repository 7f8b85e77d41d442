package kill

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

const ctr64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestScopeOf(t *testing.T) {
	const uid = "6f0e4e8a-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
	ctr := "/kubepods/burstable/pod" + uid + "/" + ctr64
	systemd := "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod6f0e4e8a_1c2d_4e5f_8a9b_0c1d2e3f4a5b.slice"
	for _, tc := range []struct {
		constraint, memcg, cgroup string
		want                      Scope
	}{
		{"memcg", ctr, ctr, ScopeContainer},
		{"memcg", "/kubepods/burstable/pod" + uid, ctr, ScopePod},
		{"memcg", systemd, systemd + "/cri-containerd-" + ctr64 + ".scope", ScopePod},
		{"memcg", systemd + "/cri-containerd-" + ctr64 + ".scope", systemd + "/cri-containerd-" + ctr64 + ".scope", ScopeContainer},
		{"memcg", "/kubepods/burstable", ctr, ScopeMemcg},
		{"memcg", "", ctr, ScopeMemcg},
		{"system", "", ctr, ScopeNode},
		{"cpuset", "", ctr, ScopeCpuset},
		{"mempolicy", "", ctr, ScopeMempolicy},
		{"unknown", "", "", ScopeUnknown},
		{"", "", "", ScopeUnknown},
	} {
		assert.Equal(t, tc.want, scopeOf(tc.constraint, tc.memcg, tc.cgroup, ctr64, uid), "%s %s", tc.constraint, tc.memcg)
	}
}
