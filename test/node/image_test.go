//go:build e2enode

// Package node runs the shipped artefacts as a user runs them: the image
// built from the repository's Dockerfile (test/image/build.sh, no registry),
// run the way examples/kubernetes/03-daemonset.yaml runs it, on this
// machine's real journal with real kernel OOM kills. `make e2e-image`.
package node

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/testutil"
)

const (
	memcgRoot    = "/sys/fs/cgroup/memory"
	collectorUID = 10001 // the Dockerfile's USER and the DaemonSet's runAsUser/runAsGroup
	imageName    = "docker.io/library/otelcol-oomkill:0.1.0"
)

// requireMachine checks for what the tests need; CI has it all, so there a
// gap fails instead of skipping.
func requireMachine(t *testing.T, paths ...string) {
	t.Helper()
	var missing []string
	if _, err := os.Stat(filepath.Join(memcgRoot, "memory.limit_in_bytes")); err != nil {
		missing = append(missing, "a cgroup v1 memory controller at "+memcgRoot)
	}
	requireTools(t, missing, paths...)
}

// requireTools: root and the programs at paths, besides what is already
// known to be missing.
func requireTools(t *testing.T, missing []string, paths ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return
	}
	testutil.SkipOrFail(t, "needs "+strings.Join(missing, ", ")+" (Debian: buildah podman debootstrap systemd python3; .ci/run installs them)")
}

// buildImage runs test/image/build.sh (cached; seconds when nothing
// changed) and returns the OCI archive's path.
func buildImage(t *testing.T) string {
	t.Helper()
	cmd := exec.Command(testutil.RepoPath(t, "test/image/build.sh"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	require.NoError(t, err, "test/image/build.sh")
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

// podman runs podman on build.sh's image store.
func podman(args ...string) *exec.Cmd {
	cache := os.Getenv("IMAGE_CACHE")
	if cache == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			home, _ := os.UserHomeDir()
			base = filepath.Join(home, ".cache")
		}
		cache = filepath.Join(base, "otelcol-oomkill", "image")
	}
	global := []string{
		"--root", filepath.Join(cache, "storage"), "--runroot", "/run/otelcol-oomkill-image",
		"--storage-driver", "overlay", "--cgroup-manager", "cgroupfs", "--events-backend", "none",
	}
	return exec.Command("podman", append(global, args...)...)
}

// victim is a container-shaped memory cgroup, named as a kubelet with the
// cgroupfs driver names it, under the test's own prefix.
type victim struct {
	cgroup              *testutil.Cgroup
	podUID, containerID string
}

func newVictim(t *testing.T, cgroups *testutil.Cgroups) *victim {
	t.Helper()
	v := &victim{podUID: testutil.RandomPodUID(), containerID: testutil.RandomHex(32)}
	v.cgroup = cgroups.Make(t, cgroups.Path("/kubepods/burstable/pod"+v.podUID+"/"+v.containerID), 32<<20)
	return v
}

// kill makes the kernel OOM-kill a worker (python3) of a surviving shell.
func (v *victim) kill(t *testing.T) {
	t.Helper()
	v.cgroup.KillWorker(t, "python3")
}

// runArgs are the DaemonSet's securityContext and mounts, in podman's words:
// uid/gid 10001 plus the journal's group, no capabilities, no privilege
// escalation, a read-only root filesystem (and no tmpfs podman would add),
// the journal directories and /etc/machine-id read-only, the config, and the
// checkpoint directory. The rlimits are what this sandbox needs (podman may
// not raise them here); host networking keeps podman from making a bridge,
// and a cgroup parent of the test's own (podman puts conmon below it too)
// is removed afterwards.
func runArgs(name, cgroupParent string, groups []int, configDir, checkpointDir string) []string {
	args := []string{
		"run", "--name", name, "--network", "host", "--log-driver", "k8s-file",
		"--cgroup-parent", cgroupParent,
		"--user", fmt.Sprintf("%d:%d", collectorUID, collectorUID),
	}
	for _, g := range groups {
		args = append(args, "--group-add", strconv.Itoa(g))
	}
	args = append(args, "--read-only", "--read-only-tmpfs=false", "--cap-drop", "ALL",
		"--security-opt", "no-new-privileges",
		"--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096",
		"-v", "/run/log/journal:/run/log/journal:ro",
		"-v", "/etc/machine-id:/etc/machine-id:ro",
		"-v", configDir+":/etc/otelcol-oomkill:ro",
		"-v", checkpointDir+":/var/lib/otelcol-oomkill")
	if _, err := os.Stat("/var/log/journal"); err == nil {
		args = append(args, "-v", "/var/log/journal:/var/log/journal:ro")
	}
	return append(args, imageName) // the image's own ENTRYPOINT and CMD
}

func removeContainer(name string) {
	_ = podman("rm", "-f", "-t", "5", name).Run()
}

// writeConfig is the shipped config (02-configmap.yaml) without k8smeta (no
// API server here), on loopback ports of this test.
func writeConfig(t *testing.T, dir string, promPort, selfPort int) {
	t.Helper()
	cfg := fmt.Sprintf(`
extensions:
  file_storage:
    directory: /var/lib/otelcol-oomkill
    fsync: true
receivers:
  oomkill:
    storage: file_storage
    start_at: end
processors:
  memory_limiter:
    check_interval: 1s
    limit_mib: 150
exporters:
  prometheus:
    endpoint: 127.0.0.1:%d
    resource_constant_labels:
      included: ["*"]
  debug:
    verbosity: basic
service:
  extensions: [file_storage]
  pipelines:
    metrics: {receivers: [oomkill], processors: [memory_limiter], exporters: [prometheus]}
    logs: {receivers: [oomkill], processors: [memory_limiter], exporters: [debug]}
  telemetry:
    metrics:
      readers:
        - pull:
            exporter:
              prometheus: {host: 127.0.0.1, port: %d}
`, promPort, selfPort)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(cfg), 0o644))
}

// count is container_oom_kill_count_total for the victim (-1: no series).
func count(promPort int, v *victim) float64 {
	kills, _ := testutil.Scrape(fmt.Sprintf("http://127.0.0.1:%d/metrics", promPort), "container_oom_kill_count_total")
	for _, s := range kills {
		if s.Labeled(map[string]string{"container_id": v.containerID, "k8s_pod_uid": v.podUID}) {
			return s.Value
		}
	}
	return -1
}

func logs(name string) string {
	out, _ := podman("logs", name).CombinedOutput()
	return string(out)
}

// TestImageAsDaemonSet builds the image from the Dockerfile and runs it as
// the DaemonSet does on this machine's journal: with the wrong group it
// fails at once saying which gid to add; with the journal's group it counts
// a real kernel OOM kill, and a replacement container resumes from the
// checkpoint, counting the kill made while none ran and none twice.
func TestImageAsDaemonSet(t *testing.T) {
	requireMachine(t, "/usr/bin/buildah", "/usr/bin/podman", "/usr/sbin/debootstrap",
		"/lib/systemd/systemd-journald", "/usr/bin/python3")
	buildImage(t)
	cgroups := testutil.NewCgroups(t, "memory")
	j := testutil.Journald(t)

	dir := t.TempDir()
	configDir := filepath.Join(dir, "config")
	checkpointDir := filepath.Join(dir, "checkpoint")
	require.NoError(t, os.Chmod(dir, 0o755))
	require.NoError(t, os.Mkdir(configDir, 0o755))
	require.NoError(t, os.Mkdir(checkpointDir, 0o700))
	require.NoError(t, os.Chown(checkpointDir, collectorUID, collectorUID)) // the init container's chown
	promPort, selfPort := testutil.FreePort(t), testutil.FreePort(t)
	writeConfig(t, configDir, promPort, selfPort)
	name := "otelcol-oomkill-image-" + testutil.RandomHex(4)
	// podman makes the container's and conmon's cgroups below this parent,
	// in every hierarchy; they go with the test's prefix.
	cgroupParent := cgroups.Path("/podman")

	t.Run("wrong journal group fails at start", func(t *testing.T) {
		if j.GID == 0 {
			t.Skip("the running journald's files are root:root; no group to get wrong")
		}
		n := name + "-wrong"
		t.Cleanup(func() { removeContainer(n) })
		// adm (4) only: the group the DaemonSet also lists, but not the journal's here.
		cmd := podman(runArgs(n, cgroupParent, []int{4}, configDir, checkpointDir)...)
		done := make(chan error, 1)
		var out []byte
		go func() { var err error; out, err = cmd.CombinedOutput(); done <- err }()
		select {
		case err := <-done:
			require.Error(t, err, "the collector must not run on an unreadable journal:\n%s", out)
		case <-time.After(2 * time.Minute):
			removeContainer(n)
			t.Fatalf("the collector kept running with a journal it cannot read:\n%s", logs(n))
		}
		assert.Contains(t, string(out), "the journal exists but cannot be read")
		assert.Contains(t, string(out), fmt.Sprintf("add gid %d to the collector's groups", j.GID))
	})

	v := newVictim(t, cgroups)
	start := func(t *testing.T) {
		t.Helper()
		removeContainer(name)
		t.Cleanup(func() { removeContainer(name) })
		args := runArgs(name, cgroupParent, []int{j.GID, 4}, configDir, checkpointDir)
		args = append([]string{args[0], "-d"}, args[1:]...)
		out, err := podman(args...).CombinedOutput()
		require.NoError(t, err, "podman run: %s", out)
		require.Eventually(t, func() bool {
			return strings.Contains(logs(name), "Everything is ready")
		}, 60*time.Second, 200*time.Millisecond, "collector did not start:\n%s", logs(name))
	}
	stop := func(t *testing.T) {
		out, err := podman("stop", "-t", "10", name).CombinedOutput()
		require.NoError(t, err, "%s", out)
	}

	t.Run("counts a kill from the host journal", func(t *testing.T) {
		start(t)
		assertRunsAsDaemonSet(t, name, j.GID)
		v.kill(t)
		require.Eventually(t, func() bool { return count(promPort, v) == 1 }, 30*time.Second, 200*time.Millisecond,
			"container_oom_kill_count_total for the victim; collector log:\n%s", logs(name))
		stop(t)
	})

	t.Run("a replacement resumes from the checkpoint", func(t *testing.T) {
		v.kill(t) // while no collector runs
		start(t)
		require.Eventually(t, func() bool { return count(promPort, v) == 2 }, 30*time.Second, 200*time.Millisecond,
			"the replacement counts the kill made meanwhile; collector log:\n%s", logs(name))
		time.Sleep(3 * time.Second) // nothing more arrives: neither re-read nor counted twice
		assert.Equal(t, 2.0, count(promPort, v))
		stop(t)
	})
}

// assertRunsAsDaemonSet reads the collector's process as the kernel sees it:
// uid/gid 10001 with the journal's group, no capabilities in any set, no new
// privileges, and a read-only root mount.
func assertRunsAsDaemonSet(t *testing.T, name string, journalGID int) {
	t.Helper()
	out, err := podman("inspect", "--format", "{{.State.Pid}}", name).Output()
	require.NoError(t, err)
	pid := strings.TrimSpace(string(out))
	status, err := os.ReadFile("/proc/" + pid + "/status")
	require.NoError(t, err)
	fields := map[string]string{}
	for _, l := range strings.Split(string(status), "\n") {
		if k, val, ok := strings.Cut(l, ":"); ok {
			fields[k] = strings.Join(strings.Fields(val), " ")
		}
	}
	uid := strconv.Itoa(collectorUID)
	assert.Equal(t, strings.Repeat(uid+" ", 3)+uid, fields["Uid"])
	assert.Equal(t, strings.Repeat(uid+" ", 3)+uid, fields["Gid"])
	assert.Contains(t, strings.Fields(fields["Groups"]), strconv.Itoa(journalGID))
	for _, c := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
		assert.Equal(t, "0000000000000000", fields[c], c)
	}
	assert.Equal(t, "1", fields["NoNewPrivs"])
	mounts, err := os.ReadFile("/proc/" + pid + "/mountinfo")
	require.NoError(t, err)
	var rootOpts string
	for _, l := range strings.Split(string(mounts), "\n") {
		f := strings.Fields(l)
		if len(f) > 5 && f[4] == "/" {
			rootOpts = f[5]
		}
	}
	assert.Contains(t, strings.Split(rootOpts, ","), "ro", "root filesystem mount options")
}
