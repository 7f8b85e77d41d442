package oomkillreceiver

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.uber.org/zap"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/metadatatest"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/journaltest"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/testutil"
)

const (
	bootA    = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
	bootB    = "aaaabbbbccccddddeeeeffff00001111"
	hostName = "node-a"
	testPod  = "1f6a2c3e-8b4d-4e5f-9a0b-123456789abc"
	testCtr  = "94fa0437bf378ced2c1cd2f9cb3eccb62ae833f896541a9407e69ebe3c03ec57"
)

var storageID = component.MustNewIDWithName("file_storage", "test")

// host serves extensions to the receiver under test.
type host struct {
	component.Host
	ext map[component.ID]component.Component
}

func (h host) GetExtensions() map[component.ID]component.Component { return h.ext }

// fileStorage starts contrib's real file_storage extension on dir; it is
// shut down when the test ends, or earlier by stopStorage.
func fileStorage(t testing.TB, dir string) host {
	t.Helper()
	f := filestorage.NewFactory()
	cfg := f.CreateDefaultConfig().(*filestorage.Config)
	cfg.Directory = dir
	ext, err := f.Create(context.Background(), extensiontest.NewNopSettings(f.Type()), cfg)
	require.NoError(t, err)
	require.NoError(t, ext.Start(context.Background(), componenttest.NewNopHost()))
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { require.NoError(t, ext.Shutdown(context.Background())) }) })
	storageStops[ext] = func() { once.Do(func() { require.NoError(t, ext.Shutdown(context.Background())) }) }
	return host{Host: componenttest.NewNopHost(), ext: map[component.ID]component.Component{storageID: ext}}
}

// storageStops shuts a fileStorage down before the test ends (a restart).
var storageStops = map[component.Component]func(){}

func stopStorage(h host) {
	for _, e := range h.ext {
		storageStops[e]()
		delete(storageStops, e)
	}
}

// running is a started receiver with its sinks.
type running struct {
	logs    *consumertest.LogsSink
	metrics *consumertest.MetricsSink
	tel     *componenttest.Telemetry
	stop    func()
}

// start creates the receiver in a logs and a metrics pipeline (one shared
// instance) and starts it.
func start(t testing.TB, cfg *Config, h component.Host, logs consumer.Logs, metrics consumer.Metrics) *running {
	t.Helper()
	return startLogging(t, cfg, h, logs, metrics, nil)
}

// startLogging is start with the receiver's log going to logger.
func startLogging(t testing.TB, cfg *Config, h component.Host, logs consumer.Logs, metrics consumer.Metrics, logger *zap.Logger) *running {
	t.Helper()
	r := &running{logs: &consumertest.LogsSink{}, metrics: &consumertest.MetricsSink{}, tel: componenttest.NewTelemetry()}
	if logs == nil {
		logs = r.logs
	}
	if metrics == nil {
		metrics = r.metrics
	}
	set := metadatatest.NewSettings(r.tel)
	if logger != nil {
		set.Logger = logger
	}
	f := NewFactory()
	lr, err := f.CreateLogs(context.Background(), set, cfg, logs)
	require.NoError(t, err)
	mr, err := f.CreateMetrics(context.Background(), set, cfg, metrics)
	require.NoError(t, err)
	require.NoError(t, lr.Start(context.Background(), h))
	require.NoError(t, mr.Start(context.Background(), h))
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			require.NoError(t, lr.Shutdown(context.Background()))
			require.NoError(t, mr.Shutdown(context.Background()))
		})
	}
	t.Cleanup(func() { require.NoError(t, r.tel.Shutdown(context.Background())) })
	t.Cleanup(r.stop)
	return r
}

func testConfig(dir string) *Config {
	cfg := createDefaultConfig().(*Config)
	cfg.Journal.Directory = dir
	cfg.StartAt = StartAtBeginning
	cfg.NodeName = "k8s-node-a"
	cfg.Retry.InitialInterval = 10 * time.Millisecond
	cfg.Retry.MaxInterval = 50 * time.Millisecond
	// The journals here are made of fixtures, not this machine's log: the
	// machine's real OOM kills (other tests make them) must not count.
	// witness_test.go turns it on with counters of its own.
	cfg.Witness.Enabled = false
	return cfg
}

// kernelFixture turns a shared kernel fixture into journal entries.
func kernelFixture(t *testing.T, name string, start time.Time, boot string) []journaltest.Entry {
	return journaltest.FromKernelFixture(t, filepath.Join("..", "..", "testdata", "kernel", name), start, boot, hostName)
}

// report is a 6.x memcg OOM report killing pid in the test container.
func report(pid int, at time.Time, boot string) []journaltest.Entry {
	memcg := "/kubepods/burstable/pod" + testPod + "/" + testCtr
	return journaltest.Entries(journaltest.OOMReport("python3", pid, 0, memcg), at, boot, hostName)
}

// logRecords flattens every log record the sink received.
func logRecords(sink *consumertest.LogsSink) []plog.LogRecord {
	return testutil.LogRecords(sink.AllLogs())
}

// lastTotal sums container.oom_kill.count over the newest value of every
// series the sink received (a delivery carries only the series it changed).
func lastTotal(sink *consumertest.MetricsSink) int64 {
	return total(latest(sink.AllMetrics()))
}

func total(md pmetric.Metrics) int64 {
	var n int64
	forEachPoint(md, func(_ pcommon.Resource, dp pmetric.NumberDataPoint) { n += dp.IntValue() })
	return n
}

// forEachPoint calls fn for every container.oom_kill.count data point.
func forEachPoint(md pmetric.Metrics, fn func(pcommon.Resource, pmetric.NumberDataPoint)) {
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		sms := rms.At(i).ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				if ms.At(k).Name() != "container.oom_kill.count" {
					continue
				}
				dps := ms.At(k).Sum().DataPoints()
				for d := 0; d < dps.Len(); d++ {
					fn(rms.At(i).Resource(), dps.At(d))
				}
			}
		}
	}
}

// latest folds payloads into one with the newest data point of each series,
// one ResourceMetrics per data point.
func latest(payloads []pmetric.Metrics) pmetric.Metrics {
	type point struct {
		res pcommon.Resource
		dp  pmetric.NumberDataPoint
	}
	byKey := map[string]point{}
	var order []string
	for _, md := range payloads {
		forEachPoint(md, func(res pcommon.Resource, dp pmetric.NumberDataPoint) {
			key := fmt.Sprint(res.Attributes().AsRaw(), dp.Attributes().AsRaw())
			if _, ok := byKey[key]; !ok {
				order = append(order, key)
			}
			byKey[key] = point{res, dp}
		})
	}
	out := pmetric.NewMetrics()
	if len(payloads) == 0 {
		return out
	}
	for _, key := range order {
		p := byKey[key]
		rm := out.ResourceMetrics().AppendEmpty()
		p.res.CopyTo(rm.Resource())
		sm := rm.ScopeMetrics().AppendEmpty()
		first := payloads[0].ResourceMetrics().At(0).ScopeMetrics().At(0)
		first.Scope().CopyTo(sm.Scope())
		m := sm.Metrics().AppendEmpty()
		first.Metrics().At(0).CopyTo(m)
		m.Sum().DataPoints().RemoveIf(func(pmetric.NumberDataPoint) bool { return true })
		p.dp.CopyTo(m.Sum().DataPoints().AppendEmpty())
	}
	return out
}

func pids(records []plog.LogRecord) map[int64]int {
	out := map[int64]int{}
	for _, lr := range records {
		v, _ := lr.Attributes().Get("process.pid")
		out[v.Int()]++
	}
	return out
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, 20*time.Second, 10*time.Millisecond, what)
}
