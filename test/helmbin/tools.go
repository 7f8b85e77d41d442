//go:build tools

// Package helmbin keeps the helm CLI's main package in the module graph, so
// `go mod tidy` records all of its dependencies.
package helmbin

import _ "helm.sh/helm/v4/cmd/helm"
