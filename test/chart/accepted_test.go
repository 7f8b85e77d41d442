//go:build linux

package chart

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/kubeapitest"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/testutil"
)

// Every configuration the chart renders is one the built collector
// accepts (`otelcol-oomkill validate`: every component, every setting).
func TestRenderedConfigsValidate(t *testing.T) {
	bin := testutil.CollectorBinary(t)
	for name, args := range variants {
		t.Run(name, func(t *testing.T) {
			text, _ := collectorConfig(t, render(t, args...))
			f := filepath.Join(t.TempDir(), "config.yaml")
			require.NoError(t, os.WriteFile(f, []byte(text), 0o600))
			cmd := exec.Command(bin, "validate", "--config", f)
			cmd.Env = append(os.Environ(), "K8S_NODE_NAME=node-a", "OTLP_ENDPOINT=otel-gateway:4317", "OTLP_TOKEN=t")
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "%s\n%s", out, text)
		})
	}
}

// The rendered objects are accepted by a real kube-apiserver (server-side
// apply, dry run, as `helm install --dry-run=server` would send them); the
// prometheus-operator's objects, whose CRDs it lacks, decode strictly into
// the operator's own Go types (a misspelt field fails).
func TestRenderedObjectsAccepted(t *testing.T) {
	cluster := kubeapitest.Start(t)
	cfg, err := clientcmd.BuildConfigFromFlags("", cluster.Kubeconfig)
	require.NoError(t, err)
	dyn, err := dynamic.NewForConfig(cfg)
	require.NoError(t, err)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(cluster.Client.Discovery()))
	ctx := context.Background()

	for name, args := range variants {
		t.Run(name, func(t *testing.T) {
			objs := render(t, append([]string{"--set", "namespace.create=true"}, args...)...)
			// The Namespace first: the namespaced objects' dry run needs it to exist.
			for _, k := range append([]string{"Namespace/" + namespace}, keys(objs)...) {
				o, ok := objs[k]
				if !ok || (k != "Namespace/"+namespace && o["kind"] == "Namespace") {
					continue
				}
				u := &unstructured.Unstructured{Object: o}
				gvk := u.GroupVersionKind()
				if gvk.Group == "monitoring.coreos.com" {
					strictOperatorDecode(t, k, o)
					continue
				}
				m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
				require.NoError(t, err, k)
				var res dynamic.ResourceInterface = dyn.Resource(m.Resource)
				if m.Scope.Name() == "namespace" {
					res = dyn.Resource(m.Resource).Namespace(u.GetNamespace())
				}
				opts := metav1.ApplyOptions{FieldManager: "chart-test", DryRun: []string{metav1.DryRunAll}}
				if gvk.Kind == "Namespace" {
					opts.DryRun = nil
				}
				_, err = res.Apply(ctx, u.GetName(), u, opts)
				require.NoError(t, err, "%s rejected by the API server", k)
			}
		})
	}
}

func strictOperatorDecode(t *testing.T, key string, o map[string]any) {
	t.Helper()
	b, err := json.Marshal(o)
	require.NoError(t, err)
	var into any
	switch o["kind"] {
	case "PodMonitor":
		into = &monitoringv1.PodMonitor{}
	case "ServiceMonitor":
		into = &monitoringv1.ServiceMonitor{}
	case "PrometheusRule":
		into = &monitoringv1.PrometheusRule{}
	default:
		t.Fatalf("%s: no operator type for it", key)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(into), "%s does not decode into the prometheus-operator's type", key)
	if pm, ok := into.(*monitoringv1.PodMonitor); ok {
		var ports []string
		for _, e := range pm.Spec.PodMetricsEndpoints {
			ports = append(ports, *e.Port)
		}
		require.Equal(t, "metrics telemetry", strings.Join(ports, " "))
	}
}
