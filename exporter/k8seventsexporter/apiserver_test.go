//go:build linux

// Linux only: test/harness/kubeapitest runs a real kube-apiserver there.

package k8seventsexporter

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/otel/attribute"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/event"
	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/kill"
	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/metadatatest"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/kubeapitest"
)

// These tests run the exporter against a real kube-apiserver and etcd
// (test/harness/kubeapitest), authenticated as the shipped service account
// with exactly the shipped RBAC (examples/kubernetes/01-rbac.yaml).

// applyShippedRBAC creates the example's namespace, service account,
// ClusterRole and binding, and returns a kubeconfig holding a token of
// that service account.
func applyShippedRBAC(t *testing.T, cluster *kubeapitest.Cluster) string {
	t.Helper()
	ctx := context.Background()
	c := cluster.Client
	_, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "otelcol-oomkill"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", "kubernetes", "01-rbac.yaml"))
	require.NoError(t, err)
	var sa *corev1.ServiceAccount
	for _, doc := range bytes.Split(b, []byte("\n---")) {
		var meta metav1.TypeMeta
		require.NoError(t, yaml.Unmarshal(doc, &meta))
		switch meta.Kind {
		case "ServiceAccount":
			sa = &corev1.ServiceAccount{}
			require.NoError(t, yaml.Unmarshal(doc, sa))
			_, err = c.CoreV1().ServiceAccounts(sa.Namespace).Create(ctx, sa, metav1.CreateOptions{})
		case "ClusterRole":
			var r rbacv1.ClusterRole
			require.NoError(t, yaml.Unmarshal(doc, &r))
			_, err = c.RbacV1().ClusterRoles().Create(ctx, &r, metav1.CreateOptions{})
		case "ClusterRoleBinding":
			var r rbacv1.ClusterRoleBinding
			require.NoError(t, yaml.Unmarshal(doc, &r))
			_, err = c.RbacV1().ClusterRoleBindings().Create(ctx, &r, metav1.CreateOptions{})
		default:
			t.Fatalf("01-rbac.yaml: unexpected %q", meta.Kind)
		}
		require.NoError(t, err)
	}
	require.NotNil(t, sa)
	tok, err := c.CoreV1().ServiceAccounts(sa.Namespace).CreateToken(ctx, sa.Name, &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{}}, metav1.CreateOptions{})
	require.NoError(t, err)
	cfg, err := clientcmd.LoadFromFile(cluster.Kubeconfig)
	require.NoError(t, err)
	for _, u := range cfg.AuthInfos {
		u.Token = tok.Status.Token // the service account instead of system:masters
	}
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, clientcmd.WriteToFile(*cfg, kc))
	return kc
}

func createTestPod(t *testing.T, c kubernetes.Interface, ns, name string) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	_, _ = c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	p, err := c.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       corev1.PodSpec{NodeName: "node-a", Containers: []corev1.Container{{Name: "php-fpm", Image: "registry.local/php:8.3-fpm"}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	return p
}

// killsOf returns n kills of the pod's php-fpm container, numbered from.
func killsOf(p *corev1.Pod, from, n int) []testKill {
	out := make([]testKill, n)
	for i := range n {
		k := phpKill(from + i)
		k.ns, k.pod, k.uid = p.Namespace, p.Name, string(p.UID)
		k.id = fmt.Sprintf("%s%08x", string(p.UID[:24]), from+i)
		k.at = time.Now().Add(-time.Minute).Add(time.Duration(from+i) * time.Millisecond)
		out[i] = k
	}
	return out
}

// startRealExporter builds the exporter through its factory (queue and
// retry included) with the service account's kubeconfig.
func startRealExporter(t *testing.T, kubeconfig string, mutate func(*Config)) (exporter.Logs, *componenttest.Telemetry) {
	t.Helper()
	cfg := createDefaultConfig()
	cfg.AuthType, cfg.Kubeconfig = "kubeConfig", kubeconfig
	cfg.FlushInterval = 200 * time.Millisecond
	cfg.RetryConfig.InitialInterval, cfg.RetryConfig.MaxInterval, cfg.RetryConfig.MaxElapsedTime = 100*time.Millisecond, time.Second, 3*time.Minute
	if mutate != nil {
		mutate(cfg)
	}
	require.NoError(t, cfg.Validate())
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	exp, err := NewFactory().CreateLogs(context.Background(), metadatatest.NewSettings(tel), cfg)
	require.NoError(t, err)
	require.NoError(t, exp.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, exp.Shutdown(context.Background())) })
	return exp, tel
}

// podEvents lists the events on a pod as kubectl describe pod finds them
// (core v1, field selector on the involved object).
func podEvents(t *testing.T, c kubernetes.Interface, p *corev1.Pod) []corev1.Event {
	t.Helper()
	sel := fields.Set{"involvedObject.kind": "Pod", "involvedObject.name": p.Name, "involvedObject.namespace": p.Namespace, "involvedObject.uid": string(p.UID)}
	l, err := c.CoreV1().Events(p.Namespace).List(context.Background(), metav1.ListOptions{FieldSelector: sel.AsSelector().String()})
	require.NoError(t, err)
	return l.Items
}

func coreCount(ev corev1.Event) int32 {
	if ev.Series != nil {
		return ev.Series.Count
	}
	return 1
}

func send(t *testing.T, exp exporter.Logs, kills []testKill, batch int) {
	t.Helper()
	for i := 0; i < len(kills); i += batch {
		require.NoError(t, exp.ConsumeLogs(context.Background(), logsOf(kills[i:min(i+batch, len(kills))]...)))
	}
}

func writesMade(t *testing.T, tel *componenttest.Telemetry) (creates, patches int64) {
	return counter(t, tel, "k8sevents_api_requests", attribute.String("request", "create")),
		counter(t, tel, "k8sevents_api_requests", attribute.String("request", "patch"))
}

func TestRealAPIServer(t *testing.T) {
	cluster := kubeapitest.Start(t)
	kc := applyShippedRBAC(t, cluster)
	c := cluster.Client
	ctx := context.Background()

	t.Run("event on the pod with the right fields", func(t *testing.T) {
		p := createTestPod(t, c, "shop", "checkout-7f9c6d5b8-x2x9q")
		exp, tel := startRealExporter(t, kc, nil)
		k := killsOf(p, 0, 1)
		send(t, exp, k, 1)
		var evs []corev1.Event
		require.Eventually(t, func() bool { evs = podEvents(t, c, p); return len(evs) == 1 }, 30*time.Second, 50*time.Millisecond)
		ev := evs[0]
		assert.Equal(t, corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: "shop", Name: p.Name, UID: p.UID, FieldPath: "spec.containers{php-fpm}"}, ev.InvolvedObject)
		assert.Equal(t, "Warning", ev.Type)
		assert.Equal(t, "OOMKilling", ev.Reason)
		assert.Equal(t, "otelcol-oomkill.io/k8sevents", ev.ReportingController)
		assert.Equal(t, "otelcol-oomkill-node-a", ev.ReportingInstance)
		assert.Equal(t, event.Note(kill.Kill{PID: k[0].pid, Process: k[0].process, Container: "php-fpm", PodName: p.Name, Namespace: "shop", Scope: kill.ScopeContainer, AnonRSSKB: k[0].anonKB, LimitB: k[0].limit, Outcome: "survived"}), ev.Message)
		assert.Contains(t, ev.Message, "Kubernetes records no restart for this")
		assert.Equal(t, k[0].at.Truncate(time.Microsecond).UTC(), ev.EventTime.UTC(), "eventTime is the kill's time")
		assert.Nil(t, ev.Series)
		// The same object through events.k8s.io/v1, the API the exporter writes.
		ev1, err := c.EventsV1().Events("shop").Get(ctx, ev.Name, metav1.GetOptions{})
		require.NoError(t, err)
		assert.Equal(t, "OOMKill", ev1.Action)
		assert.EqualValues(t, 1, counter(t, tel, "k8sevents_events_created"))
		logTable(t, cluster, "shop")
	})

	t.Run("the memory at the kill and the pod's limit, from the kernel's report", func(t *testing.T) {
		p := createTestPod(t, c, "shop", "pod-limit-6c9f7-q2w3e")
		exp, _ := startRealExporter(t, kc, nil)
		k := killsOf(p, 0, 1)
		// What the receiver read from a real report (testdata/kernel/captured/pod_limit.txt,
		// 6.18, cgroup v1): a pod-level limit hit while its container's worker allocated.
		k[0].memcg = "/kubepods/burstable/pod" + string(p.UID)
		k[0].cgroup = k[0].memcg + "/" + ctr64
		k[0].process, k[0].anonKB, k[0].limit = "python3", 65024, -1
		k[0].attrs = map[string]any{
			"oom.file_rss_kb": int64(3324), "oom.shmem_rss_kb": int64(0),
			"oom.memory.usage_bytes": int64(67108864), "oom.memory.limit_bytes": int64(67108864), "oom.memory.failcnt": int64(1185),
			"oom.memory.anon_bytes": int64(66846720), "oom.memory.file_bytes": int64(4096), "oom.memory.shmem_bytes": int64(0),
			"oom.memory.kernel_bytes": int64(258048), "oom.tasks.count": int64(2), "oom.tasks.largest.name": "python3",
			"oom.tasks.largest.pid": k[0].pid, "oom.tasks.largest.rss_bytes": int64(69988352), "oom.victim.rss_share": 1.043,
		}
		send(t, exp, k, 1)
		var evs []corev1.Event
		require.Eventually(t, func() bool { evs = podEvents(t, c, p); return len(evs) == 1 }, 30*time.Second, 50*time.Millisecond)
		assert.Equal(t, `The kernel OOM killer killed process "python3" (pid 4000) in container "php-fpm": the pod's memory limit (64Mi, the sum of its containers' limits) was hit; the process used 63.5Mi of anonymous memory. `+
			`Usage 64Mi of 64Mi: anon 63.8Mi, file 4Ki, shmem 0, kernel 252Ki; 2 processes; the victim held 66.7Mi, it was the largest process. The container kept running: Kubernetes records no restart for this.`, evs[0].Message)
		logTable(t, cluster, "shop")
	})

	t.Run("storm of 1000 kills is one event with its count", func(t *testing.T) {
		p := createTestPod(t, c, "shop", "storm-5d8f9-abcde")
		// The default per-pod bucket: 5 writes at once, then one every 5s.
		exp, tel := startRealExporter(t, kc, nil)
		kills := killsOf(p, 0, 1000)
		begin := time.Now()
		send(t, exp, kills, 10) // 100 batches, as a receiver reading a busy journal sends them
		var evs []corev1.Event
		require.Eventually(t, func() bool {
			evs = podEvents(t, c, p)
			return len(evs) == 1 && coreCount(evs[0]) == 1000
		}, 60*time.Second, 100*time.Millisecond, "one event, count 1000: %+v", evs)
		took := time.Since(begin)
		creates, patches := writesMade(t, tel)
		assert.EqualValues(t, 1, creates)
		// 5 at once, then at most one per 5s of the storm, plus one.
		assert.LessOrEqual(t, patches, int64(5+took/(5*time.Second)+1))
		assert.EqualValues(t, 999, counter(t, tel, "k8sevents_kills_aggregated"))
		assert.EqualValues(t, 1, counter(t, tel, "k8sevents_api_requests", attribute.String("request", "get_pod")))
		t.Logf("1000 kills in 100 batches: %d create, %d patches, %d pod read, in %v", creates, patches, 1, took.Round(time.Millisecond))
		ev1, err := c.EventsV1().Events("shop").Get(ctx, evs[0].Name, metav1.GetOptions{})
		require.NoError(t, err)
		require.NotNil(t, ev1.Series)
		assert.EqualValues(t, 1000, ev1.Series.Count)
		assert.Equal(t, kills[999].at.Truncate(time.Microsecond).UTC(), ev1.Series.LastObservedTime.UTC())

		t.Run("redelivered kills count nothing", func(t *testing.T) {
			c0, p0 := writesMade(t, tel)
			send(t, exp, kills[:500], 50)
			require.Eventually(t, func() bool { return counter(t, tel, "k8sevents_dedup_hits") == 500 }, 30*time.Second, 50*time.Millisecond)
			time.Sleep(time.Second) // several flush intervals
			c1, p1 := writesMade(t, tel)
			assert.Equal(t, c0+p0, c1+p1, "no write for redelivered kills")
			evs := podEvents(t, c, p)
			require.Len(t, evs, 1)
			assert.EqualValues(t, 1000, coreCount(evs[0]))
		})
		logTable(t, cluster, "shop")
	})

	t.Run("deleted pod: no event, no error loop", func(t *testing.T) {
		p := createTestPod(t, c, "shop", "gone-6c7d8-zzzzz")
		require.NoError(t, c.CoreV1().Pods("shop").Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}))
		exp, tel := startRealExporter(t, kc, nil)
		send(t, exp, killsOf(p, 0, 3), 1)
		require.Eventually(t, func() bool {
			return counter(t, tel, "k8sevents_kills_dropped", attribute.String("reason", "pod_deleted")) == 3
		}, 30*time.Second, 50*time.Millisecond)
		assert.EqualValues(t, 1, counter(t, tel, "k8sevents_api_requests"), "one pod read, then nothing")
		assert.Empty(t, podEvents(t, c, p))
	})

	t.Run("namespace gone: dropped, not retried", func(t *testing.T) {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "orphan-0", Namespace: "deleted-ns", UID: "5e1f1d0e-0000-4000-8000-000000000001"}}
		exp, tel := startRealExporter(t, kc, func(cfg *Config) { cfg.VerifyPod = false })
		send(t, exp, killsOf(p, 0, 3), 1)
		require.Eventually(t, func() bool {
			return counter(t, tel, "k8sevents_kills_dropped", attribute.String("reason", "namespace_gone")) == 3
		}, 30*time.Second, 50*time.Millisecond)
		assert.EqualValues(t, 1, counter(t, tel, "k8sevents_api_requests", attribute.String("request", "create"), attribute.String("outcome", "notfound")))
		assert.EqualValues(t, 1, counter(t, tel, "k8sevents_api_requests"), "one refused create, then nothing")
	})

	t.Run("API server restart loses no kill of a known pod", func(t *testing.T) {
		p := createTestPod(t, c, "shop", "restart-7b6c5-qqqqq")
		exp, tel := startRealExporter(t, kc, func(cfg *Config) { cfg.RateLimit.PerPod = BucketConfig{QPS: 100, Burst: 100} })
		kills := killsOf(p, 0, 30)
		send(t, exp, kills[:10], 5)
		require.Eventually(t, func() bool { evs := podEvents(t, c, p); return len(evs) == 1 && coreCount(evs[0]) == 10 }, 30*time.Second, 50*time.Millisecond)
		cluster.StopAPIServer()
		send(t, exp, kills[10:20], 5) // the queue takes them; writes fail and are retried
		require.Eventually(t, func() bool {
			return counter(t, tel, "k8sevents_api_requests", attribute.String("request", "patch"), attribute.String("outcome", "error")) > 0
		}, 30*time.Second, 50*time.Millisecond, "writes failed while the API server was down")
		cluster.StartAPIServer()
		send(t, exp, kills[20:], 5)
		var evs []corev1.Event
		ok := assert.Eventually(t, func() bool {
			l, err := c.CoreV1().Events("shop").List(ctx, metav1.ListOptions{}) // no require in a condition
			if err != nil {
				return false
			}
			evs = nil
			for _, ev := range l.Items {
				if ev.InvolvedObject.UID == p.UID {
					evs = append(evs, ev)
				}
			}
			return len(evs) == 1 && coreCount(evs[0]) == 30
		}, 60*time.Second, 100*time.Millisecond)
		if !ok {
			m, _ := tel.GetMetric("otelcol_k8sevents_api_requests")
			t.Fatalf("events %+v; requests %+v", evs, m)
		}
		assert.EqualValues(t, 1, counter(t, tel, "k8sevents_events_created"))
	})
}

// logTable prints `kubectl get events` as the API server renders it (the
// table kubectl prints), for the README and for failures.
func logTable(t *testing.T, cluster *kubeapitest.Cluster, ns string) {
	t.Helper()
	var tbl metav1.Table
	raw, err := cluster.Client.CoreV1().RESTClient().Get().Namespace(ns).Resource("events").
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(context.Background())
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(raw, &tbl))
	var b bytes.Buffer
	for _, col := range tbl.ColumnDefinitions {
		if col.Priority == 0 {
			fmt.Fprintf(&b, "%-12s ", col.Name)
		}
	}
	b.WriteString("\n")
	for _, r := range tbl.Rows {
		for i, cell := range r.Cells {
			if tbl.ColumnDefinitions[i].Priority == 0 {
				fmt.Fprintf(&b, "%-12v ", cell)
			}
		}
		b.WriteString("\n")
	}
	t.Logf("kubectl get events -n %s:\n%s", ns, b.String())
}

// Distinct containers against a real kube-apiserver, rate limits opened
// wide: each kill is a new series, i.e. one pod read and one create.
func BenchmarkRealAPIServerNewEvents(b *testing.B) {
	cluster := kubeapitest.Start(b)
	ctx := context.Background()
	_, err := cluster.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{})
	require.NoError(b, err)
	p, err := cluster.Client.CoreV1().Pods("shop").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "bench", Namespace: "shop"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x"}}},
	}, metav1.CreateOptions{})
	require.NoError(b, err)
	b.Setenv("KUBECONFIG", cluster.Kubeconfig)
	cfg := createDefaultConfig()
	cfg.AuthType = "kubeConfig"
	cfg.RateLimit = RateLimitConfig{PerPod: BucketConfig{QPS: 1e6, Burst: 1e6}, Total: BucketConfig{QPS: 1e6, Burst: 1e6}, MaxPods: 10}
	kc, err := newClientFor(cfg)
	require.NoError(b, err)
	e := benchExporter(b, kc, func(c *Config) { c.RateLimit = cfg.RateLimit })
	b.ResetTimer()
	for i := range b.N {
		k := phpKill(i)
		k.ns, k.pod, k.uid = "shop", p.Name, string(p.UID)
		k.container = fmt.Sprintf("c%d", i) // a new series each time
		if err := e.push(ctx, logsOf(k)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
