package k8smetaprocessor

import (
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"

	"github.com/otelcol-oomkill/otelcol-oomkill/processor/k8smetaprocessor/internal/kube"
	"github.com/otelcol-oomkill/otelcol-oomkill/processor/k8smetaprocessor/internal/metadata"
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
	// pod's status, resolvable this long after they left or were last
	// looked up, whichever is later: a series re-sent more often than this
	// keeps its names.
	DeletedPodGrace time.Duration `mapstructure:"deleted_pod_grace"`
	// GoneContainers caps what is remembered of container IDs that left
	// their pod's status.
	GoneContainers GoneContainersConfig `mapstructure:"gone_containers"`
	// Storage names a storage extension (e.g. file_storage) that keeps the
	// container identities across restarts, so that the series a receiver
	// restores from its checkpoint keep their names.
	Storage *component.ID `mapstructure:"storage"`
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
	// ResourceAttributes turns single attributes off
	// (`k8s.container.restart_count: {enabled: false}`).
	ResourceAttributes metadata.ResourceAttributesConfig `mapstructure:"resource_attributes"`
}

// GoneContainersConfig bounds the memory of container IDs that left their
// pod's status (the kubelet keeps only the current and previous one) or
// whose pod was deleted. Beyond a cap, the ID looked up longest ago is
// forgotten (counted and logged): records naming it get only the pod's
// attributes from then on.
type GoneContainersConfig struct {
	// MaxPerPod caps the gone IDs of one pod: a crash loop's restarts.
	MaxPerPod int `mapstructure:"max_per_pod"`
	// Max caps the gone IDs of all pods.
	Max int `mapstructure:"max"`
	// MaxGivenUp caps the IDs remembered as not to be waited for: IDs
	// forgotten, or waited for in vain (wait_for_unknown).
	MaxGivenUp int `mapstructure:"max_given_up"`
}

// ExtractConfig selects pod labels and annotations.
type ExtractConfig struct {
	Labels      []string `mapstructure:"labels"`
	Annotations []string `mapstructure:"annotations"`
}

var _ confmap.Validator = (*Config)(nil)

func createDefaultConfig() *Config {
	return &Config{
		AuthType:           kube.AuthServiceAccount,
		DeletedPodGrace:    5 * time.Minute,
		GoneContainers:     GoneContainersConfig{MaxPerPod: 512, Max: 4096, MaxGivenUp: 4096},
		WaitForUnknown:     3 * time.Second,
		MaxWaitingBatches:  64,
		SyncTimeout:        10 * time.Second,
		ResourceAttributes: metadata.DefaultResourceAttributesConfig(),
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
	if c.GoneContainers.MaxPerPod < 1 {
		errs = append(errs, fmt.Errorf("gone_containers.max_per_pod %d: at least 1", c.GoneContainers.MaxPerPod))
	}
	if c.GoneContainers.Max < c.GoneContainers.MaxPerPod {
		errs = append(errs, fmt.Errorf("gone_containers.max %d: at least max_per_pod (%d)", c.GoneContainers.Max, c.GoneContainers.MaxPerPod))
	}
	if c.GoneContainers.MaxGivenUp < 0 {
		errs = append(errs, fmt.Errorf("gone_containers.max_given_up %d: 0 (wait for every unknown ID) or more", c.GoneContainers.MaxGivenUp))
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
