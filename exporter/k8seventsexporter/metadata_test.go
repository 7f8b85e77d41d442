package k8seventsexporter

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/aggregate"
	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/apiwriter"
)

// The attribute values the code sets are the ones metadata.yaml declares
// (and documentation.md lists).
func TestTelemetryAttributesAreDeclared(t *testing.T) {
	b, err := os.ReadFile("metadata.yaml")
	require.NoError(t, err)
	var md struct {
		Attributes map[string]struct {
			Enum []string `json:"enum"`
		} `json:"attributes"`
		Telemetry struct {
			Metrics map[string]struct {
				Attributes []string `json:"attributes"`
			} `json:"metrics"`
		} `json:"telemetry"`
	}
	require.NoError(t, yaml.Unmarshal(b, &md))
	assert.ElementsMatch(t, []string{
		aggregate.DropNoPod, aggregate.DropPodDeleted, aggregate.DropNamespaceGone,
		aggregate.DropRejected, aggregate.DropEvicted, aggregate.DropQueueFull,
	}, md.Attributes["reason"].Enum)
	assert.ElementsMatch(t, []string{apiwriter.RequestGetPod, apiwriter.RequestCreate, apiwriter.RequestPatch}, md.Attributes["request"].Enum)
	assert.Equal(t, []string{"reason"}, md.Telemetry.Metrics["k8sevents_kills_dropped"].Attributes)
	assert.ElementsMatch(t, []string{"request", "outcome"}, md.Telemetry.Metrics["k8sevents_api_requests"].Attributes)
}
