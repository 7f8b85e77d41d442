// Package testutil holds what the test suites share, so that each exists
// once: free loopback ports, the repository's root and the built collector,
// a started process with its log (StartCollector), a real OTLP/gRPC sink,
// Prometheus text scrapes, a real systemd-journald laid out as on a node,
// and kubelet-shaped cgroups under a prefix of the test's own with real
// OOM kills in them, made one test at a time machine-wide (the kill lock). Tests only: product code must not import it (depguard
// in .golangci.yml).
package testutil
