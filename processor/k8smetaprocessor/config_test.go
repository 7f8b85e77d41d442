package k8smetaprocessor

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/otelcol-oomkill/otelcol-oomkill/processor/k8smetaprocessor/internal/metadata"
)

func TestLoadConfig(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	node := createDefaultConfig()
	node.AuthType = "kubeConfig"
	node.Context = "kind-test"
	node.NodeName = "node-a"
	node.Extract = ExtractConfig{Labels: []string{"app", "app.kubernetes.io/name"}, Annotations: []string{"team"}}
	node.DeletedPodGrace = 10 * time.Minute
	node.GoneContainers = GoneContainersConfig{MaxPerPod: 100, Max: 1000, MaxGivenUp: 200}
	fileStorage := component.MustNewID("file_storage")
	node.Storage = &fileStorage
	// As a user's configuration sets it (the generated config records that).
	require.NoError(t, confmap.NewFromStringMap(map[string]any{"enabled": false}).Unmarshal(&node.ResourceAttributes.K8sContainerRestartCount))
	node.WaitForUnknown = 5 * time.Second
	node.MaxWaitingBatches = 8
	node.SyncTimeout = 30 * time.Second
	tests := []struct {
		id      component.ID
		want    *Config
		wantErr string
	}{
		{id: component.NewID(metadata.Type), want: createDefaultConfig()},
		{id: component.NewIDWithName(metadata.Type, "node"), want: node},
		{id: component.NewIDWithName(metadata.Type, "bad_auth"), wantErr: `auth_type "token": use "serviceAccount" (in a pod) or "kubeConfig"`},
		{id: component.NewIDWithName(metadata.Type, "short_grace"), wantErr: "deleted_pod_grace 30s: at least 2m"},
		{id: component.NewIDWithName(metadata.Type, "context_without_kubeconfig"), wantErr: "context: only used with auth_type kubeConfig"},
		{id: component.NewIDWithName(metadata.Type, "bad_caps"), wantErr: "gone_containers.max_per_pod 0: at least 1\ngone_containers.max -1: at least max_per_pod (0)\ngone_containers.max_given_up -1: 0 (wait for every unknown ID) or more"},
	}
	for _, tt := range tests {
		t.Run(tt.id.String(), func(t *testing.T) {
			cfg := NewFactory().CreateDefaultConfig()
			sub, err := cm.Sub(tt.id.String())
			require.NoError(t, err)
			require.NoError(t, sub.Unmarshal(cfg))
			err = confmap.Validate(cfg)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, cfg)
		})
	}
}
