package podstore

import (
	"maps"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Kind is which list of the pod spec a container is in.
type Kind string

// Container kinds, as the pod spec lists them.
const (
	KindApp       Kind = "app"       // spec.containers
	KindInit      Kind = "init"      // spec.initContainers (sidecars too)
	KindEphemeral Kind = "ephemeral" // spec.ephemeralContainers
)

// seenID is a container ID in a pod's status and what its container was
// then.
type seenID struct {
	id  string
	ctr Container
}

// convert reads the pod's metadata and every container ID its status
// names (current first, then lastState.terminated), each with the
// container it belongs to.
func (s *Store) convert(p *corev1.Pod) (*Pod, []seenID) {
	pod := &Pod{
		UID: string(p.UID), Name: p.Name, Namespace: p.Namespace, NodeName: p.Spec.NodeName,
		Workload:    workload(p),
		Labels:      pick(p.Labels, s.opts.Labels),
		Annotations: pick(p.Annotations, s.opts.Annotations),
	}
	specs := map[string]Container{}
	addSpec := func(kind Kind, name, image string, res corev1.ResourceRequirements) {
		c := Container{Name: name, Kind: kind}
		c.ImageName, c.ImageTag = splitImage(image)
		if q, ok := res.Limits[corev1.ResourceMemory]; ok {
			c.MemoryLimit = q.Value()
		}
		if q, ok := res.Requests[corev1.ResourceMemory]; ok {
			c.MemoryRequest = q.Value()
		}
		specs[name] = c
	}
	for _, c := range p.Spec.InitContainers {
		addSpec(KindInit, c.Name, c.Image, c.Resources)
	}
	for _, c := range p.Spec.Containers {
		addSpec(KindApp, c.Name, c.Image, c.Resources)
	}
	for _, c := range p.Spec.EphemeralContainers {
		addSpec(KindEphemeral, c.Name, c.Image, c.Resources)
	}

	var ids []seenID
	for _, l := range []struct {
		kind     Kind
		statuses []corev1.ContainerStatus
	}{
		{KindInit, p.Status.InitContainerStatuses},
		{KindApp, p.Status.ContainerStatuses},
		{KindEphemeral, p.Status.EphemeralContainerStatuses},
	} {
		for _, cs := range l.statuses {
			base, ok := specs[cs.Name]
			if !ok {
				base = Container{Name: cs.Name, Kind: l.kind}
			}
			// restartCount is the current container's attempt number; the
			// kubelet gives each new container the previous one's plus one.
			if cs.ContainerID != "" {
				c := base
				c.RestartCount = int64(cs.RestartCount)
				ids = append(ids, seenID{BareContainerID(cs.ContainerID), c})
			}
			if t := cs.LastTerminationState.Terminated; t != nil && t.ContainerID != "" && t.ContainerID != cs.ContainerID {
				c := base
				c.RestartCount = max(int64(cs.RestartCount)-1, 0)
				ids = append(ids, seenID{BareContainerID(t.ContainerID), c})
			}
		}
	}
	return pod, ids
}

// sameMeta reports whether two conversions of a pod name it alike, so that
// identities can share one copy.
func sameMeta(a, b *Pod) bool {
	return a.UID == b.UID && a.Name == b.Name && a.Namespace == b.Namespace && a.NodeName == b.NodeName &&
		maps.Equal(a.Workload, b.Workload) && maps.Equal(a.Labels, b.Labels) && maps.Equal(a.Annotations, b.Annotations)
}

// BareContainerID strips a runtime prefix: "containerd://<id>",
// "cri-o://<id>", "docker://<id>" → "<id>".
func BareContainerID(id string) string {
	if i := strings.Index(id, "://"); i >= 0 {
		return id[i+3:]
	}
	return id
}

func pick(m map[string]string, keys []string) map[string]string {
	if len(keys) == 0 || len(m) == 0 {
		return nil
	}
	out := map[string]string{}
	for _, k := range keys {
		if v, ok := m[k]; ok {
			out[k] = v
		}
	}
	return out
}

// splitImage splits "registry:5000/repo/app:1.2@sha256:…" into
// "registry:5000/repo/app" and "1.2" (no tag: "latest" only when neither a
// tag nor a digest is given, as the runtime would pull).
func splitImage(image string) (name, tag string) {
	if i := strings.IndexByte(image, '@'); i >= 0 {
		image = image[:i]
		if !strings.Contains(image[strings.LastIndexByte(image, '/')+1:], ":") {
			return image, ""
		}
	}
	slash := strings.LastIndexByte(image, '/')
	if colon := strings.LastIndexByte(image, ':'); colon > slash {
		return image[:colon], image[colon+1:]
	}
	return image, "latest"
}
