package k8seventsexporter

import (
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/config/configretry"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/event"
	"github.com/otelcol-oomkill/otelcol-oomkill/internal/kubeclient"
)

// Config is the k8sevents exporter's configuration.
type Config struct {
	exporterhelper.TimeoutConfig `mapstructure:",squash"`
	// QueueConfig decouples the pipeline from the API server: a slow or
	// down API server fills this queue, never the receiver.
	QueueConfig configoptional.Optional[exporterhelper.QueueBatchConfig] `mapstructure:"sending_queue"`
	// RetryConfig retries batches whose write failed for a reason that can
	// pass (API server down, timeouts, 5xx, 429).
	RetryConfig configretry.BackOffConfig `mapstructure:"retry_on_failure"`

	// AuthType is "serviceAccount" (in a pod) or "kubeConfig".
	AuthType string `mapstructure:"auth_type"`
	// Context selects a kubeconfig context (kubeConfig only).
	Context string `mapstructure:"context"`
	// Kubeconfig is a kubeconfig file (kubeConfig only; default: $KUBECONFIG,
	// then ~/.kube/config).
	Kubeconfig string `mapstructure:"kubeconfig"`

	// ReportingController is the event's reportingController.
	ReportingController string `mapstructure:"reporting_controller"`
	// ReportingInstance is the event's reportingInstance; empty:
	// "otelcol-oomkill-<node>" with the node from the record (k8s.node.name,
	// else host.name) or this machine's host name.
	ReportingInstance string `mapstructure:"reporting_instance"`
	// NodeEvents writes an event on the Node for a kill outside any pod
	// (as node-problem-detector does). Off by default.
	NodeEvents bool `mapstructure:"node_events"`
	// VerifyPod reads the pod before a new event is created and drops the
	// kill when the pod is gone or was replaced (same name, another UID).
	// Needs `get` on pods (which k8smeta already has).
	VerifyPod bool `mapstructure:"verify_pod"`

	Aggregation AggregationConfig `mapstructure:"aggregation"`
	RateLimit   RateLimitConfig   `mapstructure:"rate_limit"`
	// FlushInterval is how often series updates that the rate limit
	// deferred are written.
	FlushInterval time.Duration `mapstructure:"flush_interval"`
}

// AggregationConfig bounds the event series the exporter remembers.
type AggregationConfig struct {
	// Window: a kill more than this after the last kill of its series
	// starts a new event instead of raising the series' count.
	Window time.Duration `mapstructure:"window"`
	// MaxSeries bounds the series remembered (least recently used go first).
	MaxSeries int `mapstructure:"max_series"`
	// MaxKillIDs bounds the kill IDs remembered to recognise redelivered
	// records (oldest go first).
	MaxKillIDs int `mapstructure:"max_kill_ids"`
}

// RateLimitConfig is two token buckets every API write must pass.
type RateLimitConfig struct {
	PerPod BucketConfig `mapstructure:"per_pod"`
	Total  BucketConfig `mapstructure:"total"`
	// MaxPods bounds the per-pod buckets remembered.
	MaxPods int `mapstructure:"max_pods"`
}

// BucketConfig is a token bucket: QPS writes per second on average, Burst at once.
type BucketConfig struct {
	QPS   float64 `mapstructure:"qps"`
	Burst int     `mapstructure:"burst"`
}

var _ confmap.Validator = (*Config)(nil)

const defaultReportingController = "otelcol-oomkill.io/k8sevents"

func createDefaultConfig() *Config {
	queue := exporterhelper.NewDefaultQueueConfig()
	// One consumer: writes of one series stay in order.
	queue.NumConsumers = 1
	return &Config{
		TimeoutConfig:       exporterhelper.TimeoutConfig{Timeout: 30 * time.Second},
		QueueConfig:         configoptional.Some(queue),
		RetryConfig:         configretry.NewDefaultBackOffConfig(),
		AuthType:            kubeclient.AuthServiceAccount,
		ReportingController: defaultReportingController,
		VerifyPod:           true,
		Aggregation:         AggregationConfig{Window: 10 * time.Minute, MaxSeries: 4096, MaxKillIDs: 16384},
		RateLimit: RateLimitConfig{
			PerPod:  BucketConfig{QPS: 0.2, Burst: 5},
			Total:   BucketConfig{QPS: 5, Burst: 25},
			MaxPods: 4096,
		},
		FlushInterval: 5 * time.Second,
	}
}

// Validate reports every mistake at once.
func (c *Config) Validate() error {
	var errs []error
	if c.AuthType != kubeclient.AuthServiceAccount && c.AuthType != kubeclient.AuthKubeConfig {
		errs = append(errs, fmt.Errorf("auth_type %q: use %q (in a pod) or %q", c.AuthType, kubeclient.AuthServiceAccount, kubeclient.AuthKubeConfig))
	}
	if (c.Context != "" || c.Kubeconfig != "") && c.AuthType != kubeclient.AuthKubeConfig {
		errs = append(errs, errors.New("context, kubeconfig: only used with auth_type kubeConfig"))
	}
	if msgs := validation.IsQualifiedName(c.ReportingController); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("reporting_controller %q: must be a qualified name like %q: %v", c.ReportingController, defaultReportingController, msgs))
	}
	if len(c.ReportingInstance) > event.MaxReportingInstance {
		errs = append(errs, fmt.Errorf("reporting_instance: at most %d characters", event.MaxReportingInstance))
	}
	if c.Aggregation.Window < time.Second || c.Aggregation.Window > time.Hour {
		errs = append(errs, fmt.Errorf("aggregation.window %v: between 1s and 1h (the API server keeps events 1h by default)", c.Aggregation.Window))
	}
	if c.Aggregation.MaxSeries < 1 {
		errs = append(errs, fmt.Errorf("aggregation.max_series %d: at least 1", c.Aggregation.MaxSeries))
	}
	if c.Aggregation.MaxKillIDs < 1 {
		errs = append(errs, fmt.Errorf("aggregation.max_kill_ids %d: at least 1", c.Aggregation.MaxKillIDs))
	}
	for name, b := range map[string]BucketConfig{"rate_limit.per_pod": c.RateLimit.PerPod, "rate_limit.total": c.RateLimit.Total} {
		if b.QPS <= 0 || b.Burst < 1 {
			errs = append(errs, fmt.Errorf("%s: qps must be positive and burst at least 1 (got qps %v, burst %d)", name, b.QPS, b.Burst))
		}
	}
	if c.RateLimit.MaxPods < 1 {
		errs = append(errs, fmt.Errorf("rate_limit.max_pods %d: at least 1", c.RateLimit.MaxPods))
	}
	if c.FlushInterval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("flush_interval %v: at least 100ms", c.FlushInterval))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("timeout %v: must be positive", c.Timeout))
	}
	return errors.Join(errs...)
}
