//go:build linux

// Package promtest runs a real Prometheus server (Debian's
// /usr/bin/prometheus) on loopback for tests, and queries it: instant
// queries, raw results for failure messages, firing alerts.
package promtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/testutil"
)

// Binary is the Prometheus server the tests run.
const Binary = "/usr/bin/prometheus"

// Server is a running Prometheus.
type Server struct{ Base string }

// Start runs Prometheus with config (a prometheus.yml) in a temporary
// directory until the test ends, and waits until it is ready.
func Start(t *testing.T, config string) *Server {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(cfg, []byte(config), 0o600))
	port := testutil.FreePort(t)
	cmd := exec.Command(Binary, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port))
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
	s := &Server{Base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	require.Eventually(t, func() bool {
		resp, err := http.Get(s.Base + "/-/ready")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 200*time.Millisecond, "prometheus did not start")
	return s
}

func (s *Server) get(t *testing.T, path string, out any) {
	t.Helper()
	resp, err := http.Get(s.Base + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.NoError(t, json.NewDecoder(resp.Body).Decode(out))
}

// Query returns the sum of an instant vector query's values.
func (s *Server) Query(t *testing.T, q string) float64 {
	var r struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	s.get(t, "/api/v1/query?query="+url.QueryEscape(q), &r)
	sum := 0.0
	for _, v := range r.Data.Result {
		f, _ := strconv.ParseFloat(v.Value[1].(string), 64)
		sum += f
	}
	return sum
}

// Raw returns a query's JSON result, for failure messages.
func (s *Server) Raw(t *testing.T, q string) string {
	var r json.RawMessage
	s.get(t, "/api/v1/query?query="+url.QueryEscape(q), &r)
	return string(r)
}

// Firing returns the labels of the firing alerts named name.
func (s *Server) Firing(t *testing.T, name string) []map[string]string {
	var r struct {
		Data struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
				State  string            `json:"state"`
			} `json:"alerts"`
		} `json:"data"`
	}
	s.get(t, "/api/v1/alerts", &r)
	var out []map[string]string
	for _, a := range r.Data.Alerts {
		if a.Labels["alertname"] == name && a.State == "firing" {
			out = append(out, a.Labels)
		}
	}
	return out
}

// Series is one series of a query's result: its labels and values (one for
// an instant query, one per step for a range query).
type Series struct {
	Labels map[string]string
	Values []float64
}

// Instant runs an instant query and returns its series; a query Prometheus
// refuses fails the test.
func (s *Server) Instant(t *testing.T, q string) []Series {
	t.Helper()
	return s.series(t, "/api/v1/query?query="+url.QueryEscape(q))
}

// Range runs a range query over [end-span, end] with the given step.
func (s *Server) Range(t *testing.T, q string, span, step time.Duration) []Series {
	t.Helper()
	end := time.Now()
	return s.series(t, fmt.Sprintf("/api/v1/query_range?query=%s&start=%d&end=%d&step=%g", url.QueryEscape(q),
		end.Add(-span).Unix(), end.Unix(), step.Seconds()))
}

// LabelValues is what Grafana's label_values(match, label) lists.
func (s *Server) LabelValues(t *testing.T, label, match string) []string {
	t.Helper()
	var r struct {
		Status string   `json:"status"`
		Error  string   `json:"error"`
		Data   []string `json:"data"`
	}
	s.get(t, "/api/v1/label/"+url.PathEscape(label)+"/values?match[]="+url.QueryEscape(match), &r)
	require.Equal(t, "success", r.Status, "label_values(%s, %s): %s", match, label, r.Error)
	return r.Data
}

func (s *Server) series(t *testing.T, path string) []Series {
	t.Helper()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  []any             `json:"value"`
				Values [][]any           `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	s.get(t, path, &r)
	require.Equal(t, "success", r.Status, "%s: %s", path, r.Error)
	var out []Series
	for _, res := range r.Data.Result {
		sr := Series{Labels: res.Metric}
		points := res.Values
		if res.Value != nil {
			points = [][]any{res.Value}
		}
		for _, p := range points {
			f, err := strconv.ParseFloat(p[1].(string), 64)
			require.NoError(t, err)
			sr.Values = append(sr.Values, f)
		}
		out = append(out, sr)
	}
	return out
}
