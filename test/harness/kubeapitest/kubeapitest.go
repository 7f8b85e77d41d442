//go:build linux

// Linux only: the children get Pdeathsig, so that a crashed test leaves no
// etcd or kube-apiserver behind, and test/k8sbin builds Linux binaries.

// Package kubeapitest runs a real etcd and kube-apiserver for tests, from
// binaries built once by test/k8sbin/build.sh (from the Go module proxy)
// and cached. No kubelet runs: pods stay Pending unless a test sets their
// status through the status subresource, as a kubelet would.
package kubeapitest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/testutil"
)

// Version is the Kubernetes release the binaries are built from.
const Version = "v1.37.2"

// BinDir returns the directory holding kube-apiserver and etcd: $KUBE_TEST_BINARIES,
// or the cache test/k8sbin/build.sh fills. Missing binaries fail the test in
// CI and skip it elsewhere, saying how to build them.
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
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			testutil.SkipOrFail(t, fmt.Sprintf("%s not found in %s: run test/k8sbin/build.sh (≈16 min the first time; make test does)", b, dir))
		}
	}
	return dir
}

// Cluster is a running API server with its etcd.
type Cluster struct {
	// Kubeconfig is a kubeconfig file for the cluster (token auth,
	// system:masters), for the client under test and external processes.
	Kubeconfig string
	Client     kubernetes.Interface

	t         testing.TB
	dir, bins string
	port      int
	token     string
	etcd      *testutil.Process
	apiserver *testutil.Process
	apiArgs   []string
}

// Start runs etcd and kube-apiserver on free loopback ports and waits until
// the API server is ready. Both stop when the test ends (the API server
// first: stopping both at once can leave it hanging).
func Start(t testing.TB) *Cluster {
	t.Helper()
	c := &Cluster{t: t, bins: BinDir(t), dir: t.TempDir(), token: "oomkill-test-token"}
	etcdPort, peerPort := testutil.FreePort(t), testutil.FreePort(t)
	c.port = testutil.FreePort(t)
	c.etcd = c.spawn("etcd", "etcd",
		"--data-dir", filepath.Join(c.dir, "etcd"),
		"--listen-client-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdPort),
		"--advertise-client-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdPort),
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peerPort),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peerPort),
		"--initial-cluster", fmt.Sprintf("default=http://127.0.0.1:%d", peerPort),
		"--log-level", "warn")
	t.Cleanup(func() { c.etcd.Stop() })

	key, pub := c.serviceAccountKeys()
	tokens := filepath.Join(c.dir, "tokens.csv")
	must(t, os.WriteFile(tokens, []byte(c.token+`,oomkill-test,1,"system:masters"`+"\n"), 0o600))
	c.apiArgs = []string{
		"--etcd-servers", fmt.Sprintf("http://127.0.0.1:%d", etcdPort),
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
		"--secure-port", strconv.Itoa(c.port), "--cert-dir", filepath.Join(c.dir, "certs"),
		"--token-auth-file", tokens, "--authorization-mode", "RBAC",
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", pub, "--service-account-signing-key-file", key,
		"--service-cluster-ip-range", "10.0.0.0/24",
		"--endpoint-reconciler-type", "none", "--disable-admission-plugins", "ServiceAccount",
		// As kubeadm and managed clusters run it: a privileged container (the
		// chart's kmsg.privileged) is admitted, not refused by the flag's default.
		"--allow-privileged=true",
	}
	c.startAPIServer()
	t.Cleanup(func() { c.apiserver.Stop() })

	c.Kubeconfig = filepath.Join(c.dir, "kubeconfig")
	must(t, os.WriteFile(c.Kubeconfig, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: https://127.0.0.1:%d
    insecure-skip-tls-verify: true
users:
- name: test
  user:
    token: %s
contexts:
- name: test
  context: {cluster: test, user: test}
current-context: test
`, c.port, c.token)), 0o600))
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	must(t, err)
	c.Client, err = kubernetes.NewForConfig(cfg)
	must(t, err)
	return c
}

// RestartAPIServer stops the API server and starts it again on the same
// port, against the same etcd: watches break and clients must recover.
func (c *Cluster) RestartAPIServer() {
	c.t.Helper()
	c.apiserver.Stop()
	c.startAPIServer()
}

// StopAPIServer stops the API server; StartAPIServer brings it back.
func (c *Cluster) StopAPIServer() { c.apiserver.Stop() }

// StartAPIServer starts a stopped API server again.
func (c *Cluster) StartAPIServer() { c.startAPIServer() }

func (c *Cluster) startAPIServer() {
	c.apiserver = c.spawn("kube-apiserver", "kube-apiserver", c.apiArgs...)
	c.waitReady()
}

// waitReady polls /readyz; the API server takes ≈6 s to start.
func (c *Cluster) waitReady() {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("https://127.0.0.1:%d/readyz", c.port), nil)
		req.Header.Set("Authorization", "Bearer "+c.token)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-c.apiserver.Exited():
			c.t.Fatalf("kube-apiserver exited; its log: %s", filepath.Join(c.dir, "kube-apiserver.log"))
		case <-time.After(200 * time.Millisecond):
		}
	}
	c.t.Fatalf("kube-apiserver not ready on port %d; its log: %s", c.port, filepath.Join(c.dir, "kube-apiserver.log"))
}

// spawn starts a binary with its output appended to a log file under the
// test dir (a restarted API server's too); stopped when the test ends.
func (c *Cluster) spawn(name, bin string, args ...string) *testutil.Process {
	c.t.Helper()
	return testutil.StartProcess(c.t, name, filepath.Join(c.bins, bin), args, testutil.ProcessOptions{LogFile: filepath.Join(c.dir, name+".log")})
}

func (c *Cluster) serviceAccountKeys() (keyFile, pubFile string) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	must(c.t, err)
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	must(c.t, err)
	keyFile, pubFile = filepath.Join(c.dir, "sa.key"), filepath.Join(c.dir, "sa.pub")
	must(c.t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600))
	must(c.t, os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600))
	return keyFile, pubFile
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
