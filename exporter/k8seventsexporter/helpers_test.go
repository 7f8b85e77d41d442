package k8seventsexporter

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"k8s.io/client-go/kubernetes"

	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/metadatatest"
)

// testKill is one oom_kill record as the receiver and k8smeta write it.
type testKill struct {
	id                               string // oom.kill.id; empty: none
	pid                              int64
	process                          string
	ns, pod, uid, container, node    string
	constraint, memcg, cgroup, ctrID string
	anonKB, limit                    int64
	outcome                          string
	at                               time.Time
	kind                             string // oom.container.kind
	// attrs are further record attributes (the report's memory context).
	attrs map[string]any
}

var t0 = time.Date(2026, 12, 1, 21, 0, 0, 0, time.UTC)

func phpKill(i int) testKill {
	return testKill{
		id: fmt.Sprintf("%032x", i+1), pid: int64(4000 + i), process: "php-fpm: pool",
		ns: "shop", pod: "checkout-7f9c6d5b8-x2x9q", uid: "6f0e4e8a-1c2d-4e5f-8a9b-0c1d2e3f4a5b", container: "php-fpm", node: "node-a",
		constraint: "memcg", cgroup: "/kubepods/burstable/pod6f0e4e8a-1c2d-4e5f-8a9b-0c1d2e3f4a5b/" + ctr64,
		memcg: "/kubepods/burstable/pod6f0e4e8a-1c2d-4e5f-8a9b-0c1d2e3f4a5b/" + ctr64, ctrID: ctr64,
		anonKB: 250 << 10, limit: 256 << 20, outcome: "survived", at: t0.Add(time.Duration(i) * time.Second),
	}
}

const ctr64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// logsOf puts each kill in its own resource, as the receiver does for
// kills of different containers.
func logsOf(kills ...testKill) plog.Logs {
	ld := plog.NewLogs()
	for _, k := range kills {
		rl := ld.ResourceLogs().AppendEmpty()
		r := rl.Resource().Attributes()
		put := func(m pcommon.Map, key, v string) {
			if v != "" {
				m.PutStr(key, v)
			}
		}
		put(r, "k8s.namespace.name", k.ns)
		put(r, "k8s.pod.name", k.pod)
		put(r, "k8s.pod.uid", k.uid)
		put(r, "k8s.container.name", k.container)
		put(r, "oom.container.kind", k.kind)
		put(r, "k8s.node.name", k.node)
		put(r, "host.name", k.node)
		put(r, "container.id", k.ctrID)
		put(r, "oom.cgroup.path", k.cgroup)
		if k.limit > 0 {
			r.PutInt("k8s.container.memory.limit", k.limit)
		}
		lr := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
		lr.SetEventName("oom_kill")
		lr.SetTimestamp(pcommon.NewTimestampFromTime(k.at))
		lr.Body().SetStr(fmt.Sprintf("Memory cgroup out of memory: Killed process %d (%s)", k.pid, k.process))
		a := lr.Attributes()
		a.PutInt("process.pid", k.pid)
		a.PutStr("process.executable.name", k.process)
		a.PutStr("oom.constraint", k.constraint)
		put(a, "oom.memcg", k.memcg)
		put(a, "oom.kill.id", k.id)
		put(a, "oom.container.outcome", k.outcome)
		a.PutStr("oom.boot_id", "b0075e1d")
		if k.anonKB > 0 {
			a.PutInt("oom.anon_rss_kb", k.anonKB)
		}
		if err := a.FromRaw(merge(a.AsRaw(), k.attrs)); err != nil {
			panic(err) // a test's attrs of a type pdata cannot hold
		}
	}
	return ld
}

// newTestExporter builds the exporter around client, started, with a
// clock the test moves.
func newTestExporter(t *testing.T, client kubernetes.Interface, mutate func(*Config)) (*eventsExporter, *componenttest.Telemetry, *time.Time) {
	t.Helper()
	cfg := createDefaultConfig()
	cfg.FlushInterval = time.Hour // tests flush by hand
	if mutate != nil {
		mutate(cfg)
	}
	require.NoError(t, cfg.Validate())
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	e, err := newExporter(cfg, metadatatest.NewSettings(tel), func(*Config) (kubernetes.Interface, error) { return client, nil })
	require.NoError(t, err)
	now := t0.Add(time.Hour)
	e.now = func() time.Time { return now }
	require.NoError(t, e.start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, e.shutdown(context.Background())) })
	return e, tel, &now
}

// counter sums a self-telemetry counter's points that carry attrs.
func counter(t *testing.T, tel *componenttest.Telemetry, name string, attrs ...attribute.KeyValue) int64 {
	t.Helper()
	m, err := tel.GetMetric("otelcol_" + name)
	if err != nil {
		return 0
	}
	var n int64
	for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
		match := true
		for _, a := range attrs {
			if v, ok := dp.Attributes.Value(a.Key); !ok || v != a.Value {
				match = false
			}
		}
		if match {
			n += dp.Value
		}
	}
	return n
}

func merge(a, b map[string]any) map[string]any {
	for k, v := range b {
		a[k] = v
	}
	return a
}
