//go:build linux

// Package manifests validates the shipped Kubernetes manifests against a
// real kube-apiserver with a server-side dry run, as
// `kubectl apply --server-side --dry-run=server` does.
package manifests

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/kubeapitest"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/testutil"
)

func TestKubernetesManifestsDryRun(t *testing.T) {
	cluster := kubeapitest.Start(t)
	cfg, err := clientcmd.BuildConfigFromFlags("", cluster.Kubeconfig)
	require.NoError(t, err)
	dyn, err := dynamic.NewForConfig(cfg)
	require.NoError(t, err)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(cluster.Client.Discovery()))
	ctx := context.Background()

	files, err := filepath.Glob(testutil.RepoPath(t, "examples/kubernetes/*.yaml"))
	require.NoError(t, err)
	applied := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, doc := range bytes.Split(b, []byte("\n---")) {
			obj := &unstructured.Unstructured{}
			require.NoError(t, yaml.Unmarshal(doc, &obj.Object), f)
			if len(obj.Object) == 0 || obj.GetKind() == "" || obj.GetKind() == "Kustomization" {
				continue
			}
			gvk := obj.GroupVersionKind()
			if gvk.Group == "monitoring.coreos.com" {
				t.Logf("%s: %s needs the prometheus-operator CRDs; its rules are the ones tested in examples/prometheus", f, gvk.Kind)
				continue
			}
			m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			require.NoError(t, err, "%s: %s", f, gvk)
			ri := dyn.Resource(m.Resource)
			opts := metav1.ApplyOptions{FieldManager: "manifests-test", DryRun: []string{metav1.DryRunAll}}
			if gvk.Kind == "Namespace" {
				opts.DryRun = nil // namespaced objects below need it to exist
			}
			var res dynamic.ResourceInterface = ri
			if m.Scope.Name() == "namespace" {
				res = ri.Namespace(obj.GetNamespace())
			}
			_, err = res.Apply(ctx, obj.GetName(), obj, opts)
			require.NoError(t, err, "%s: %s %s rejected by the API server", f, gvk.Kind, obj.GetName())
			applied++
			t.Logf("%s: %s/%s accepted", filepath.Base(f), strings.ToLower(gvk.Kind), obj.GetName())
		}
	}
	require.GreaterOrEqual(t, applied, 6, "namespace, service account, cluster role, binding, configmap, daemonset")
}

// The PrometheusRule carries exactly the rules that examples/prometheus
// tests with promtool.
func TestPrometheusRuleMatchesAlerts(t *testing.T) {
	read := func(p string) map[string]any {
		b, err := os.ReadFile(testutil.RepoPath(t, p))
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, yaml.Unmarshal(b, &m))
		return m
	}
	alerts := read("examples/prometheus/alerts.yaml")
	rule := read("examples/kubernetes/prometheusrule.yaml")
	require.Equal(t, alerts["groups"], rule["spec"].(map[string]any)["groups"])
}
