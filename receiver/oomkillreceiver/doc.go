// Package oomkillreceiver reads the kernel's OOM-killer reports from the
// systemd journal and emits one log record and one counter increment per
// killed process, carrying k8s.pod.uid and container.id.
//
//go:generate go tool -modfile=../../internal/tools/go.mod mdatagen metadata.yaml
package oomkillreceiver
