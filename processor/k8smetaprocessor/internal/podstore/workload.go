package podstore

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// workload names the controllers that own a pod, from the pod alone, so
// that no ReplicaSet or Job has to be fetched (and no RBAC beyond pods is
// needed):
//   - a ReplicaSet named "<deployment>-<pod-template-hash>" belongs to that
//     Deployment (the pod carries the hash as a label);
//   - a Job named "<cronjob>-<scheduled minutes>" belongs to that CronJob.
func workload(p *corev1.Pod) map[string]string {
	var out map[string]string
	set := func(k, v string) {
		if out == nil {
			out = map[string]string{}
		}
		out[k] = v
	}
	for _, ref := range p.OwnerReferences {
		if ref.Controller != nil && !*ref.Controller {
			continue
		}
		switch ref.Kind {
		case "ReplicaSet":
			set("k8s.replicaset.name", ref.Name)
			if hash := p.Labels["pod-template-hash"]; hash != "" && strings.HasSuffix(ref.Name, "-"+hash) {
				set("k8s.deployment.name", strings.TrimSuffix(ref.Name, "-"+hash))
			}
		case "StatefulSet":
			set("k8s.statefulset.name", ref.Name)
		case "DaemonSet":
			set("k8s.daemonset.name", ref.Name)
		case "Job":
			set("k8s.job.name", ref.Name)
			if cron, ok := cronJobOf(ref.Name); ok {
				set("k8s.cronjob.name", cron)
			}
		}
	}
	return out
}

// cronJobOf reads the CronJob controller's Job naming: "<cronjob>-<digits>".
func cronJobOf(job string) (string, bool) {
	i := strings.LastIndexByte(job, '-')
	if i <= 0 || i == len(job)-1 {
		return "", false
	}
	for _, c := range job[i+1:] {
		if c < '0' || c > '9' {
			return "", false
		}
	}
	return job[:i], true
}
