package k8smetaprocessor

import (
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/confmap"

	"github.com/otelcol-oomkill/otelcol-oomkill/processor/k8smetaprocessor/internal/kube"
)

// Config is the k8smeta processor's configuration.
type Config struct {
	// AuthType is "serviceAccount" (in a pod) or "kubeConfig" (the standard
	// KUBECONFIG resolution, for running beside a cluster).
	AuthType string `mapstructure:"auth_type"`
	// Context selects a kubeconfig context (kubeConfig only; default: the
	// current one).
	Context string `mapstructure:"context"`
	// NodeName restricts the watch to pods on one node, typically
	// ${env:K8S_NODE_NAME} in a DaemonSet. Empty watches the whole cluster
	// (a gateway).
	NodeName string `mapstructure:"node_name"`
	// Extract names pod labels and annotations to add as
	// k8s.pod.label.<key> and k8s.pod.annotation.<key>.
	Extract ExtractConfig `mapstructure:"extract"`
	// DeletedPodGrace keeps deleted pods, and container IDs that left their
	// pod's status, resolvable this long.
	DeletedPodGrace time.Duration `mapstructure:"deleted_pod_grace"`
	// WaitForUnknown holds a batch whose pod UID or container ID is not
	// known yet (a pod killed right after it started) up to this long, for
	// the watch to catch up, before passing it on unenriched. 0 disables.
	WaitForUnknown time.Duration `mapstructure:"wait_for_unknown"`
	// MaxWaitingBatches bounds how many batches may wait at once; beyond
	// it, batches pass through at once.
	MaxWaitingBatches int `mapstructure:"max_waiting_batches"`
	// SyncTimeout bounds how long startup waits for the first pod list.
	// Past it the collector starts anyway and the watch keeps trying.
	SyncTimeout time.Duration `mapstructure:"sync_timeout"`
}

// ExtractConfig selects pod labels and annotations.
type ExtractConfig struct {
	Labels      []string `mapstructure:"labels"`
	Annotations []string `mapstructure:"annotations"`
}

var _ confmap.Validator = (*Config)(nil)

func createDefaultConfig() *Config {
	return &Config{
		AuthType:          kube.AuthServiceAccount,
		DeletedPodGrace:   5 * time.Minute,
		WaitForUnknown:    3 * time.Second,
		MaxWaitingBatches: 64,
		SyncTimeout:       10 * time.Second,
	}
}

// Validate reports every mistake at once.
func (c *Config) Validate() error {
	var errs []error
	if c.AuthType != kube.AuthServiceAccount && c.AuthType != kube.AuthKubeConfig {
		errs = append(errs, fmt.Errorf("auth_type %q: use %q (in a pod) or %q", c.AuthType, kube.AuthServiceAccount, kube.AuthKubeConfig))
	}
	if c.Context != "" && c.AuthType != kube.AuthKubeConfig {
		errs = append(errs, errors.New("context: only used with auth_type kubeConfig"))
	}
	if c.DeletedPodGrace < 2*time.Minute {
		errs = append(errs, fmt.Errorf("deleted_pod_grace %v: at least 2m, or records of killed containers arrive after their pod is forgotten", c.DeletedPodGrace))
	}
	if c.WaitForUnknown < 0 || c.WaitForUnknown > time.Minute {
		errs = append(errs, fmt.Errorf("wait_for_unknown %v: between 0 (off) and 1m", c.WaitForUnknown))
	}
	if c.MaxWaitingBatches < 1 {
		errs = append(errs, fmt.Errorf("max_waiting_batches %d: at least 1", c.MaxWaitingBatches))
	}
	if c.SyncTimeout <= 0 {
		errs = append(errs, fmt.Errorf("sync_timeout %v: must be positive", c.SyncTimeout))
	}
	for _, k := range append(append([]string{}, c.Extract.Labels...), c.Extract.Annotations...) {
		if k == "" {
			errs = append(errs, errors.New("extract: empty label or annotation key"))
		}
	}
	return errors.Join(errs...)
}
