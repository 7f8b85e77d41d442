package collector

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/journaltest"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/testutil"
)

// Every collector configuration shipped in examples/ is accepted by the
// built distribution's `validate` (all components, all settings).
func TestExampleConfigsValidate(t *testing.T) {
	bin := testutil.CollectorBinary(t)
	checked := 0
	for c := range shippedConfigs(t) {
		cmd := exec.Command(bin, "validate", "--config", c)
		cmd.Env = append(os.Environ(), "K8S_NODE_NAME=node-a", "OTLP_ENDPOINT=otel-gateway:4317", "LOGS_ENDPOINT=http://loki:3100/otlp")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s:\n%s", c, out)
		checked++
		t.Logf("%s: valid", c)
	}
	require.GreaterOrEqual(t, checked, 5, "local, prometheus, otlp, logs and the DaemonSet's configs")
}

// shippedConfigs are the collector configurations in examples/ (path →
// parsed YAML), the DaemonSet's taken out of its ConfigMap.
func shippedConfigs(t *testing.T) map[string]map[string]any {
	t.Helper()
	configs, err := filepath.Glob(testutil.RepoPath(t, "examples/*/*.yaml"))
	require.NoError(t, err)
	cm, err := os.ReadFile(testutil.RepoPath(t, "examples/kubernetes/02-configmap.yaml"))
	require.NoError(t, err)
	var configMap struct {
		Data map[string]string `json:"data"`
	}
	require.NoError(t, yaml.Unmarshal(cm, &configMap))
	daemonset := filepath.Join(t.TempDir(), "daemonset-config.yaml")
	require.NoError(t, os.WriteFile(daemonset, []byte(configMap.Data["config.yaml"]), 0o600))
	out := map[string]map[string]any{}
	for _, c := range append(configs, daemonset) {
		b, err := os.ReadFile(c)
		require.NoError(t, err)
		var top map[string]any
		if yaml.Unmarshal(b, &top) != nil || top["receivers"] == nil {
			continue // not a collector config (manifests, rules, prometheus.yml)
		}
		out[c] = top
	}
	return out
}

// No shipped pipeline fed by the oomkill receiver has a stage that accepts
// data and returns before it is delivered or on disk (receiver README,
// "Delivery guarantees"): no batch processor, and every exporter is either
// synchronous (debug without a queue, prometheus) or queues on
// file_storage.
func TestShippedPipelinesAreDurable(t *testing.T) {
	synchronous := map[string]bool{"debug": true, "prometheus": true}
	checked := 0
	for c, top := range shippedConfigs(t) {
		get := func(m any, keys ...string) any {
			for _, k := range keys {
				mm, ok := m.(map[string]any)
				if !ok {
					return nil
				}
				m = mm[k]
			}
			return m
		}
		pipelines, _ := get(top, "service", "pipelines").(map[string]any)
		for name, p := range pipelines {
			if !strings.Contains(fmt.Sprint(get(p, "receivers")), "oomkill") {
				continue
			}
			where := fmt.Sprintf("%s: pipeline %s", c, name)
			procs, _ := get(p, "processors").([]any)
			for _, proc := range procs {
				typ := strings.SplitN(proc.(string), "/", 2)[0]
				require.NotEqual(t, "batch", typ, "%s: the batch processor returns before the data is durable", where)
			}
			exps, _ := get(p, "exporters").([]any)
			require.NotEmpty(t, exps, where)
			for _, e := range exps {
				id := e.(string)
				typ := strings.SplitN(id, "/", 2)[0]
				queue := get(top, "exporters", id, "sending_queue")
				if synchronous[typ] && queue == nil {
					continue
				}
				storage, _ := get(queue, "storage").(string)
				require.True(t, strings.HasPrefix(storage, "file_storage"), "%s: exporter %s needs sending_queue::storage on file_storage", where, id)
				require.NotEqual(t, true, get(queue, "block_on_overflow"), "%s: exporter %s: a full queue must return a retryable error", where, id)
			}
			checked++
		}
	}
	require.GreaterOrEqual(t, checked, 7, "local (2), otlp (2), logs, prometheus, DaemonSet (2) pipelines")
}

// The kmsg overlay's collector config (examples/kubernetes-kmsg) is the
// DaemonSet's config.yaml with kmsg.yaml merged over it, as the overlay
// passes both with --config: valid, and reading source kmsg.
func TestKmsgOverlayConfigValidates(t *testing.T) {
	bin := testutil.CollectorBinary(t)
	read := func(p string) map[string]string {
		b, err := os.ReadFile(testutil.RepoPath(t, p))
		require.NoError(t, err)
		var cm struct {
			Data map[string]string `json:"data"`
		}
		require.NoError(t, yaml.Unmarshal(b, &cm))
		return cm.Data
	}
	dir := t.TempDir()
	base := filepath.Join(dir, "config.yaml")
	overlay := filepath.Join(dir, "kmsg.yaml")
	require.NoError(t, os.WriteFile(base, []byte(read("examples/kubernetes/02-configmap.yaml")["config.yaml"]), 0o600))
	kmsg := read("examples/kubernetes-kmsg/kmsg-config.yaml")["kmsg.yaml"]
	require.Contains(t, kmsg, "source: kmsg")
	require.NoError(t, os.WriteFile(overlay, []byte(kmsg), 0o600))
	cmd := exec.Command(bin, "validate", "--config", base, "--config", overlay)
	cmd.Env = append(os.Environ(), "K8S_NODE_NAME=node-a")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	// The second file is merged, not ignored: a wrong source there fails.
	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte(strings.Replace(kmsg, "source: kmsg", "source: dmesg", 1)), 0o600))
	cmd = exec.Command(bin, "validate", "--config", base, "--config", bad)
	cmd.Env = append(os.Environ(), "K8S_NODE_NAME=node-a")
	out, err = cmd.CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), `source "dmesg"`)
}

// make run's first screen has no warning a newcomer would have to puzzle
// over (such as the Prometheus exporter's deprecation notice): the
// collector started with examples/local/config.yaml logs nothing at warn
// or error up to "Everything is ready" and after a kill. The config is the
// shipped one but for what must not touch the machine: it reads a journal
// file of its own, keeps its state in a temporary directory and listens on
// free ports.
func TestLocalConfigStartsWithoutWarnings(t *testing.T) {
	testutil.CollectorBinary(t)
	b, err := os.ReadFile(testutil.RepoPath(t, "examples/local/config.yaml"))
	require.NoError(t, err)
	var cfg map[string]any
	require.NoError(t, yaml.Unmarshal(b, &cfg))
	dir := t.TempDir()
	journaltest.Write(t, filepath.Join(dir, "system.journal"), report(20000, time.Now()))
	set := func(value any, keys ...string) {
		m := cfg
		for _, k := range keys[:len(keys)-1] {
			next, ok := m[k].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[k] = next
			}
			m = next
		}
		m[keys[len(keys)-1]] = value
	}
	// The shipped source: auto would read /dev/kmsg on a machine without
	// journald; the journal file is what this test writes kills into.
	set("journal", "receivers", "oomkill", "source")
	set(dir, "receivers", "oomkill", "journal", "directory")
	set(t.TempDir(), "extensions", "file_storage", "directory")
	promPort := testutil.FreePort(t)
	set(fmt.Sprintf("127.0.0.1:%d", promPort), "exporters", "prometheus", "endpoint")
	readers := cfg["service"].(map[string]any)["telemetry"].(map[string]any)["metrics"].(map[string]any)["readers"].([]any)
	readers[0].(map[string]any)["pull"].(map[string]any)["exporter"].(map[string]any)["prometheus"].(map[string]any)["port"] = testutil.FreePort(t)
	out, err := yaml.Marshal(cfg)
	require.NoError(t, err)
	c := testutil.StartCollector(t, testutil.WriteConfig(t, string(out)), testutil.ProcessOptions{})
	log := c.Log
	c.WaitReady(t, 30*time.Second)
	journaltest.Write(t, filepath.Join(dir, "system.journal"), report(20001, time.Now()))
	require.Eventually(t, func() bool {
		total, _, _ := scrapeKills(fmt.Sprintf("http://127.0.0.1:%d/metrics", promPort))
		return total == 1
	}, 30*time.Second, 100*time.Millisecond, "the kill appended after the start is counted")
	for _, line := range strings.Split(log(), "\n") {
		require.NotRegexp(t, `\t(warn|error)\t`, line, "make run's first screen")
	}
}
