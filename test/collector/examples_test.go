package collector

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

// Every collector configuration shipped in examples/ is accepted by the
// built distribution's `validate` (all components, all settings).
func TestExampleConfigsValidate(t *testing.T) {
	bin := collectorBinary(t)
	configs, err := filepath.Glob(filepath.Join("..", "..", "examples", "*", "*.yaml"))
	require.NoError(t, err)
	// The DaemonSet's config lives inside its ConfigMap.
	cm, err := os.ReadFile(filepath.Join("..", "..", "examples", "kubernetes", "02-configmap.yaml"))
	require.NoError(t, err)
	var configMap struct {
		Data map[string]string `json:"data"`
	}
	require.NoError(t, yaml.Unmarshal(cm, &configMap))
	daemonset := filepath.Join(t.TempDir(), "daemonset-config.yaml")
	require.NoError(t, os.WriteFile(daemonset, []byte(configMap.Data["config.yaml"]), 0o600))

	checked := 0
	for _, c := range append(configs, daemonset) {
		b, err := os.ReadFile(c)
		require.NoError(t, err)
		var top map[string]any
		if yaml.Unmarshal(b, &top) != nil || top["receivers"] == nil {
			continue // not a collector config (manifests, rules, prometheus.yml)
		}
		cmd := exec.Command(bin, "validate", "--config", c)
		cmd.Env = append(os.Environ(), "K8S_NODE_NAME=node-a", "OTLP_ENDPOINT=otel-gateway:4317", "LOGS_ENDPOINT=http://loki:3100/otlp")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s:\n%s", c, out)
		checked++
		t.Logf("%s: valid", c)
	}
	require.GreaterOrEqual(t, checked, 5, "local, prometheus, otlp, logs and the DaemonSet's configs")
}
