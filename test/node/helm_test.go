//go:build e2enode && e2ecluster

package node

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/kubenode"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/testutil"
)

// helmReplacesKustomize swaps the collector installed by `kubectl apply -k`
// for the chart installed by `helm install` as the README says (with this
// node's journal group), and checks that the chart's collector counts a
// worker's kill in the running workload with the pod's names. The
// checkpoint on the node's hostPath carries over, as on an upgrade.
func helmReplacesKustomize(t *testing.T, n *kubenode.Node, example string, gid int, prom *prometheus, old string) {
	t.Helper()
	ctx := context.Background()
	// The namespace stays (the chart does not own it: --create-namespace
	// keeps an existing one); the cluster-scoped RBAC would collide.
	out, err := n.Kubectl("delete", "--wait=true", "--timeout=2m",
		"-f", filepath.Join(example, "01-rbac.yaml"), "-f", filepath.Join(example, "02-configmap.yaml"), "-f", filepath.Join(example, "03-daemonset.yaml"))
	require.NoError(t, err, "kubectl delete the kustomize install:\n%s", out)
	require.Eventually(t, func() bool {
		pods, listErr := n.Client.CoreV1().Pods(collectorNS).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=otelcol-oomkill"})
		return listErr == nil && len(pods.Items) == 0
	}, 2*time.Minute, time.Second, "the kustomize collector's pods are gone; %s", describe(n, collectorNS))

	helm := helmBinary(t)
	cmd := exec.Command(helm, "install", "otelcol-oomkill", testutil.RepoPath(t, "charts/otelcol-oomkill"),
		"--kubeconfig", n.Kubeconfig, "--namespace", collectorNS, "--create-namespace",
		"--set", fmt.Sprintf("journal.groupIDs={%d,4}", gid), "--wait", "--timeout", "4m")
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "helm install:\n%s\n%s", b, describe(n, collectorNS))
	t.Logf("helm install:\n%s", b)
	require.Contains(t, string(b), "Check that it works", "NOTES.txt")

	ds, err := n.Client.AppsV1().DaemonSets(collectorNS).Get(ctx, "otelcol-oomkill", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, "Helm", ds.Labels["app.kubernetes.io/managed-by"], "the chart's DaemonSet")
	collector := waitCollector(t, n, old)
	prom.retarget(t, collector)
}

// helmBinary is the helm that test/helmbin/build.sh built (cached; it
// builds it when missing).
func helmBinary(t *testing.T) string {
	t.Helper()
	cmd := exec.Command(testutil.RepoPath(t, "test/helmbin/build.sh"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "test/helmbin/build.sh: %s", stderr.String())
	return strings.TrimSpace(string(out))
}
