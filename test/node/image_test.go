//go:build e2enode

// Package node runs the shipped artefacts as a user runs them: the image
// built from the repository's Dockerfile (test/image/build.sh, no registry),
// run the way examples/kubernetes/03-daemonset.yaml runs it, on this
// machine's real journal with real kernel OOM kills. `make e2e-image`.
package node

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/journaltest"
)

const (
	memcgRoot    = "/sys/fs/cgroup/memory"
	collectorUID = 10001 // the Dockerfile's USER and the DaemonSet's runAsUser/runAsGroup
	imageName    = "docker.io/library/otelcol-oomkill:0.1.0"
)

func repoPath(t *testing.T, rel string) string {
	p, err := filepath.Abs(filepath.Join("..", "..", rel))
	require.NoError(t, err)
	return p
}

// requireMachine checks for what the tests need; CI has it all, so there a
// gap fails instead of skipping.
func requireMachine(t *testing.T, paths ...string) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	if _, err := os.Stat(filepath.Join(memcgRoot, "memory.limit_in_bytes")); err != nil {
		missing = append(missing, "a cgroup v1 memory controller at "+memcgRoot)
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := "needs " + strings.Join(missing, ", ") + " (Debian: buildah podman debootstrap systemd python3; .ci/run installs them)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// buildImage runs test/image/build.sh (cached; seconds when nothing
// changed) and returns the OCI archive's path.
func buildImage(t *testing.T) string {
	t.Helper()
	cmd := exec.Command(repoPath(t, "test/image/build.sh"))
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

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// hostJournal is the node's volatile journal, written by a real
// systemd-journald from /dev/kmsg.
type hostJournal struct {
	gid int // the group that may read it
}

// ensureJournald uses the systemd-journald that runs, or starts one laid out
// as systemd-tmpfiles lays out a node's journal (/run/log/journal 2755 and
// its machine-id directory 2750, root:systemd-journal, so the files are
// 0640 root:systemd-journal). One it started is stopped, and its journal
// removed, when the test ends.
func ensureJournald(t *testing.T) hostJournal {
	t.Helper()
	mid, err := os.ReadFile("/etc/machine-id")
	require.NoError(t, err, "the host's /etc/machine-id")
	midDir := filepath.Join("/run/log/journal", strings.TrimSpace(string(mid)))
	if journaltest.JournaldRunning() {
		var st syscall.Stat_t
		require.NoError(t, syscall.Stat(midDir, &st), "a systemd-journald runs; its journal")
		t.Logf("using the systemd-journald already running (%s group %d)", midDir, st.Gid)
		return hostJournal{gid: int(st.Gid)}
	}
	g, err := user.LookupGroup("systemd-journal")
	require.NoError(t, err, "the systemd-journal group (Debian package systemd)")
	gid, _ := strconv.Atoi(g.Gid)
	_, statErr := os.Stat("/run/log/journal")
	ours := os.IsNotExist(statErr)
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{"/run/log/journal", 0o755}, {midDir, 0o750}} {
		require.NoError(t, os.MkdirAll(d.path, 0o700))
		require.NoError(t, os.Chown(d.path, 0, gid))
		require.NoError(t, os.Chmod(d.path, d.mode|os.ModeSetgid))
	}
	require.NoError(t, os.MkdirAll("/run/systemd/journal", 0o755))
	cmd := exec.Command("/lib/systemd/systemd-journald")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if ours {
			_ = os.RemoveAll("/run/log/journal")
		}
	})
	marker := "otelcol-oomkill image test marker " + randHex(8)
	require.NoError(t, os.WriteFile("/dev/kmsg", []byte(marker+"\n"), 0))
	require.Eventually(t, func() bool {
		out, _ := exec.Command("journalctl", "-D", "/run/log/journal", "--no-pager", "-n", "20").CombinedOutput()
		return strings.Contains(string(out), marker)
	}, 20*time.Second, 100*time.Millisecond, "journald did not record the marker")
	var st syscall.Stat_t
	require.NoError(t, syscall.Stat(filepath.Join(midDir, "system.journal"), &st))
	require.Equal(t, uint32(gid), st.Gid, "journald's file inherits the directory's group, as on a node")
	require.Equal(t, uint32(0o640), st.Mode&0o7777, "journald's file mode")
	return hostJournal{gid: gid}
}

// victim is a container-shaped memory cgroup, named as a kubelet with the
// cgroupfs driver names it, under a prefix of this test's own.
type victim struct {
	dir, podUID, containerID string
}

func newVictim(t *testing.T, prefix string) *victim {
	t.Helper()
	u := randHex(16)
	v := &victim{podUID: u[:8] + "-" + u[8:12] + "-" + u[12:16] + "-" + u[16:20] + "-" + u[20:], containerID: randHex(32)}
	top := filepath.Join(memcgRoot, prefix)
	v.dir = filepath.Join(top, "kubepods", "burstable", "pod"+v.podUID, v.containerID)
	require.NoError(t, os.MkdirAll(v.dir, 0o755))
	t.Cleanup(func() {
		for d := v.dir; d != memcgRoot; d = filepath.Dir(d) { // innermost first
			_ = os.Remove(d)
		}
	})
	require.NoError(t, os.WriteFile(filepath.Join(v.dir, "memory.limit_in_bytes"), []byte(strconv.Itoa(32<<20)), 0o644))
	return v
}

// kill makes the kernel OOM-kill a worker (python3) of a surviving shell.
func (v *victim) kill(t *testing.T) {
	t.Helper()
	script := fmt.Sprintf(`echo $$ > %s/cgroup.procs; python3 -c 'b = bytearray(200 << 20)' & wait $!; echo status=$?`, v.dir)
	out, err := exec.Command("bash", "-c", script).Output()
	require.NoError(t, err)
	require.Contains(t, string(out), "status=137", "the worker was killed by SIGKILL")
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

// removeCgroupTree removes a cgroup and its children in every hierarchy,
// innermost first.
func removeCgroupTree(rel string) {
	hs, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, h := range hs {
		var dirs []string
		_ = filepath.WalkDir(filepath.Join(h, rel), func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			_ = os.Remove(dirs[i])
		}
	}
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
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", promPort))
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "container_oom_kill_count_total{") &&
			strings.Contains(l, `container_id="`+v.containerID+`"`) && strings.Contains(l, `k8s_pod_uid="`+v.podUID+`"`) {
			f, err := strconv.ParseFloat(l[strings.LastIndex(l, " ")+1:], 64)
			if err == nil {
				return f
			}
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
	j := ensureJournald(t)

	dir := t.TempDir()
	configDir := filepath.Join(dir, "config")
	checkpointDir := filepath.Join(dir, "checkpoint")
	require.NoError(t, os.Chmod(dir, 0o755))
	require.NoError(t, os.Mkdir(configDir, 0o755))
	require.NoError(t, os.Mkdir(checkpointDir, 0o700))
	require.NoError(t, os.Chown(checkpointDir, collectorUID, collectorUID)) // the init container's chown
	promPort, selfPort := freePort(t), freePort(t)
	writeConfig(t, configDir, promPort, selfPort)
	prefix := "otelcol-oomkill-image-" + randHex(4)
	name := prefix
	cgroupParent := "/" + prefix + "-podman"
	t.Cleanup(func() { removeCgroupTree(cgroupParent) })

	t.Run("wrong journal group fails at start", func(t *testing.T) {
		if j.gid == 0 {
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
		assert.Contains(t, string(out), fmt.Sprintf("add gid %d to the collector's groups", j.gid))
	})

	v := newVictim(t, prefix)
	start := func(t *testing.T) {
		t.Helper()
		removeContainer(name)
		t.Cleanup(func() { removeContainer(name) })
		args := runArgs(name, cgroupParent, []int{j.gid, 4}, configDir, checkpointDir)
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
		assertRunsAsDaemonSet(t, name, j.gid)
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
