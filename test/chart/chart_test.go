// Package chart tests charts/otelcol-oomkill with a real helm (v4, built from
// the Go module proxy by test/helmbin/build.sh and cached): it lints, its
// defaults render what `kubectl apply -k examples/kubernetes` applies,
// object by object, its schema refuses wrong values, every configuration it
// renders is accepted by the built collector, and its objects by a real
// kube-apiserver (the prometheus-operator's by the operator's Go types).
package chart

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/testutil"
)

const (
	release   = "otelcol-oomkill"
	namespace = "otelcol-oomkill"
)

// tool runs one of the repository's cached-build scripts and returns the
// last line it prints: a binary or a directory.
func tool(t *testing.T, script string, args ...string) string {
	t.Helper()
	cmd := exec.Command(testutil.RepoPath(t, script), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "%s: %s", script, stderr.String())
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

func helm(t *testing.T) string { return tool(t, "test/helmbin/build.sh") }

func kubectl(t *testing.T) string {
	return filepath.Join(tool(t, "test/k8sbin/build.sh", "kubectl"), "kubectl")
}

// object is one Kubernetes object as parsed YAML.
type object = map[string]any

// template runs `helm template` on the chart as `helm install otelcol-oomkill
// -n otelcol-oomkill` would, with extra arguments (--set ...).
func template(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(helm(t), append([]string{"template", release, testutil.RepoPath(t, "charts/otelcol-oomkill"), "--namespace", namespace}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return stderr.String(), err
	}
	return string(out), nil
}

// render is template that must succeed, as objects keyed "Kind/name".
func render(t *testing.T, args ...string) map[string]object {
	t.Helper()
	out, err := template(t, args...)
	require.NoError(t, err, "helm template %v: %s", args, out)
	return objects(t, out)
}

func objects(t *testing.T, manifests string) map[string]object {
	t.Helper()
	out := map[string]object{}
	for _, doc := range strings.Split(manifests, "\n---") {
		var o object
		require.NoError(t, yaml.Unmarshal([]byte(doc), &o), doc)
		if len(o) == 0 {
			continue
		}
		meta := o["metadata"].(map[string]any)
		key := o["kind"].(string) + "/" + meta["name"].(string)
		require.NotContains(t, out, key, "rendered twice")
		out[key] = o
	}
	return out
}

func get(o any, keys ...string) any {
	for _, k := range keys {
		m, ok := o.(map[string]any)
		if !ok {
			return nil
		}
		o = m[k]
	}
	return o
}

// collectorConfig is the ConfigMap's config.yaml, parsed.
func collectorConfig(t *testing.T, objs map[string]object) (string, map[string]any) {
	t.Helper()
	cm, ok := objs["ConfigMap/"+release]
	require.True(t, ok, "the ConfigMap")
	text, _ := get(cm, "data", "config.yaml").(string)
	var cfg map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(text), &cfg), text)
	return text, cfg
}

func TestLint(t *testing.T) {
	out, err := exec.Command(helm(t), "lint", "--strict", testutil.RepoPath(t, "charts/otelcol-oomkill")).CombinedOutput()
	require.NoError(t, err, "%s", out)
	t.Logf("%s", out)
}

// helmOnlyLabels are the labels Helm's conventions add to every object's
// metadata and examples/kubernetes does not have; nothing else may differ.
var helmOnlyLabels = []string{"app.kubernetes.io/instance", "app.kubernetes.io/version", "app.kubernetes.io/managed-by", "helm.sh/chart"}

// normalized drops from o what legitimately differs between the chart and
// the kustomize example: Helm's labels, the value of the annotation that
// rolls the pods on a new configuration (the chart's is a hash, the
// example's a number to raise by hand), and the config's comments and key
// order (the ConfigMap's config.yaml is compared parsed).
func normalized(t *testing.T, o object) object {
	t.Helper()
	b, err := yaml.Marshal(o)
	require.NoError(t, err)
	var c object
	require.NoError(t, yaml.Unmarshal(b, &c))
	if labels, ok := get(c, "metadata", "labels").(map[string]any); ok {
		for _, l := range helmOnlyLabels {
			delete(labels, l)
		}
	}
	if ann, ok := get(c, "spec", "template", "metadata", "annotations").(map[string]any); ok {
		if _, ok := ann["otelcol-oomkill/config-revision"]; ok {
			ann["otelcol-oomkill/config-revision"] = "<revision>"
		}
	}
	if c["kind"] == "ConfigMap" {
		data := c["data"].(map[string]any)
		var cfg any
		require.NoError(t, yaml.Unmarshal([]byte(data["config.yaml"].(string)), &cfg))
		data["config.yaml"] = cfg
	}
	return c
}

// The chart's defaults render the objects `kubectl apply -k
// examples/kubernetes` applies, equal object by object, but for the
// Namespace: `helm install --create-namespace` makes it (and Helm fails on a
// chart that renders its own release namespace), so the chart renders it
// only with namespace.create=true, and then equal too.
func TestDefaultsEqualKustomizeExample(t *testing.T) {
	out, err := exec.Command(kubectl(t), "kustomize", testutil.RepoPath(t, "examples/kubernetes")).Output()
	require.NoError(t, err, "kubectl kustomize examples/kubernetes")
	example := objects(t, string(out))
	chart := render(t)

	require.Contains(t, example, "Namespace/"+namespace)
	require.NotContains(t, chart, "Namespace/"+namespace, "the release namespace is helm's to create")
	withNamespace := render(t, "--set", "namespace.create=true")
	require.Equal(t, normalized(t, example["Namespace/"+namespace]), normalized(t, withNamespace["Namespace/"+namespace]))
	delete(example, "Namespace/"+namespace)
	delete(withNamespace, "Namespace/"+namespace)
	require.Equal(t, keys(chart), keys(withNamespace), "namespace.create adds the Namespace and nothing else")

	require.Equal(t, keys(example), keys(chart), "the same objects")
	for k, want := range example {
		require.Equal(t, normalized(t, want), normalized(t, chart[k]), "%s: the chart's defaults differ from examples/kubernetes", k)
	}
	t.Logf("equal: %s", strings.Join(keys(chart), ", "))
}

func keys(m map[string]object) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// The chart's alert rules are examples/prometheus/alerts.yaml (tested by
// promtool in `make rules`): files/alerts.yaml is a byte-for-byte copy, and
// the rendered PrometheusRule equals examples/kubernetes/prometheusrule.yaml.
func TestPrometheusRuleIsTheShippedRules(t *testing.T) {
	shipped, err := os.ReadFile(testutil.RepoPath(t, "examples/prometheus/alerts.yaml"))
	require.NoError(t, err)
	copied, err := os.ReadFile(testutil.RepoPath(t, "charts/otelcol-oomkill/files/alerts.yaml"))
	require.NoError(t, err)
	require.Equal(t, string(shipped), string(copied),
		"charts/otelcol-oomkill/files/alerts.yaml must be examples/prometheus/alerts.yaml: cp examples/prometheus/alerts.yaml charts/otelcol-oomkill/files/")

	chart := render(t, "--set", "monitoring.prometheusRule.enabled=true", "--set", "monitoring.prometheusRule.labels.release=prometheus")
	b, err := os.ReadFile(testutil.RepoPath(t, "examples/kubernetes/prometheusrule.yaml"))
	require.NoError(t, err)
	var example object
	require.NoError(t, yaml.Unmarshal(b, &example))
	require.Equal(t, normalized(t, example), normalized(t, chart["PrometheusRule/"+release]))
}

// Wrong values fail at `helm template` (and so at `helm install`), naming
// what is wrong, before anything reaches a cluster.
func TestWrongValuesFail(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string // in helm's error
	}{
		{"a source that does not exist", []string{"--set", "source=dmesg"}, "source"},
		{"kmsg.privileged not a boolean", []string{"--set", "source=kmsg", "--set-string", "kmsg.privileged=yes"}, "privileged"},
		{"a misspelt key", []string{"--set", "exporter.prometheus.enabled=false"}, "exporter"},
		{"a journal gid that is not a number", []string{"--set", "journal.groupIDs={systemd-journal}"}, "groupIDs"},
		{"an unknown pull policy", []string{"--set", "image.pullPolicy=Sometimes"}, "pullPolicy"},
		{"an OTLP endpoint with a scheme", []string{"--set", "exporters.otlp.enabled=true", "--set", "exporters.otlp.endpoint=http://gateway:4317"}, "endpoint"},
		{"OTLP on without an endpoint", []string{"--set", "exporters.otlp.enabled=true"}, "exporters.otlp.endpoint"},
		{"every exporter off", []string{"--set", "exporters.prometheus.enabled=false", "--set", "exporters.debug.enabled=false", "--set", "exporters.k8sevents.enabled=false"}, "enable at least one"},
		{"start_at unknown", []string{"--set", "startAt=now"}, "startAt"},
		{"a memory limit that is no quantity", []string{"--set", "resources.limits.memory=lots"}, "memory"},
		{"a relative checkpoint path", []string{"--set", "checkpoint.hostPath=var/lib/x"}, "hostPath"},
		{"a port out of range", []string{"--set", "telemetry.port=70000"}, "port"},
		{"a toleration with a typo", []string{"--set", "tolerations[0].operater=Exists"}, "operater"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := template(t, tc.args...)
			require.Error(t, err, "helm template %v rendered:\n%s", tc.args, out)
			require.Contains(t, out, tc.want)
			t.Logf("%s", strings.TrimSpace(out))
		})
	}
}

// variants are value sets whose rendered configuration and objects are
// checked beyond the defaults.
var variants = map[string][]string{
	"defaults": nil,
	"otlp and prometheus, no events": {
		"--set", "exporters.otlp.enabled=true", "--set", "exporters.otlp.endpoint=otel-gateway.observability.svc:4317",
		"--set", "exporters.k8sevents.enabled=false",
	},
	"otlp only, over TLS with headers": {
		"--set", "exporters.prometheus.enabled=false", "--set", "exporters.debug.enabled=false", "--set", "exporters.k8sevents.enabled=false",
		"--set", "exporters.otlp.enabled=true", "--set", "exporters.otlp.endpoint=${env:OTLP_ENDPOINT}", "--set", "exporters.otlp.insecure=false",
		"--set", "exporters.otlp.headers.authorization=Bearer ${env:OTLP_TOKEN}",
	},
	"prometheus only, extra config, volatile journal": {
		"--set", "exporters.debug.enabled=false", "--set", "exporters.k8sevents.enabled=false", "--set", "journal.persistent=false",
		"--set", "config.processors.k8smeta.extract.labels={app}", "--set", "startAt=beginning",
	},
	"kmsg":             {"--set", "source=kmsg"},
	"kmsg, privileged": {"--set", "source=kmsg", "--set", "kmsg.privileged=true"},
	"auto":             {"--set", "source=auto"},
	"scheduling and monitoring": {
		"--set", "priorityClassName=system-node-critical", "--set", "nodeSelector.kubernetes\\.io/os=linux",
		"--set", "journal.groupIDs={190}", "--set", "image.repository=registry.example.com/otelcol-oomkill", "--set", "image.tag=0.1.1",
		"--set", "monitoring.podMonitor.enabled=true", "--set", "monitoring.serviceMonitor.enabled=true", "--set", "monitoring.prometheusRule.enabled=true",
	},
}

// What each variant asks for is what renders: exporters in the pipelines,
// the events rule only with the k8sevents exporter, the metrics port only
// with the Prometheus exporter, the persistent journal's mount only when
// asked.
func TestVariantsRenderWhatTheyAskFor(t *testing.T) {
	for name, args := range variants {
		t.Run(name, func(t *testing.T) {
			objs := render(t, args...)
			_, cfg := collectorConfig(t, objs)
			exporters := func(pipeline string) string {
				var names []string
				for _, e := range asList(get(cfg, "service", "pipelines", pipeline, "exporters")) {
					names = append(names, e.(string))
				}
				return strings.Join(names, " ")
			}
			rules := toString(get(objs["ClusterRole/"+release], "rules"))
			ds := objs["DaemonSet/"+release]
			podSpec := toString(get(ds, "spec", "template", "spec"))
			container := get(ds, "spec", "template", "spec", "containers").([]any)[0]
			caps := toString(get(container, "securityContext", "capabilities"))
			switch name {
			case "kmsg", "kmsg, privileged", "auto":
				require.Equal(t, strings.Split(name, ",")[0], get(cfg, "receivers", "oomkill", "source"))
				require.Contains(t, podSpec, "hostPath:path:/dev/kmsgtype:CharDevicename:kmsg")
				require.Contains(t, podSpec, "mountPath:/dev/kmsgname:kmsgreadOnly:true")
				require.Equal(t, "add:-SYSLOGdrop:-ALL", caps, "CAP_SYSLOG its only capability")
				require.Equal(t, 0.0, get(ds, "spec", "template", "spec", "securityContext", "runAsUser"))
				require.Equal(t, true, get(container, "securityContext", "readOnlyRootFilesystem"))
				require.Equal(t, name == "kmsg, privileged", get(container, "securityContext", "privileged") == true)
				require.Equal(t, name != "kmsg, privileged", get(container, "securityContext", "allowPrivilegeEscalation") == false)
				if name == "auto" {
					require.Contains(t, podSpec, "/var/log/journal")
					require.Contains(t, podSpec, "hostPath:path:/run/systemd/journaltype:Directoryname:journald-socket", "journald's socket, for auto to see it")
				} else {
					require.NotContains(t, podSpec, "journal")
					require.NotContains(t, podSpec, "machine-id")
				}
			case "defaults":
				require.Equal(t, "journal", get(cfg, "receivers", "oomkill", "source"))
				require.Equal(t, "drop:-ALL", caps)
				require.NotContains(t, podSpec, "kmsg")
				require.Equal(t, "prometheus", exporters("metrics"))
				require.Equal(t, "debug k8sevents", exporters("logs"))
				require.Contains(t, rules, "events.k8s.io")
			case "otlp and prometheus, no events":
				require.Equal(t, "prometheus otlp_grpc", exporters("metrics"))
				require.Equal(t, "debug otlp_grpc", exporters("logs"))
				require.NotContains(t, rules, "events.k8s.io")
				require.Equal(t, "file_storage", get(cfg, "exporters", "otlp_grpc", "sending_queue", "storage"), "the persistent queue")
			case "otlp only, over TLS with headers":
				require.Equal(t, "otlp_grpc", exporters("metrics"))
				require.Equal(t, "otlp_grpc", exporters("logs"))
				require.NotContains(t, podSpec, "containerPort:9464")
				require.Equal(t, "Bearer ${env:OTLP_TOKEN}", get(cfg, "exporters", "otlp_grpc", "headers", "authorization"))
			case "prometheus only, extra config, volatile journal":
				require.Equal(t, "prometheus", exporters("metrics"))
				require.Empty(t, get(cfg, "service", "pipelines", "logs"), "no logs pipeline without a logs exporter")
				require.NotContains(t, podSpec, "/var/log/journal")
				require.Contains(t, podSpec, "/run/log/journal")
				require.Equal(t, []any{"app"}, get(cfg, "processors", "k8smeta", "extract", "labels"))
				require.Equal(t, "${env:K8S_NODE_NAME}", get(cfg, "processors", "k8smeta", "node_name"), "merged, not replaced")
				require.Equal(t, "beginning", get(cfg, "receivers", "oomkill", "start_at"))
			case "scheduling and monitoring":
				require.Equal(t, "system-node-critical", get(ds, "spec", "template", "spec", "priorityClassName"))
				require.Equal(t, []any{190.0}, get(ds, "spec", "template", "spec", "securityContext", "supplementalGroups"))
				require.Contains(t, podSpec, "registry.example.com/otelcol-oomkill:0.1.1")
				for _, k := range []string{"PodMonitor/", "ServiceMonitor/", "Service/", "PrometheusRule/"} {
					require.Contains(t, objs, k+release)
				}
			}
		})
	}
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// toString is v as YAML without blanks, for Contains checks.
func toString(v any) string {
	b, _ := yaml.Marshal(v)
	return strings.ReplaceAll(strings.ReplaceAll(string(b), "\n", " "), " ", "")
}

// A new configuration rolls the pods: the pod template's revision
// annotation follows the configuration.
func TestConfigChangeRollsPods(t *testing.T) {
	revision := func(args ...string) any {
		return get(render(t, args...)["DaemonSet/"+release], "spec", "template", "metadata", "annotations", "otelcol-oomkill/config-revision")
	}
	require.Equal(t, revision(), revision())
	require.NotEqual(t, revision(), revision("--set", "exporters.debug.verbosity=detailed"))
}
