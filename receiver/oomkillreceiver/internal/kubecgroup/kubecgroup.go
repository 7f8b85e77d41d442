// Package kubecgroup maps a memory cgroup path, as the kernel prints it in an
// OOM report (task_memcg, oom_memcg, "Task in …"), to the Kubernetes pod and
// container it belongs to. It is pure string work: no I/O.
//
// kubelet's cgroup driver decides the shape of the path and the container
// runtime decides the leaf:
//
//	cgroupfs: [prefix]/kubepods[/burstable|/besteffort]/pod<uid>/<id>
//	          (CRI-O: crio-<id>)
//	systemd:  [prefix]/kubepods.slice[/kubepods-<qos>.slice]/kubepods[-<qos>]-pod<uid_>.slice/<rt>-<id>.scope
//	          (<rt> is cri-containerd, crio or docker; <uid_> has '_' for '-')
//
// A prefix (a --cgroup-root, a kind node, an lxc payload) can precede the
// kubepods part, so the kubepods component is searched for rather than
// anchored at "/". Plain Docker (/docker/<id>, docker-<id>.scope) gives a
// container without a pod.
package kubecgroup

import "strings"

// Kind says what a cgroup path was recognised as.
type Kind string

const (
	// KindContainer is a container's cgroup inside a pod.
	KindContainer Kind = "container"
	// KindPod is a pod's cgroup with no container below it (a task placed
	// directly in the pod cgroup, or a pod-level OOM limit).
	KindPod Kind = "pod"
	// KindStandaloneContainer is a container outside Kubernetes (plain Docker).
	KindStandaloneContainer Kind = "standalone_container"
	// KindOther is any other cgroup (system services, user sessions, the root).
	KindOther Kind = "other"
)

// Ref is what a cgroup path tells about its owner.
type Ref struct {
	Kind Kind
	// PodUID is the dashed pod UID ("1f6a2c3e-8b4d-…"), empty when not a pod.
	PodUID string
	// ContainerID is the bare 64-hex container ID, empty when unknown.
	ContainerID string
	// Runtime is the runtime named by the leaf: "containerd", "cri-o",
	// "docker", or empty when the leaf does not say (cgroupfs containerd and
	// Docker leaves are bare IDs).
	Runtime string
	// QoSClass is "guaranteed", "burstable" or "besteffort" for pods.
	QoSClass string
}

// Parse returns what path says about its pod and container. It never fails:
// an unrecognised path is KindOther.
func Parse(path string) Ref {
	// Walk the components once; the first kubepods component wins, so a
	// nested cgroup named "kubepods" created inside a container (cgroup v2
	// delegation) cannot redirect attribution.
	rest := path
	for rest != "" {
		var comp string
		comp, rest = nextComponent(rest)
		if isKubepodsRoot(comp) {
			return parsePodPart(rest)
		}
		if comp == "docker" {
			// cgroupfs Docker: /docker/<id>
			// (a kind node runs inside such a container: keep looking
			// for a kubepods part below it).
			leaf, below := nextComponent(rest)
			if isContainerID(leaf) && !strings.Contains(below, "kubepods") {
				return Ref{Kind: KindStandaloneContainer, ContainerID: leaf, Runtime: "docker"}
			}
		}
		if id, rt, ok := scopeContainerID(comp); ok && rt == "docker" {
			// systemd Docker: /system.slice/docker-<id>.scope
			return Ref{Kind: KindStandaloneContainer, ContainerID: id, Runtime: rt}
		}
	}
	return Ref{Kind: KindOther}
}

// parsePodPart reads the components after the kubepods root: optional QoS
// level, the pod, then the container leaf.
func parsePodPart(rest string) Ref {
	qos := "guaranteed"
	for rest != "" {
		var comp string
		comp, rest = nextComponent(rest)
		if q, ok := qosLevel(comp); ok {
			qos = q
			continue
		}
		uid, ok := podUID(comp)
		if !ok {
			return Ref{Kind: KindOther}
		}
		ref := Ref{Kind: KindPod, PodUID: uid, QoSClass: qos}
		leaf, _ := nextComponent(rest)
		if id, rt, ok := leafContainerID(leaf); ok {
			ref.Kind = KindContainer
			ref.ContainerID = id
			ref.Runtime = rt
		}
		return ref
	}
	return Ref{Kind: KindOther}
}

func nextComponent(s string) (comp, rest string) {
	s = strings.TrimLeft(s, "/")
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return s[:i], s[i+1:]
	}
	return s, ""
}

// isKubepodsRoot matches "kubepods" (cgroupfs) and "kubepods.slice" or a
// prefixed slice such as "kubelet-kubepods.slice" (systemd, kind nodes).
func isKubepodsRoot(c string) bool {
	if c == "kubepods" || c == "kubepods.slice" {
		return true
	}
	return strings.HasSuffix(c, "-kubepods.slice")
}

func qosLevel(c string) (string, bool) {
	for _, q := range []string{"burstable", "besteffort"} {
		if c == q || strings.HasSuffix(c, "kubepods-"+q+".slice") {
			return q, true
		}
	}
	return "", false
}

// podUID accepts "pod<uid>" (cgroupfs) and "…kubepods[-<qos>]-pod<uid_>.slice"
// (systemd) and returns the dashed UID.
func podUID(c string) (string, bool) {
	var raw string
	switch {
	case strings.HasPrefix(c, "pod") && !strings.HasSuffix(c, ".slice"):
		raw = c[len("pod"):]
	case strings.HasSuffix(c, ".slice") && strings.Contains(c, "kubepods"):
		i := strings.LastIndex(c, "-pod")
		if i < 0 {
			return "", false
		}
		raw = strings.ReplaceAll(c[i+len("-pod"):len(c)-len(".slice")], "_", "-")
	default:
		return "", false
	}
	if !isUID(raw) {
		return "", false
	}
	return raw, true
}

// isUID checks the 8-4-4-4-12 hex shape of a Kubernetes UID.
func isUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !isHex(c) {
				return false
			}
		}
	}
	return true
}

// leafContainerID reads a container leaf: a bare ID (cgroupfs containerd or
// Docker), "crio-<id>" (cgroupfs CRI-O) or "<rt>-<id>.scope" (systemd).
// "crio-conmon-<id>" is CRI-O's monitor process, not the container.
func leafContainerID(c string) (id, runtime string, ok bool) {
	if isContainerID(c) {
		return c, "", true
	}
	if strings.HasPrefix(c, "crio-") && isContainerID(c[len("crio-"):]) {
		return c[len("crio-"):], "cri-o", true
	}
	return scopeContainerID(c)
}

var scopeRuntimes = []struct{ prefix, runtime string }{
	{"cri-containerd-", "containerd"},
	{"crio-", "cri-o"},
	{"docker-", "docker"},
}

func scopeContainerID(c string) (id, runtime string, ok bool) {
	if !strings.HasSuffix(c, ".scope") {
		return "", "", false
	}
	body := c[:len(c)-len(".scope")]
	for _, r := range scopeRuntimes {
		if strings.HasPrefix(body, r.prefix) && isContainerID(body[len(r.prefix):]) {
			return body[len(r.prefix):], r.runtime, true
		}
	}
	return "", "", false
}

// isContainerID checks for the 64 lowercase hex digits that containerd,
// CRI-O and Docker use.
func isContainerID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isHex(s[i]) {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f')
}
