//go:build linux && e2enode

package manifests

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/kubeapitest"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/kubenode"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/testutil"
)

// The /dev/kmsg overlay, rendered by kubectl's kustomize as `kubectl apply
// -k examples/kubernetes-kmsg` renders it, is accepted by a real API server
// and says what its README says: the node's /dev/kmsg and no journal,
// uid 0 with CAP_SYSLOG as the only capability, read-only root, no
// privilege escalation, the receiver on source kmsg. With the privileged
// component, the container is privileged. kubectl comes with the node
// binaries (test/k8sbin/build.sh node; make e2e-node runs this).
func TestKmsgOverlay(t *testing.T) {
	kubectl := filepath.Join(kubenode.BinDir(t), "kubectl")
	render := func(dir string) [][]byte {
		out, err := exec.Command(kubectl, "kustomize", dir).Output()
		require.NoError(t, err, "kubectl kustomize %s", dir)
		return bytes.Split(out, []byte("\n---"))
	}
	overlay := testutil.RepoPath(t, "examples/kubernetes-kmsg")
	docs := render(overlay)
	require.GreaterOrEqual(t, dryRun(t, kubeapitest.Start(t), docs), 6)

	var ds appsv1.DaemonSet
	var cm corev1.ConfigMap
	for _, d := range docs {
		switch {
		case bytes.Contains(d, []byte("\nkind: DaemonSet")):
			require.NoError(t, yaml.Unmarshal(d, &ds))
		case bytes.Contains(d, []byte("\nkind: ConfigMap")):
			require.NoError(t, yaml.Unmarshal(d, &cm))
		}
	}
	pod := ds.Spec.Template.Spec
	require.Len(t, pod.Containers, 1)
	c := pod.Containers[0]
	assert.Equal(t, int64(0), *pod.SecurityContext.RunAsUser)
	assert.Empty(t, pod.SecurityContext.SupplementalGroups)
	assert.Equal(t, []corev1.Capability{"ALL"}, c.SecurityContext.Capabilities.Drop)
	assert.Equal(t, []corev1.Capability{"SYSLOG"}, c.SecurityContext.Capabilities.Add)
	assert.True(t, *c.SecurityContext.ReadOnlyRootFilesystem)
	assert.False(t, *c.SecurityContext.AllowPrivilegeEscalation)
	assert.Nil(t, c.SecurityContext.Privileged)
	assert.Equal(t, []string{"--config=/etc/otelcol-oomkill/config.yaml", "--config=/etc/otelcol-oomkill/kmsg.yaml"}, c.Args)
	assert.Contains(t, cm.Data["kmsg.yaml"], "source: kmsg")
	var hostPaths []string
	for _, v := range pod.Volumes {
		if v.HostPath != nil {
			hostPaths = append(hostPaths, v.HostPath.Path)
			if v.HostPath.Path == "/dev/kmsg" {
				assert.Equal(t, corev1.HostPathCharDev, *v.HostPath.Type)
			}
		}
	}
	// /proc: the host's, read-only, where the outcome stage sees the victims.
	assert.ElementsMatch(t, []string{"/dev/kmsg", "/sys/fs/cgroup", "/proc", "/var/lib/otelcol-oomkill"}, hostPaths, "no journal, no machine-id")
	for _, m := range c.VolumeMounts {
		if m.MountPath == "/dev/kmsg" {
			assert.True(t, m.ReadOnly)
		}
		assert.False(t, strings.Contains(m.MountPath, "journal"), "journal mount %s left", m.MountPath)
	}

	// The privileged component, as its comment says to enable it.
	// kustomize takes only relative paths to other kustomizations.
	dir := t.TempDir()
	abs, err := filepath.Abs(overlay)
	require.NoError(t, err)
	rel, err := filepath.Rel(dir, abs)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte("resources: ["+rel+"]\ncomponents: ["+filepath.Join(rel, "privileged")+"]\n"), 0o600))
	for _, d := range render(dir) {
		if bytes.Contains(d, []byte("\nkind: DaemonSet")) {
			require.NoError(t, yaml.Unmarshal(d, &ds))
			assert.True(t, *ds.Spec.Template.Spec.Containers[0].SecurityContext.Privileged)
		}
	}
}
