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
	files, err := filepath.Glob(testutil.RepoPath(t, "examples/kubernetes/*.yaml"))
	require.NoError(t, err)
	var docs [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		docs = append(docs, bytes.Split(b, []byte("\n---"))...)
	}
	applied := dryRun(t, kubeapitest.Start(t), docs)
	require.GreaterOrEqual(t, applied, 6, "namespace, service account, cluster role, binding, configmap, daemonset")
}

// dryRun applies each YAML document as `kubectl apply --server-side
// --dry-run=server` would (the Namespace for real, so that namespaced
// objects may follow) and returns how many the API server accepted.
func dryRun(t *testing.T, cluster *kubeapitest.Cluster, docs [][]byte) int {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", cluster.Kubeconfig)
	require.NoError(t, err)
	dyn, err := dynamic.NewForConfig(cfg)
	require.NoError(t, err)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(cluster.Client.Discovery()))
	ctx := context.Background()
	applied := 0
	for _, doc := range docs {
		obj := &unstructured.Unstructured{}
		require.NoError(t, yaml.Unmarshal(doc, &obj.Object))
		if len(obj.Object) == 0 || obj.GetKind() == "" || obj.GetKind() == "Kustomization" {
			continue
		}
		gvk := obj.GroupVersionKind()
		if gvk.Group == "monitoring.coreos.com" {
			t.Logf("%s needs the prometheus-operator CRDs; its rules are the ones tested in examples/prometheus", gvk.Kind)
			continue
		}
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		require.NoError(t, err, "%s", gvk)
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
		require.NoError(t, err, "%s %s rejected by the API server", gvk.Kind, obj.GetName())
		applied++
		t.Logf("%s/%s accepted", strings.ToLower(gvk.Kind), obj.GetName())
	}
	return applied
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
