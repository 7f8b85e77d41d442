//go:build e2ecluster

package kubenode

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestNodeRunsPodAndLeavesNothing starts the node, runs a pod on it and
// checks that the teardown leaves nothing behind.
func TestNodeRunsPodAndLeavesNothing(t *testing.T) {
	Require(t)
	BinDir(t)
	out, err := exec.Command("../../image/node-images.sh").Output()
	if err != nil {
		t.Fatalf("node-images.sh: %v", err)
	}
	images := strings.Fields(string(out))
	t.Run("node", func(t *testing.T) {
		n := Start(t, images...)
		ctx := context.Background()
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: "default"},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "hello", Image: "registry.local/otelcol-oomkill-test/busybox:1",
				Command: []string{"/bin/sh", "-c", "sleep 3600"},
			}}, TerminationGracePeriodSeconds: new(int64)},
		}
		if _, err := n.Client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(2 * time.Minute)
		for {
			p, err := n.Client.CoreV1().Pods("default").Get(ctx, "hello", metav1.GetOptions{})
			if err == nil && p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" {
				t.Logf("pod running, IP %s, container %s", p.Status.PodIP, p.Status.ContainerStatuses[0].ContainerID)
				break
			}
			if time.Now().After(deadline) {
				out, _ := n.Kubectl("get", "pods,events", "-A", "-o", "wide")
				t.Fatalf("pod not running:\n%s", out)
			}
			time.Sleep(time.Second)
		}
		// The cgroup is where the kubelet's cgroupRoot says.
		matches, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/memory", CgroupPrefix, "kubepods", "besteffort", "pod*"))
		if len(matches) == 0 {
			t.Errorf("no pod cgroup under /%s/kubepods/besteffort", CgroupPrefix)
		}
	})
	if left := Leftovers(); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}
