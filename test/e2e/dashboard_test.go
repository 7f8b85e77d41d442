//go:build linux

package e2e

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/promtest"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/testutil"
)

// panel is a panel of examples/grafana/otelcol-oomkill.json, as Grafana
// reads it.
type panel struct {
	Type, Title string
	Targets     []struct {
		Expr     string `json:"expr"`
		Instant  bool   `json:"instant"`
		Interval string `json:"interval"`
	} `json:"targets"`
}

// dashboardPanels reads the shipped dashboard: its panels (rows left out)
// and its variables' queries by name.
func dashboardPanels(t *testing.T) ([]panel, map[string]string) {
	t.Helper()
	raw, err := os.ReadFile(testutil.RepoPath(t, "examples/grafana/otelcol-oomkill.json"))
	require.NoError(t, err)
	var d struct {
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Name, Type string
				Query      any `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	require.NoError(t, json.Unmarshal(raw, &d))
	var panels []panel
	for _, p := range d.Panels {
		if p.Type != "row" {
			panels = append(panels, p)
		}
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		if q, ok := v.Query.(string); ok && v.Type == "query" {
			vars[v.Name] = q
		}
	}
	return panels, vars
}

// filters are the dashboard's variables as Grafana substitutes them: "All"
// (`.*`), or one value each.
var filters = map[string]map[string]string{
	"all":         {"$cluster": ".*", "$namespace": ".*", "$node": ".*"},
	"one of each": {"$cluster": cluster, "$namespace": namespace, "$node": node},
}

// expand substitutes the dashboard variables and Grafana's interval
// variables (the range the test queries, the panel's step).
func expand(expr string, vars map[string]string, step time.Duration, span time.Duration) string {
	r := strings.NewReplacer(
		"$__rate_interval", "1m",
		"$__interval", step.String(),
		"$__range", span.String(),
		"$cluster", vars["$cluster"], "$namespace", vars["$namespace"], "$node", vars["$node"],
	)
	return r.Replace(expr)
}

// checkDashboard runs every panel's query of the shipped dashboard against
// the real Prometheus, after the test's real kills, with the variables on
// All and on one value each, as Grafana would: each must return the series
// its panel draws (a panel whose query returns nothing fails), and the
// numbers must be the kills the test made. The variables' own queries must
// list the test's cluster, namespace and node.
func checkDashboard(t *testing.T, prom *promtest.Server, victims []*victim) {
	panels, vars := dashboardPanels(t)
	require.Len(t, panels, 16)
	survived, exited := 0, 0
	for _, v := range victims {
		if v.killMain {
			exited++
		} else {
			survived++
		}
	}
	kills := float64(len(victims))

	labelValues := regexp.MustCompile(`^label_values\((.*), (\w+)\)$`)
	for name, want := range map[string]string{"cluster": cluster, "namespace": namespace, "node": node} {
		m := labelValues.FindStringSubmatch(vars[name])
		require.NotNil(t, m, "variable %s: %q is label_values(match, label)", name, vars[name])
		match := strings.ReplaceAll(m[1], "$cluster", ".*")
		assert.Contains(t, prom.LabelValues(t, m[2], match), want, "variable %s lists %s", name, want)
	}

	const span = 15 * time.Minute
	for filter, values := range filters {
		for _, p := range panels {
			t.Run(filter+"/"+p.Title, func(t *testing.T) {
				target := p.Targets[0]
				step := time.Minute
				if target.Interval != "" {
					d, err := time.ParseDuration(target.Interval)
					require.NoError(t, err)
					step = d
				}
				q := expand(target.Expr, values, step, span)
				var got []promtest.Series
				// Eventually: the last scrape may still be on its way.
				ok := assert.Eventually(t, func() bool {
					if target.Instant {
						got = prom.Instant(t, q)
					} else {
						got = prom.Range(t, q, span, step)
					}
					return len(got) > 0 && checkPanel(p.Title, got, kills, survived, exited) == ""
				}, 30*time.Second, time.Second)
				if !ok {
					t.Fatalf("panel %q: %s\nquery:\n%s\nresult: %+v", p.Title, checkPanel(p.Title, got, kills, survived, exited), q, got)
				}
				t.Logf("%d series: %v", len(got), got)
			})
		}
	}
}

// checkPanel says what is wrong with a panel's result after the test's
// kills ("" when nothing is).
func checkPanel(title string, got []promtest.Series, kills float64, survived, exited int) string {
	sum := func(match func(map[string]string) bool) float64 {
		total := 0.0
		for _, s := range got {
			if match == nil || match(s.Labels) {
				for _, v := range s.Values {
					total += v
				}
			}
		}
		return total
	}
	expect := func(what string, got, want float64) string {
		if got != want {
			return what + ": got " + ftoa(got) + ", want " + ftoa(want)
		}
		return ""
	}
	outcome := func(o string) func(map[string]string) bool {
		return func(l map[string]string) bool { return l["oom_container_outcome"] == o }
	}
	switch title {
	case "OOM kills", "Kills by namespace and workload":
		return expect("kills", sum(nil), kills)
	case "Silent kills: container kept running":
		return expect("silent kills", sum(nil), float64(survived))
	case "Kills that restarted the container":
		return expect("kills that restarted the container", sum(nil), float64(exited))
	case "Silent kills apart from restarts":
		if m := expect("survived", sum(outcome("survived")), float64(survived)); m != "" {
			return m
		}
		return expect("exited", sum(outcome("exited")), float64(exited))
	case "Node-wide (system) OOM kills", "Node-wide (system) OOM kills by node":
		// No node-wide OOM here: 0 for the watched node, not no data.
		if m := expect("node-wide kills", sum(nil), 0); m != "" {
			return m
		}
		if title != "Node-wide (system) OOM kills" && got[0].Labels["k8s_node_name"] != node {
			return "the watched node's zero is missing"
		}
	case "Top pods", "Top containers", "Recent kills":
		if m := expect("rows", float64(len(got)), kills); m != "" {
			return m
		}
		return expect("kills", sum(nil), kills)
	case "Nodes with a collector reporting":
		if got[0].Values[len(got[0].Values)-1] != 1 {
			return "one node reports"
		}
	case "Kernel lines not understood (format drift)", "Kills with unknown pod (unattributed)", "Checkpoint gaps", "Delivery retries",
		"Kills known only from the kernel's counters":
		// The collector exports its counters at 0: a healthy node is a 0.
		if got[0].Labels["k8s_node_name"] != node {
			return "the node's series is missing"
		}
		return expect(title, sum(nil), 0)
	default:
		return "a panel this test does not know: add what it must show"
	}
	return ""
}

func ftoa(f float64) string { b, _ := json.Marshal(f); return string(b) }
