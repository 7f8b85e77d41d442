//go:build linux

package kubenode

import (
	"context"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/kernellab"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/testutil"
)

// The guest node's network: a tap device on Bridge (the host keeps
// Gateway), the guest at GuestIP, its pods on GuestPodSubnet behind it (the
// host routes that subnet to the guest, so Prometheus reaches the pods and
// the API server reaches the kubelet; the pods reach the API server through
// the Chain's DNAT of ServiceIP on the host).
const (
	Tap            = "oomkn0tap"
	GuestIP        = "10.244.77.2"
	GuestPodSubnet = "10.244.78.0/24"
	guestPodGW     = "10.244.78.1"
	guestMAC       = "52:54:00:6f:6f:6d"
)

//go:embed guestnode.sh
var guestScript string

//go:embed node.sh
var guestLib []byte

// GuestOptions is a node in the kernel lab (StartInGuest).
type GuestOptions struct {
	Kernel kernellab.Kernel
	// Images are OCI archives imported into the guest's containerd.
	Images []string
	// CPUs and MemoryMB size the guest (default 2 and 3072).
	CPUs, MemoryMB int
	// Timeout bounds the guest's whole life (default 40 min).
	Timeout time.Duration
	// CgroupDriver is the kubelet's and containerd's: cgroupfs (default),
	// or systemd, which runs systemd as the guest's PID 1.
	CgroupDriver string
}

// RequireGuest checks what a node in the kernel lab needs from the machine.
func RequireGuest(t testing.TB) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	if err := kernellab.Check(); err != nil {
		missing = append(missing, err.Error())
	}
	for _, p := range append(guestBinaries(), "/dev/net/tun", "/usr/sbin/iptables", "/usr/sbin/ip") {
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		testutil.SkipOrFail(t, "the node in the kernel lab needs "+strings.Join(missing, ", ")+
			" (Debian: qemu-system-x86 containerd runc containernetworking-plugins iptables iproute2; .ci/run installs them)")
	}
}

// guestBinaries are the host's programs the guest runs (with their
// libraries): Debian's containerd, runc and CNI plugins.
func guestBinaries() []string {
	return []string{
		"/usr/bin/containerd", "/usr/bin/containerd-shim-runc-v2", "/usr/bin/ctr", "/usr/sbin/runc",
		"/usr/lib/cni/bridge", "/usr/lib/cni/host-local", "/usr/lib/cni/loopback",
	}
}

// StartInGuest brings up a node whose kubelet, containerd and runc run in a
// kernel-lab guest (cgroup v2 only) while etcd, the API server, the
// controller manager and the scheduler run on this machine, and waits until
// the node is Ready. The kubelet's configuration is the default one
// (memory.oom.group=1 on every container); RestartKubelet changes it.
func StartInGuest(t testing.TB, opts GuestOptions) *Node {
	t.Helper()
	RequireGuest(t)
	if opts.CPUs == 0 {
		opts.CPUs = 2
	}
	if opts.MemoryMB == 0 {
		opts.MemoryMB = 3072
	}
	if opts.Timeout == 0 {
		opts.Timeout = 40 * time.Minute
	}
	n := &Node{t: t, Bins: BinDir(t), token: "oomkill-node-" + testutil.RandomHex(8)}
	if err := Cleanup(t.Logf); err != nil {
		t.Fatalf("leftovers of an earlier run: %v", err)
	}
	t.Cleanup(n.teardown)
	for _, d := range []string{"etc", "logs", "pids"} {
		must(t, os.MkdirAll(filepath.Join(Base, d), 0o755))
	}
	must(t, guestNetwork())
	start := time.Now()
	n.startControlPlane()
	t.Logf("control plane up in %s", time.Since(start).Round(100*time.Millisecond))

	systemd := opts.CgroupDriver == "systemd"
	files, err := n.guestFiles(opts.Images, systemd)
	must(t, err)
	g, err := kernellab.Start(context.Background(), kernellab.Config{
		Kernel:    opts.Kernel,
		Script:    guestScript,
		Files:     files,
		CPUs:      opts.CPUs,
		MemoryMB:  opts.MemoryMB,
		Timeout:   opts.Timeout,
		Modules:   []string{"virtio_net", "bridge", "veth", "overlay"},
		TmpfsRoot: true,
		Systemd:   systemd,
		Control:   true,
		Net: []string{
			"-netdev", "tap,id=n0,ifname=" + Tap + ",script=no,downscript=no",
			"-device", "virtio-net-pci,netdev=n0,mac=" + guestMAC,
		},
	})
	must(t, err)
	n.guest = g
	booted := time.Now()
	n.waitNodeReady()
	t.Logf("node %s Ready %s after the guest started (%s)", NodeName, time.Since(booted).Round(time.Second), guestProgress(g.Console()))
	return n
}

// guestNetwork: the bridge with the host's address, the tap the guest's
// NIC will use, the route to the guest's pods, and the Chain.
func guestNetwork() error {
	cmds := [][]string{
		{"ip", "link", "add", Bridge, "type", "bridge"},
		{"ip", "addr", "add", Gateway + "/24", "dev", Bridge},
		{"ip", "link", "set", Bridge, "up"},
		{"ip", "tuntap", "add", "dev", Tap, "mode", "tap"},
		{"ip", "link", "set", Tap, "master", Bridge},
		{"ip", "link", "set", Tap, "up"},
		{"ip", "route", "add", GuestPodSubnet, "via", GuestIP, "dev", Bridge},
		{"iptables", "-w", "-t", "nat", "-N", Chain},
		{"iptables", "-w", "-t", "nat", "-I", "PREROUTING", "-j", Chain},
		{"iptables", "-w", "-t", "nat", "-I", "OUTPUT", "-j", Chain},
	}
	for _, c := range cmds {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %w: %s", strings.Join(c, " "), err, out)
		}
	}
	return nil
}

// guestFiles are what the guest gets besides the lab's base: the runtime's
// programs, the kubelet, the node's configuration and the images.
func (n *Node) guestFiles(images []string, systemd bool) ([]kernellab.File, error) {
	var files []kernellab.File
	for _, b := range guestBinaries() {
		fs, err := kernellab.HostBinary(b, b)
		if err != nil {
			return nil, err
		}
		files = append(files, fs...)
	}
	files = append(files, kernellab.File{Path: "/usr/bin/kubelet", Source: filepath.Join(n.Bins, "kubelet"), Mode: 0o755})
	for _, img := range images {
		files = append(files, kernellab.File{Path: "/lab/images/" + filepath.Base(img), Source: img, Mode: 0o644})
	}
	ca, err := os.ReadFile(n.path("etc/ca.crt"))
	if err != nil {
		return nil, err
	}
	kubeconfig := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: node
  cluster:
    server: https://%s:%d
    certificate-authority-data: %s
users:
- name: kubelet
  user:
    token: %s
contexts:
- name: node
  context: {cluster: node, user: kubelet}
current-context: node
`, Gateway, n.apiPort, base64.StdEncoding.EncodeToString(ca), n.token)
	env := fmt.Sprintf("NODE_NAME=%s\nNODE_IP=%s\nNODE_GATEWAY=%s\n", NodeName, GuestIP, Gateway)
	cni := fmt.Sprintf(`{"cniVersion": "0.4.0", "name": "oomkill-node", "plugins": [{
  "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false,
  "ipam": {"type": "host-local",
           "ranges": [[{"subnet": %q, "gateway": %q}]],
           "routes": [{"dst": "0.0.0.0/0"}]}}]}`, GuestPodSubnet, guestPodGW)
	files = append(files,
		kernellab.File{Path: "/lab/node.sh", Data: guestLib},
		kernellab.File{Path: "/etc/kubenode/env", Data: []byte(env)},
		kernellab.File{Path: "/etc/kubenode/containerd.toml", Data: []byte(fmt.Sprintf(guestContainerdConfig, systemd))},
		kernellab.File{Path: "/etc/kubenode/kubelet.yaml", Data: []byte(guestKubelet(false, systemd).yaml())},
		kernellab.File{Path: "/etc/kubenode/kubelet-single-process-oom-kill.yaml", Data: []byte(guestKubelet(true, systemd).yaml())},
		kernellab.File{Path: "/etc/kubenode/kubelet.kubeconfig", Data: []byte(kubeconfig)},
		kernellab.File{Path: "/etc/cni/net.d/10-oomkill-node.conflist", Data: []byte(cni)},
		kernellab.File{Path: "/etc/hosts", Data: []byte("127.0.0.1 localhost\n" + GuestIP + " " + NodeName + "\n")},
	)
	return files, nil
}

// guestKubelet is the guest's kubelet: its defaults (cgroup root /,
// /var/lib/kubelet, containerd's default socket) on cgroup v2.
func guestKubelet(singleProcessOOMKill, systemd bool) kubeletConfig {
	driver := "cgroupfs"
	if systemd {
		driver = "systemd"
	}
	return kubeletConfig{
		CgroupDriver: driver,
		Socket:       "/run/containerd/containerd.sock", Address: GuestIP, Port: 10250, HealthzPort: 10248,
		SingleProcessOOMKill: singleProcessOOMKill,
	}
}

// guestContainerdConfig: containerd's defaults but for the pause image (a
// local one), the CNI plugins' directory (Debian's) and the cgroup driver
// (SystemdCgroup).
const guestContainerdConfig = `version = 2
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.local/otelcol-oomkill-test/pause:1"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = %t
`

// GuestExec runs a shell script as root in the node's guest (with
// /lab/node.sh sourced) and returns its output; a non-zero exit fails the
// test.
func (n *Node) GuestExec(script string) string {
	n.t.Helper()
	out, rc, err := n.guestExec(script)
	if err != nil || rc != 0 {
		n.t.Fatalf("in the guest: %q: exit %d, %v\n%s", script, rc, err, out)
	}
	return string(out)
}

// GuestOutput runs a shell script as GuestExec does but fails nothing:
// for a failing test's own diagnostics, where the guest may be gone and
// a subtest must not fail its parent.
func (n *Node) GuestOutput(script string) (string, error) {
	out, rc, err := n.guestExec(script)
	if err == nil && rc != 0 {
		err = fmt.Errorf("exit %d", rc)
	}
	return string(out), err
}

func (n *Node) guestExec(script string) ([]byte, int, error) {
	if n.guest == nil {
		return nil, -1, errors.New("kubenode: not a node in the kernel lab")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	return n.guest.Exec(ctx, ". /lab/node.sh\n"+script)
}

// RestartKubelet restarts the guest's kubelet with singleProcessOOMKill as
// given (false: the default configuration) and waits until the node is
// Ready again. Running containers keep their cgroup settings; new ones get
// the new setting.
func (n *Node) RestartKubelet(singleProcessOOMKill bool) {
	n.t.Helper()
	cfg := "/etc/kubenode/kubelet.yaml"
	if singleProcessOOMKill {
		cfg = "/etc/kubenode/kubelet-single-process-oom-kill.yaml"
	}
	n.GuestExec("node_kubelet_stop; node_kubelet_start " + cfg)
	time.Sleep(2 * time.Second) // the old kubelet's last Ready heartbeat may still stand
	n.waitNodeReady()
}

// guestProgress is the guest's own timeline (its uptime at each step).
func guestProgress(console []byte) string {
	var steps []string
	for _, l := range strings.Split(strings.ReplaceAll(string(console), "\r", ""), "\n") {
		if i := strings.Index(l, "kubenode: ["); i >= 0 {
			steps = append(steps, l[i+len("kubenode: "):])
		} else if i := strings.Index(l, "kernellab: ["); i >= 0 {
			steps = append(steps, l[i+len("kernellab: "):])
		}
	}
	return strings.Join(steps, "; ")
}

// stopGuest stops the guest's node and logs its timeline and memory, and
// what it left (the tails of containerd's and the kubelet's logs) when the
// test failed.
func (n *Node) stopGuest() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := n.guest.Stop(ctx)
	if res == nil {
		n.t.Errorf("guest: %v", err)
		return
	}
	n.t.Logf("guest ran %s: %s; memory at the end: %s", res.Boot.Round(time.Second), guestProgress(res.Console), res.Outputs["memory"])
	if err != nil {
		n.t.Errorf("guest: %v", err)
	}
	if n.t.Failed() || err != nil {
		for _, name := range res.OutputNames() {
			if name != "memory" {
				n.t.Logf("guest %s:\n%s", name, res.Outputs[name])
			}
		}
	}
}
