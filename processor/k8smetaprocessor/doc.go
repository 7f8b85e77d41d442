// Package k8smetaprocessor joins Kubernetes pod, namespace, container and
// workload metadata onto resources carrying k8s.pod.uid and/or container.id.
//
//go:generate go tool -modfile=../../internal/tools/go.mod mdatagen metadata.yaml
package k8smetaprocessor
