package k8seventsexporter

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/metadata"
)

func TestLoadConfig(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)

	custom := createDefaultConfig()
	custom.AuthType, custom.Context, custom.Kubeconfig = "kubeConfig", "prod", "/etc/kube/config"
	custom.ReportingController, custom.ReportingInstance = "example.com/oom-events", "collector-on-node-a"
	custom.NodeEvents, custom.VerifyPod = true, false
	custom.Aggregation = AggregationConfig{Window: 30 * time.Minute, MaxSeries: 100, MaxKillIDs: 1000}
	custom.RateLimit = RateLimitConfig{PerPod: BucketConfig{QPS: 1, Burst: 2}, Total: BucketConfig{QPS: 10, Burst: 20}, MaxPods: 50}
	custom.FlushInterval = time.Second
	custom.Timeout = 5 * time.Second
	custom.RetryConfig.MaxElapsedTime = 10 * time.Minute
	custom.QueueConfig.Get().QueueSize = 500

	tests := []struct {
		id      component.ID
		want    *Config
		wantErr []string
	}{
		{id: component.NewID(metadata.Type), want: createDefaultConfig()},
		{id: component.NewIDWithName(metadata.Type, "custom"), want: custom},
		{id: component.NewIDWithName(metadata.Type, "bad"), wantErr: []string{
			`auth_type "token": use "serviceAccount" (in a pod) or "kubeConfig"`,
			"context, kubeconfig: only used with auth_type kubeConfig",
			`reporting_controller "not a name!": must be a qualified name`,
			"aggregation.window 2h0m0s: between 1s and 1h",
			"aggregation.max_series 0: at least 1",
			"aggregation.max_kill_ids 0: at least 1",
			"rate_limit.per_pod: qps must be positive and burst at least 1 (got qps 0, burst 0)",
			"rate_limit.total: qps must be positive and burst at least 1 (got qps -1, burst 1)",
			"rate_limit.max_pods 0: at least 1",
			"flush_interval 1ms: at least 100ms",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.id.String(), func(t *testing.T) {
			cfg := NewFactory().CreateDefaultConfig()
			sub, err := cm.Sub(tt.id.String())
			require.NoError(t, err)
			require.NoError(t, sub.Unmarshal(cfg))
			err = confmap.Validate(cfg)
			if tt.wantErr != nil {
				for _, w := range tt.wantErr {
					assert.ErrorContains(t, err, w)
				}
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, cfg)
		})
	}
}

func TestDefaultsAreSane(t *testing.T) {
	cfg := createDefaultConfig()
	require.NoError(t, cfg.Validate())
	assert.Equal(t, "serviceAccount", cfg.AuthType)
	assert.False(t, cfg.NodeEvents, "Node events are opt-in")
	assert.Equal(t, 1, cfg.QueueConfig.Get().NumConsumers, "writes of a series stay in order")
	assert.True(t, cfg.RetryConfig.Enabled)
}
