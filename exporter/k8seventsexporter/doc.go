// Package k8seventsexporter writes a Kubernetes Event on the Pod for each
// OOM kill (oom_kill log records named by the k8smeta processor).
//
//go:generate go tool -modfile=../../internal/tools/go.mod mdatagen metadata.yaml
package k8seventsexporter
