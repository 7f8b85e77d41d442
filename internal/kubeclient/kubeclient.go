// Package kubeclient builds the Kubernetes clientset that the k8smeta
// processor (reads pods) and the k8sevents exporter (writes events) use, so
// both authenticate the same way.
package kubeclient

import (
	"fmt"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Auth types.
const (
	AuthServiceAccount = "serviceAccount"
	AuthKubeConfig     = "kubeConfig"
)

// Options selects how to reach the API server.
type Options struct {
	// AuthType is AuthServiceAccount (in a pod) or AuthKubeConfig.
	AuthType string
	// Context is the kubeconfig context (kubeConfig only; empty: current).
	Context string
	// Kubeconfig is an explicit kubeconfig file (kubeConfig only; empty:
	// the standard resolution, $KUBECONFIG then ~/.kube/config).
	Kubeconfig string
	// UserAgent names the component in the API server's audit log.
	UserAgent string
	// QPS and Burst are client-go's client-side rate limit (0: its defaults).
	QPS   float32
	Burst int
}

// New builds a clientset: in-cluster from the pod's service account, or
// from a kubeconfig with an optional context. It does not contact the API
// server.
func New(o Options) (kubernetes.Interface, error) {
	var (
		cfg *rest.Config
		err error
	)
	switch o.AuthType {
	case AuthServiceAccount:
		cfg, err = rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("auth_type serviceAccount: %w (outside a pod, use auth_type: kubeConfig)", err)
		}
	case AuthKubeConfig:
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		if o.Kubeconfig != "" {
			rules.ExplicitPath = o.Kubeconfig
		}
		cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: o.Context}).ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("auth_type kubeConfig: %w", err)
		}
	default:
		return nil, fmt.Errorf("unknown auth_type %q", o.AuthType)
	}
	cfg.UserAgent = o.UserAgent
	if o.QPS > 0 {
		cfg.QPS = o.QPS
	}
	if o.Burst > 0 {
		cfg.Burst = o.Burst
	}
	return kubernetes.NewForConfig(cfg)
}
