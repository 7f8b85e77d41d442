package event

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/kill"
)

func TestReportingInstance(t *testing.T) {
	k := kill.Kill{Node: "node-a"}
	assert.Equal(t, "mine", Builder{Instance: "mine", Hostname: "h"}.instance(k), "configured wins")
	assert.Equal(t, "otelcol-oomkill-node-a", Builder{Hostname: "h"}.instance(k))
	assert.Equal(t, "otelcol-oomkill-h", Builder{Hostname: "h"}.instance(kill.Kill{}), "no node on the record: this machine")
	long := Builder{}.instance(kill.Kill{Node: strings.Repeat("n", 200)})
	assert.Len(t, long, MaxReportingInstance)
}

func TestBuildNodeEventAndSeries(t *testing.T) {
	at := time.Date(2026, 12, 1, 21, 0, 0, 0, time.UTC)
	ev := Builder{Controller: "c.io/x"}.Build(Series{
		Name: "node-a.oom-1", Regarding: Regarding{Namespace: NodeNamespace, Node: "node-a"},
		First: kill.Kill{Time: at, PID: -1, AnonRSSKB: -1, Scope: kill.ScopeNode}, Count: 3, LastObserved: at.Add(time.Minute),
	})
	assert.Equal(t, corev1.ObjectReference{Kind: "Node", APIVersion: "v1", Name: "node-a", UID: "node-a"}, ev.Regarding)
	assert.Equal(t, "default", ev.Namespace)
	require.NotNil(t, ev.Series)
	assert.EqualValues(t, 3, ev.Series.Count)
	assert.True(t, ev.Series.LastObservedTime.Time.Equal(at.Add(time.Minute)))
}

// A container's fieldPath names the pod spec's list it is in, from
// k8smeta's oom.container.kind, as the kubelet's own events do.
func TestBuildContainerFieldPath(t *testing.T) {
	for kind, want := range map[string]string{
		"":          "spec.containers{php-fpm}", // no kind (k8smeta without it): an app container
		"app":       "spec.containers{php-fpm}",
		"init":      "spec.initContainers{php-fpm}",
		"ephemeral": "spec.ephemeralContainers{php-fpm}",
	} {
		ev := Builder{Controller: "c.io/x"}.Build(Series{
			Name: "p.oom-1", Regarding: Regarding{Namespace: "shop", Pod: "p", PodUID: "u", Container: "php-fpm"},
			First: kill.Kill{PID: -1, AnonRSSKB: -1, Scope: kill.ScopeContainer, Container: "php-fpm", ContainerKind: kind}, Count: 1,
		})
		assert.Equal(t, want, ev.Regarding.FieldPath, "kind %q", kind)
	}
}

func TestSeriesPatch(t *testing.T) {
	at := time.Date(2026, 12, 1, 21, 0, 0, 0, time.UTC)
	b, err := SeriesPatch(1<<40, at)
	require.NoError(t, err)
	var got struct {
		Series struct {
			Count            int64  `json:"count"`
			LastObservedTime string `json:"lastObservedTime"`
		} `json:"series"`
	}
	require.NoError(t, json.Unmarshal(b, &got))
	assert.EqualValues(t, 1<<31-1, got.Series.Count, "the API's count is an int32")
	assert.Equal(t, "2026-12-01T21:00:00.000000Z", got.Series.LastObservedTime)
}
