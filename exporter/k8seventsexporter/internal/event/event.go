// Package event builds what the exporter writes: the Kubernetes Event for
// a series of OOM kills, its object name, the patch that raises its count,
// and its message (note.go). It decides what an Event says, never when or
// whether it is written; the API writer sends what this package builds.
package event

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/otelcol-oomkill/otelcol-oomkill/exporter/k8seventsexporter/internal/kill"
)

const (
	// Reason is node-problem-detector's reason for the same kernel event.
	Reason = "OOMKilling"
	// Action is what the kernel did.
	Action = "OOMKill"
	// MaxReportingInstance is the Events API's limit.
	MaxReportingInstance = 128
	// NodeNamespace is where Node events go, as the kubelet posts them.
	NodeNamespace = "default"
)

// Regarding is what an Event is about: a Pod and, when known, one of its
// containers; or, with Node set, a Node.
type Regarding struct {
	Namespace, Pod, PodUID, Container string
	Node                              string
}

// Builder holds what every Event of one exporter carries.
type Builder struct {
	// Controller is the events' reportingController.
	Controller string
	// Instance is the configured reportingInstance; empty: derived from
	// the kill's node, else Hostname.
	Instance string
	Hostname string
}

// Series is one Event as its first write makes it.
type Series struct {
	Name      string
	Regarding Regarding
	// First is the kill the note describes; its time is the eventTime.
	First kill.Kill
	// Count is the kills the Event counts; above 1 it carries a series.
	Count        int
	LastObserved time.Time
}

// Build is the Event for a series' first write.
func (b Builder) Build(s Series) *eventsv1.Event {
	k := s.First
	ev := &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Name: s.Name, Namespace: s.Regarding.Namespace},
		EventTime:           metav1.NewMicroTime(k.Time),
		ReportingController: b.Controller,
		ReportingInstance:   b.instance(k),
		Action:              Action,
		Reason:              Reason,
		Type:                corev1.EventTypeWarning,
		Note:                Note(k),
	}
	r := s.Regarding
	if r.Node != "" {
		ev.Regarding = corev1.ObjectReference{Kind: "Node", APIVersion: "v1", Name: r.Node, UID: types.UID(r.Node)}
	} else {
		ev.Regarding = corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: r.Namespace, Name: r.Pod, UID: types.UID(r.PodUID)}
		if r.Container != "" {
			ev.Regarding.FieldPath = containerFieldPath(k.ContainerKind, r.Container)
		}
	}
	if s.Count > 1 {
		ev.Series = eventSeries(s.Count, s.LastObserved)
	}
	return ev
}

// containerFieldPath names the container inside its pod as Kubernetes
// does in object references (the kubelet's own events say the same).
func containerFieldPath(kind, name string) string {
	switch kind {
	case "init":
		return "spec.initContainers{" + name + "}"
	case "ephemeral":
		return "spec.ephemeralContainers{" + name + "}"
	}
	return "spec.containers{" + name + "}"
}

// SeriesPatch is the merge patch that brings an Event's series up to
// count kills, the last at last.
func SeriesPatch(count int, last time.Time) ([]byte, error) {
	return json.Marshal(map[string]any{"series": eventSeries(count, last)})
}

func eventSeries(count int, last time.Time) *eventsv1.EventSeries {
	return &eventsv1.EventSeries{Count: int32(min(count, 1<<31-1)), LastObservedTime: metav1.NewMicroTime(last)}
}

func (b Builder) instance(k kill.Kill) string {
	if b.Instance != "" {
		return b.Instance
	}
	node := k.Node
	if node == "" {
		node = b.Hostname
	}
	in := "otelcol-oomkill-" + node
	if len(in) > MaxReportingInstance {
		in = in[:MaxReportingInstance]
	}
	return in
}

// ObjectName is the Event's name: base (the pod's or node's name) and a
// hash of identity. The caller makes identity stable for a series' first
// kill, so a create repeated after a lost answer or a restart finds the
// Event it made.
func ObjectName(base, identity string) string {
	h := sha256.Sum256([]byte(identity))
	const suffix = 1 + 4 + 16 // ".oom-" + 16 hex
	if len(base) > 253-suffix {
		base = base[:253-suffix]
	}
	base = strings.TrimRight(base, "-.")
	if base == "" {
		base = "oomkill"
	}
	return base + ".oom-" + hex.EncodeToString(h[:8])
}
