//go:build linux

// Package kubenode runs a real single-node Kubernetes cluster on this
// machine for tests: etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler and a kubelet (v1.37.2, built by test/k8sbin/build.sh node),
// Debian's containerd 1.6 with runc, and Debian's CNI bridge plugin on a
// bridge of its own. Images are imported from OCI archives (no registry).
// StartInGuest runs the node's side (containerd, runc, the kubelet) in a
// kernel-lab guest on cgroup v2 instead, behind a tap device on that bridge.
//
// Everything it makes has a fixed name so that a run that died can be
// cleaned up by the next one: the directory Base, the cgroup prefix
// CgroupPrefix under every hierarchy, the bridge Bridge, the iptables chain
// Chain, and the sysctls it changes (recorded, then restored). Start first
// removes such leftovers; the test's cleanup removes what Start made, also
// when the test fails.
package kubenode

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/kernellab"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/testutil"
)

const (
	// Version is the Kubernetes release of the binaries.
	Version = "v1.37.2"
	// Base holds all the cluster's files, sockets and mounts.
	Base = "/var/lib/otelcol-oomkill-node"
	// CgroupPrefix is the kubelet's cgroupRoot: far from the /kubepods
	// cgroups other tests make (the kubelet deletes pod cgroups it does not
	// know under its root).
	CgroupPrefix = "otelcol-oomkill-node"
	// Bridge, Subnet and Gateway are the pods' network.
	Bridge  = "oomkn0"
	Subnet  = "10.244.77.0/24"
	Gateway = "10.244.77.1"
	// ServiceCIDR holds the kubernetes Service, ServiceIP:443, which the
	// Chain's one DNAT rule sends to the API server (no kube-proxy).
	ServiceCIDR = "10.96.77.0/24"
	ServiceIP   = "10.96.77.1"
	Chain       = "OOMKILL-NODE"
	// NodeName is the node's name.
	NodeName = "oomkill-node"

	cgroupV1    = "/sys/fs/cgroup"
	sysctlsFile = Base + ".sysctls.json" // outside Base: it must survive until restored
	madeFile    = Base + ".made.json"    // the paths of outside this run created
)

// sysctls the kubelet (protectKernelDefaults: false) and the bridge plugin
// set; recorded before start and restored after.
var sysctls = []string{
	"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes", "net/ipv4/ip_forward",
}

// Paths the kubelet and containerd write outside their configured
// directories; removed afterwards when they did not exist before.
// /var/lib/otelcol-oomkill is the DaemonSet's checkpoint hostPath.
var outside = []string{"/var/lib/kubelet", "/var/log/containers", "/var/log/pods", "/run/containerd", "/etc/cni/net.d", "/opt/cni", "/var/lib/otelcol-oomkill"}

// Node is a running single-node cluster.
type Node struct {
	Kubeconfig string // admin (system:masters token)
	Client     kubernetes.Interface
	Bins       string
	// Socket is containerd's CRI socket.
	Socket string

	t       testing.TB
	procs   []*proc
	apiPort int
	token   string
	guest   *kernellab.Guest // the node's side, when it runs in the kernel lab
}

// BinDir is where test/k8sbin/build.sh node puts the binaries.
func BinDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("KUBE_TEST_BINARIES")
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(cache, "otelcol-oomkill", "k8s", Version+"-linux-amd64")
	}
	for _, b := range []string{"kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler", "kubelet"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			testutil.SkipOrFail(t, fmt.Sprintf("%s not found in %s: run test/k8sbin/build.sh node (make e2e-node does)", b, dir))
		}
	}
	return dir
}

// Require checks what the node needs from the machine.
func Require(t testing.TB) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, p := range []string{"/usr/bin/containerd", "/usr/bin/ctr", "/usr/sbin/runc", "/usr/lib/cni/bridge", "/usr/lib/cni/host-local", "/usr/sbin/iptables", "/usr/sbin/ip"} {
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, p)
		}
	}
	if _, err := os.Stat(filepath.Join(cgroupV1, "memory", "memory.limit_in_bytes")); err != nil {
		missing = append(missing, "a cgroup v1 memory hierarchy (this harness is written for cgroup v1 hosts)")
	}
	if len(missing) > 0 {
		testutil.SkipOrFail(t, "the real node needs "+strings.Join(missing, ", ")+" (Debian: containerd runc containernetworking-plugins iptables iproute2; .ci/run installs them)")
	}
}

// Start brings the node up, with images (OCI archives) imported into
// containerd, and waits until the node is Ready. Teardown is registered
// before anything starts.
func Start(t testing.TB, images ...string) *Node {
	t.Helper()
	Require(t)
	n := &Node{t: t, Bins: BinDir(t), token: "oomkill-node-" + testutil.RandomHex(8), Socket: filepath.Join(Base, "containerd.sock")}
	if err := Cleanup(t.Logf); err != nil {
		t.Fatalf("leftovers of an earlier run: %v", err)
	}
	var made []string
	for _, p := range outside {
		if _, err := os.Stat(p); os.IsNotExist(err) {
			made = append(made, p)
		}
	}
	b, _ := json.Marshal(made)
	must(t, os.WriteFile(madeFile, b, 0o600))
	t.Cleanup(n.teardown)
	must(t, recordSysctls())
	for _, d := range []string{"etc", "logs", "pids", "cni/net.d", "cni/ipam", "kubelet", "pod-logs", "volume-plugins", "containerd/root", "containerd/state", "runc"} {
		must(t, os.MkdirAll(filepath.Join(Base, d), 0o755))
	}
	must(t, n.network())
	must(t, makeCgroupRoot())
	n.startContainerd()
	for _, img := range images {
		n.ImportImage(img)
	}
	n.startControlPlane()
	n.startKubelet()
	n.waitNodeReady()
	return n
}

// Logs is where each process's log file is, for failure messages.
func Logs() string { return filepath.Join(Base, "logs") }

func (n *Node) path(p ...string) string { return filepath.Join(append([]string{Base}, p...)...) }

// network makes the bridge the CNI plugin will use (the API server listens
// on its address, which pods reach) and the DNAT rule for the kubernetes
// Service.
func (n *Node) network() error {
	cmds := [][]string{
		{"ip", "link", "add", Bridge, "type", "bridge"},
		{"ip", "addr", "add", Gateway + "/24", "dev", Bridge},
		{"ip", "link", "set", Bridge, "up"},
		{"iptables", "-w", "-t", "nat", "-N", Chain},
		{"iptables", "-w", "-t", "nat", "-I", "PREROUTING", "-j", Chain},
		{"iptables", "-w", "-t", "nat", "-I", "OUTPUT", "-j", Chain},
	}
	for _, c := range cmds {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %w: %s", strings.Join(c, " "), err, out)
		}
	}
	conf := fmt.Sprintf(`{"cniVersion": "0.4.0", "name": "oomkill-node", "plugins": [{
  "type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": false,
  "ipam": {"type": "host-local", "dataDir": %q,
           "ranges": [[{"subnet": %q, "rangeStart": "10.244.77.10", "gateway": %q}]],
           "routes": [{"dst": "0.0.0.0/0"}]}}]}`, Bridge, n.path("cni/ipam"), Subnet, Gateway)
	return os.WriteFile(n.path("cni/net.d/10-oomkill-node.conflist"), []byte(conf), 0o644)
}

func makeCgroupRoot() error {
	hs, err := hierarchies()
	if err != nil {
		return err
	}
	for _, h := range hs {
		d := filepath.Join(h, CgroupPrefix)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		if filepath.Base(h) == "cpuset" {
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				b, err := os.ReadFile(filepath.Join(h, f))
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(d, f), b, 0o644); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// hierarchies are the mounted cgroup hierarchies (v1 ones and unified).
func hierarchies() ([]string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		i := indexOf(f, "-")
		if i < 0 || i+1 >= len(f) {
			continue
		}
		if (f[i+1] == "cgroup" || f[i+1] == "cgroup2") && strings.HasPrefix(f[4], cgroupV1+"/") {
			out = append(out, f[4])
		}
	}
	return out, nil
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// startContainerd runs containerd with every path in Base. restrict_oom_score_adj:
// this sandbox lacks CAP_SYS_RESOURCE, and runc fails every sandbox without it.
func (n *Node) startContainerd() {
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
[grpc]
  address = %q
[ttrpc]
  address = %q
[plugins."io.containerd.internal.v1.opt"]
  path = %q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.local/otelcol-oomkill-test/pause:1"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %q
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = %q
`, n.path("containerd/root"), n.path("containerd/state"), n.Socket, n.path("containerd-ttrpc.sock"),
		n.path("containerd/opt"), n.path("cni/net.d"), n.path("runc"))
	cfgPath := n.path("etc/containerd.toml")
	must(n.t, os.WriteFile(cfgPath, []byte(cfg), 0o644))
	p := n.spawn("containerd", "/usr/bin/containerd", "--config", cfgPath)
	n.waitFor("containerd", p, func() bool {
		return exec.Command("ctr", "-a", n.Socket, "version").Run() == nil
	})
}

// ImportImage loads an OCI archive into the kubelet's containerd namespace.
func (n *Node) ImportImage(archive string) {
	n.t.Helper()
	out, err := n.Ctr("images", "import", archive)
	if err != nil {
		n.t.Fatalf("ctr images import %s: %v\n%s", archive, err, out)
	}
}

// Ctr runs ctr against the node's containerd, in the k8s.io namespace.
func (n *Node) Ctr(args ...string) ([]byte, error) {
	if n.guest != nil {
		out, rc, err := n.guestExec("ctr -n k8s.io " + strings.Join(args, " "))
		if err == nil && rc != 0 {
			err = fmt.Errorf("ctr in the guest: exit %d", rc)
		}
		return out, err
	}
	return exec.Command("ctr", append([]string{"-a", n.Socket, "-n", "k8s.io"}, args...)...).CombinedOutput()
}

func (n *Node) startControlPlane() {
	t := n.t
	caCert, caKey := newCA(t)
	writePEM(t, n.path("etc/ca.crt"), "CERTIFICATE", caCert.Raw)
	servCert, servKey := newServing(t, caCert, caKey)
	writePEM(t, n.path("etc/apiserver.crt"), "CERTIFICATE", servCert)
	writePEM(t, n.path("etc/apiserver.key"), "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(servKey))
	sa, err := rsa.GenerateKey(rand.Reader, 2048)
	must(t, err)
	writePEM(t, n.path("etc/sa.key"), "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(sa))
	pub, err := x509.MarshalPKIXPublicKey(&sa.PublicKey)
	must(t, err)
	writePEM(t, n.path("etc/sa.pub"), "PUBLIC KEY", pub)
	must(t, os.WriteFile(n.path("etc/tokens.csv"), []byte(n.token+`,oomkill-node-admin,1,"system:masters"`+"\n"), 0o600))

	etcdPort, peerPort := testutil.FreePort(t), testutil.FreePort(t)
	etcd := n.spawn("etcd", filepath.Join(n.Bins, "etcd"),
		"--data-dir", n.path("etcd"),
		"--listen-client-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdPort),
		"--advertise-client-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdPort),
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peerPort),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peerPort),
		"--initial-cluster", fmt.Sprintf("default=http://127.0.0.1:%d", peerPort),
		"--log-level", "warn")
	_ = etcd

	n.apiPort = testutil.FreePort(t)
	// The API server listens on the bridge's address: the host's processes
	// and the pods (through the kubernetes Service's DNAT) reach it there.
	api := n.spawn("kube-apiserver", filepath.Join(n.Bins, "kube-apiserver"),
		"--etcd-servers", fmt.Sprintf("http://127.0.0.1:%d", etcdPort),
		"--bind-address", Gateway, "--advertise-address", Gateway,
		"--secure-port", strconv.Itoa(n.apiPort),
		"--tls-cert-file", n.path("etc/apiserver.crt"), "--tls-private-key-file", n.path("etc/apiserver.key"),
		"--token-auth-file", n.path("etc/tokens.csv"), "--authorization-mode", "Node,RBAC",
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", n.path("etc/sa.pub"), "--service-account-signing-key-file", n.path("etc/sa.key"),
		"--service-cluster-ip-range", ServiceCIDR, "--allow-privileged=true",
		// The node's name resolves nowhere: logs and exec go to its InternalIP.
		"--kubelet-preferred-address-types", "InternalIP")
	dnat := []string{
		"-w", "-t", "nat", "-A", Chain, "-d", ServiceIP + "/32", "-p", "tcp", "--dport", "443",
		"-j", "DNAT", "--to-destination", fmt.Sprintf("%s:%d", Gateway, n.apiPort),
	}
	if out, dnatErr := exec.Command("iptables", dnat...).CombinedOutput(); dnatErr != nil {
		t.Fatalf("iptables %v: %v: %s", dnat, dnatErr, out)
	}

	n.Kubeconfig = n.path("etc/admin.kubeconfig")
	must(t, os.WriteFile(n.Kubeconfig, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: node
  cluster:
    server: https://%s:%d
    certificate-authority: %s
users:
- name: admin
  user:
    token: %s
contexts:
- name: node
  context: {cluster: node, user: admin}
current-context: node
`, Gateway, n.apiPort, n.path("etc/ca.crt"), n.token)), 0o600))
	n.waitFor("kube-apiserver", api, n.apiReady)
	cfg, err := clientcmd.BuildConfigFromFlags("", n.Kubeconfig)
	must(t, err)
	n.Client, err = kubernetes.NewForConfig(cfg)
	must(t, err)

	n.spawn("kube-controller-manager", filepath.Join(n.Bins, "kube-controller-manager"),
		"--kubeconfig", n.Kubeconfig, "--leader-elect=false",
		"--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(testutil.FreePort(t)),
		"--service-account-private-key-file", n.path("etc/sa.key"), "--root-ca-file", n.path("etc/ca.crt"),
		"--use-service-account-credentials=false")
	n.spawn("kube-scheduler", filepath.Join(n.Bins, "kube-scheduler"),
		"--kubeconfig", n.Kubeconfig, "--leader-elect=false",
		"--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(testutil.FreePort(t)))
}

func (n *Node) apiReady() bool {
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(n.path("etc/ca.crt"))
	if err != nil {
		return false
	}
	pool.AppendCertsFromPEM(ca)
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("https://%s:%d/readyz", Gateway, n.apiPort), nil)
	req.Header.Set("Authorization", "Bearer "+n.token)
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// kubeletConfig is what differs between the nodes' KubeletConfigurations.
type kubeletConfig struct {
	CgroupDriver      string // empty: cgroupfs
	CgroupRoot        string // empty: the kubelet's default (/)
	CgroupV1          bool   // failCgroupV1: false, or the kubelet refuses the host
	Socket            string
	Address           string
	Port, HealthzPort int
	VolumePluginDir   string // empty: the kubelet's default
	PodLogsDir        string // empty: the kubelet's default
	ResolvConf        string
	// SingleProcessOOMKill true: the kubelet leaves memory.oom.group at 0
	// (cgroup v2). False leaves the setting out: the kubelet's default.
	SingleProcessOOMKill bool
}

// yaml: the cgroup driver (cgroupfs unless said), kernel defaults not protected (the kubelet
// sets the sysctls), anonymous AlwaysAllow (the API server's exec and logs
// need no client certificate), eviction and image GC out of the way.
func (k kubeletConfig) yaml() string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: %s
cgroupsPerQOS: true
failSwapOn: false
protectKernelDefaults: false
containerRuntimeEndpoint: unix://%s
imageServiceEndpoint: unix://%s
address: %s
port: %d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %d
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {"memory.available": "1Mi", "nodefs.available": "1%%", "imagefs.available": "1%%", "nodefs.inodesFree": "1%%"}
resolvConf: %q
serializeImagePulls: false
maxPods: 20
`, cmp.Or(k.CgroupDriver, "cgroupfs"), k.Socket, k.Socket, k.Address, k.Port, k.HealthzPort, k.ResolvConf)
	if k.CgroupV1 {
		b.WriteString("failCgroupV1: false\n")
	}
	if k.SingleProcessOOMKill {
		b.WriteString("singleProcessOOMKill: true\n")
	}
	if k.CgroupRoot != "" {
		fmt.Fprintf(&b, "cgroupRoot: %s\n", k.CgroupRoot)
	}
	if k.VolumePluginDir != "" {
		fmt.Fprintf(&b, "volumePluginDir: %s\n", k.VolumePluginDir)
	}
	if k.PodLogsDir != "" {
		fmt.Fprintf(&b, "podLogsDir: %s\n", k.PodLogsDir)
	}
	return b.String()
}

// startKubelet: failCgroupV1 false (this host is cgroup v1), the cgroupfs
// driver under CgroupPrefix, its files under Base.
func (n *Node) startKubelet() {
	cfg := kubeletConfig{
		CgroupRoot: "/" + CgroupPrefix, CgroupV1: true, Socket: n.Socket, Address: Gateway, Port: testutil.FreePort(n.t), HealthzPort: testutil.FreePort(n.t),
		VolumePluginDir: n.path("volume-plugins"), PodLogsDir: n.path("pod-logs"), ResolvConf: "/etc/resolv.conf",
	}
	cfgPath := n.path("etc/kubelet.yaml")
	must(n.t, os.WriteFile(cfgPath, []byte(cfg.yaml()), 0o644))
	n.spawn("kubelet", filepath.Join(n.Bins, "kubelet"),
		"--config", cfgPath, "--kubeconfig", n.Kubeconfig, "--root-dir", n.path("kubelet"),
		"--hostname-override", NodeName, "--node-ip", Gateway)
}

func (n *Node) waitNodeReady() {
	n.t.Helper()
	wait := 3 * time.Minute
	if n.guest != nil {
		wait = 20 * time.Minute // an emulated machine, on a shared host
	}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		node, err := n.Client.CoreV1().Nodes().Get(context.Background(), NodeName, metav1.GetOptions{})
		if err == nil {
			for _, c := range node.Status.Conditions {
				if c.Type == "Ready" && c.Status == "True" {
					return
				}
			}
		}
		for _, p := range n.procs {
			select {
			case <-p.done:
				n.t.Fatalf("%s exited while the node came up; logs in %s", p.name, Logs())
			default:
			}
		}
		if n.guest != nil {
			select {
			case <-n.guest.Done():
				_, err := n.guest.Wait()
				n.t.Fatalf("the node's guest stopped while the node came up: %v", err)
			default:
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	if n.guest != nil {
		n.t.Fatalf("node %s not Ready after %s; the guest's timeline: %s", NodeName, wait, guestProgress(n.guest.Console()))
	}
	n.t.Fatalf("node %s not Ready after %s; logs in %s", NodeName, wait, Logs())
}

// Kubectl runs the built kubectl against the node.
func (n *Node) Kubectl(args ...string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(n.Bins, "kubectl"), append([]string{"--kubeconfig", n.Kubeconfig}, args...)...)
	return cmd.CombinedOutput()
}

// proc is a running process; done closes when it exits.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

func (n *Node) spawn(name, bin string, args ...string) *proc {
	n.t.Helper()
	logf, err := os.OpenFile(n.path("logs", name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	must(n.t, err)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	must(n.t, cmd.Start())
	must(n.t, os.WriteFile(n.path("pids", name+".pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644))
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(p.done) }()
	n.procs = append(n.procs, p)
	return p
}

func (n *Node) waitFor(name string, p *proc, ready func() bool) {
	n.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !ready() {
		select {
		case <-p.done:
			n.t.Fatalf("%s exited; its log: %s", name, n.path("logs", name+".log"))
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("%s not ready after 90 s; its log: %s", name, n.path("logs", name+".log"))
		}
	}
}

// teardown: pods first (the kubelet stops their containers), then the
// processes in reverse order, then whatever is left (Cleanup).
func (n *Node) teardown() {
	if n.t.Failed() {
		n.t.Logf("node logs: %s (kept until the next run)", Logs())
		if out, err := n.Kubectl("get", "pods", "-A", "-o", "wide"); err == nil {
			n.t.Logf("pods at the end:\n%s", out)
		}
	}
	if n.Client != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		n.deleteAllPods(ctx)
		cancel()
	}
	if n.guest != nil {
		n.stopGuest()
	}
	for i := len(n.procs) - 1; i >= 0; i-- {
		stopProc(n.procs[i])
	}
	if err := cleanup(n.t.Logf, n.t.Failed()); err != nil {
		n.t.Errorf("teardown: %v", err)
	}
}

// deleteAllPods deletes every namespace's workloads and pods and waits
// until the kubelet has stopped them (bounded by ctx).
func (n *Node) deleteAllPods(ctx context.Context) {
	nss, err := n.Client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	zero := int64(0)
	for _, ns := range nss.Items {
		_ = n.Client.AppsV1().DaemonSets(ns.Name).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
		_ = n.Client.AppsV1().Deployments(ns.Name).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
		_ = n.Client.AppsV1().ReplicaSets(ns.Name).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
		_ = n.Client.CoreV1().Pods(ns.Name).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
	}
	for ctx.Err() == nil {
		out, err := n.Ctr("tasks", "ls", "-q")
		if err == nil && len(bytes.TrimSpace(out)) == 0 {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func stopProc(p *proc) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Cleanup removes whatever an earlier run left behind (a crashed test, a
// killed `go test`): processes, containers, mounts, cgroups, the bridge, the
// iptables chain and the kubelet's, and restores the recorded sysctls.
func Cleanup(logf func(string, ...any)) error { return cleanup(logf, false) }

func cleanup(logf func(string, ...any), keepLogs bool) error {
	var errs []error
	// 1. Processes: ours by the pid files, containerd's shims (their
	// command line names our socket), and every process in our cgroups
	// (the containers').
	if ents, err := os.ReadDir(filepath.Join(Base, "pids")); err == nil {
		for _, e := range ents {
			b, _ := os.ReadFile(filepath.Join(Base, "pids", e.Name()))
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && cmdlineHas(pid, Base) {
				killWait(logf, pid)
			}
		}
	}
	for _, pid := range pidsWithCmdline(Base) {
		killWait(logf, pid)
	}
	for _, pid := range pidsWithCmdline("ifname=" + Tap + ",") { // a guest node's qemu
		killWait(logf, pid)
	}
	hs, _ := hierarchies()
	for round := 0; round < 20; round++ {
		pids := cgroupPids(hs)
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// 2. Mounts under Base (overlay rootfs, netns, tmpfs volumes), deepest first.
	for _, m := range mountsUnder(Base) {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m, err))
		}
	}
	// 3. Cgroups, deepest first, in every hierarchy.
	for _, h := range hs {
		root := filepath.Join(h, CgroupPrefix)
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, d := range dirs {
			if err := removeCgroup(d); err != nil {
				errs = append(errs, err)
			}
		}
	}
	// 4. Network: the bridge (and its veths go with the pods' netns), our
	// chain, and the chains the kubelet makes.
	for _, dev := range []string{Tap, Bridge} {
		if _, err := net.InterfaceByName(dev); err == nil {
			if out, err := exec.Command("ip", "link", "del", dev).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("ip link del %s: %w: %s", dev, err, out))
			}
		}
	}
	for _, hook := range []string{"PREROUTING", "OUTPUT"} {
		for i := 0; i < 10; i++ { // one jump per earlier run at most
			if exec.Command("iptables", "-w", "-t", "nat", "-D", hook, "-j", Chain).Run() != nil {
				break
			}
		}
	}
	_ = exec.Command("iptables", "-w", "-t", "nat", "-F", Chain).Run()
	_ = exec.Command("iptables", "-w", "-t", "nat", "-X", Chain).Run()
	for _, tc := range kubeletChains {
		for _, bin := range []string{"iptables", "ip6tables"} {
			removeChain(bin, tc[0], tc[1])
		}
	}
	// 5. Sysctls, as they were before the first run that changed them.
	if err := restoreSysctls(); err != nil {
		errs = append(errs, err)
	}
	// 6. Files: what the kubelet and containerd made outside Base, then Base.
	if b, err := os.ReadFile(madeFile); err == nil {
		var made []string
		_ = json.Unmarshal(b, &made)
		for _, p := range made {
			if err := os.RemoveAll(p); err != nil {
				errs = append(errs, err)
			}
		}
		_ = os.Remove(madeFile)
	}
	if keepLogs {
		ents, _ := os.ReadDir(Base)
		for _, e := range ents {
			if e.Name() != "logs" {
				if err := os.RemoveAll(filepath.Join(Base, e.Name())); err != nil {
					errs = append(errs, err)
				}
			}
		}
	} else if err := os.RemoveAll(Base); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// kubeletChains are the iptables chains (table, name) kubelet 1.37 makes.
var kubeletChains = [][2]string{
	{"mangle", "KUBE-IPTABLES-HINT"},
	{"mangle", "KUBE-KUBELET-CANARY"},
	{"nat", "KUBE-KUBELET-CANARY"},
	{"filter", "KUBE-KUBELET-CANARY"},
	{"nat", "KUBE-MARK-MASQ"},
	{"nat", "KUBE-POSTROUTING"},
	{"filter", "KUBE-FIREWALL"},
}

// removeChain deletes the rules that jump to chain, then the chain.
func removeChain(bin, table, chain string) {
	out, err := exec.Command(bin, "-w", "-t", table, "-S").Output()
	if err != nil {
		return
	}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) > 2 && f[0] == "-A" && f[1] != chain && strings.HasSuffix(l, " -j "+chain) {
			_ = exec.Command(bin, append([]string{"-w", "-t", table, "-D"}, f[1:]...)...).Run()
		}
	}
	_ = exec.Command(bin, "-w", "-t", table, "-F", chain).Run()
	_ = exec.Command(bin, "-w", "-t", table, "-X", chain).Run()
}

func removeCgroup(d string) error {
	var err error
	for i := 0; i < 50; i++ {
		if err = os.Remove(d); err == nil || os.IsNotExist(err) {
			return nil
		}
		time.Sleep(100 * time.Millisecond) // tasks still exiting
	}
	return fmt.Errorf("remove cgroup %s: %w", d, err)
}

func cgroupPids(hs []string) []int {
	var pids []int
	for _, h := range hs {
		_ = filepath.WalkDir(filepath.Join(h, CgroupPrefix), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			b, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					pids = append(pids, pid)
				}
			}
			return nil
		})
	}
	return pids
}

func cmdlineHas(pid int, s string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && bytes.Contains(b, []byte(s))
}

func pidsWithCmdline(s string) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err == nil && pid != os.Getpid() && cmdlineHas(pid, s) {
			out = append(out, pid)
		}
	}
	return out
}

func killWait(logf func(string, ...any), pid int) {
	logf("kubenode: stopping leftover process %d", pid)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for i := 0; i < 50; i++ {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func mountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			out = append(out, f[4])
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

func recordSysctls() error {
	if _, err := os.Stat(sysctlsFile); err == nil {
		return nil // an earlier run's record: the original values
	}
	vals := map[string]string{}
	for _, s := range sysctls {
		if b, err := os.ReadFile("/proc/sys/" + s); err == nil {
			vals[s] = strings.TrimSpace(string(b))
		}
	}
	b, _ := json.Marshal(vals)
	return os.WriteFile(sysctlsFile, b, 0o600)
}

func restoreSysctls() error {
	b, err := os.ReadFile(sysctlsFile)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var vals map[string]string
	if err := json.Unmarshal(b, &vals); err != nil {
		return fmt.Errorf("%s: %w", sysctlsFile, err)
	}
	var errs []error
	for k, v := range vals {
		if err := os.WriteFile("/proc/sys/"+k, []byte(v), 0o644); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		_ = os.Remove(sysctlsFile)
	}
	return errors.Join(errs...)
}

func newCA(t testing.TB) (*x509.Certificate, *rsa.PrivateKey) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	must(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "otelcol-oomkill node test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	must(t, err)
	cert, err := x509.ParseCertificate(der)
	must(t, err)
	return cert, key
}

func newServing(t testing.TB, ca *x509.Certificate, caKey *rsa.PrivateKey) ([]byte, *rsa.PrivateKey) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	must(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "localhost"},
		IPAddresses: []net.IP{net.ParseIP(Gateway), net.ParseIP(ServiceIP), net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	must(t, err)
	return der, key
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	must(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Leftovers lists what of a node remains on the machine (for tests of the
// teardown): processes naming Base, mounts under it, its cgroups, the
// bridge, the chain, the recorded sysctls.
func Leftovers() []string {
	var out []string
	for _, pid := range pidsWithCmdline(Base) {
		out = append(out, fmt.Sprintf("process %d", pid))
	}
	for _, m := range mountsUnder(Base) {
		out = append(out, "mount "+m)
	}
	hs, _ := hierarchies()
	for _, h := range hs {
		if _, err := os.Stat(filepath.Join(h, CgroupPrefix)); err == nil {
			out = append(out, "cgroup "+filepath.Join(h, CgroupPrefix))
		}
	}
	for _, dev := range []string{Bridge, Tap} {
		if _, err := net.InterfaceByName(dev); err == nil {
			out = append(out, "network device "+dev)
		}
	}
	if exec.Command("iptables", "-w", "-t", "nat", "-S", Chain).Run() == nil {
		out = append(out, "iptables chain "+Chain)
	}
	for _, tc := range kubeletChains {
		if exec.Command("iptables", "-w", "-t", tc[0], "-S", tc[1]).Run() == nil {
			out = append(out, "iptables chain "+tc[0]+"/"+tc[1])
		}
	}
	for _, f := range []string{Base, sysctlsFile, madeFile} {
		if _, err := os.Stat(f); err == nil {
			out = append(out, "file "+f)
		}
	}
	return out
}
