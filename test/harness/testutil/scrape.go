package testutil

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Sample is one sample line of a Prometheus text exposition.
type Sample struct {
	Name  string
	Value float64
	// labels is the text between the braces, parsed when asked (a
	// benchmark polls expositions of thousands of series).
	labels string
}

// Label returns the value of the label named name ("" when absent).
func (s Sample) Label(name string) string {
	rest := s.labels
	for rest != "" {
		key, after, ok := strings.Cut(rest, `="`)
		if !ok {
			return ""
		}
		var val strings.Builder
		i := 0
		for ; i < len(after) && after[i] != '"'; i++ {
			if after[i] == '\\' && i+1 < len(after) {
				i++
				if after[i] == 'n' {
					val.WriteByte('\n')
					continue
				}
			}
			val.WriteByte(after[i])
		}
		if strings.TrimSpace(key) == name {
			return val.String()
		}
		rest = strings.TrimPrefix(after[min(i+1, len(after)):], ",")
	}
	return ""
}

// Labeled reports whether the sample has every label of want with its value.
func (s Sample) Labeled(want map[string]string) bool {
	for k, v := range want {
		if s.Label(k) != v {
			return false
		}
	}
	return true
}

var scrapeClient = &http.Client{Timeout: 5 * time.Second}

// Scrape fetches a Prometheus text endpoint (an exporter's /metrics) and
// returns the samples of the metric named name, every sample when name is
// "". An endpoint that does not answer 200 OK is an error.
func Scrape(url, name string) ([]Sample, error) {
	resp, err := scrapeClient.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	var out []Sample
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || !strings.HasPrefix(line, name) {
			continue
		}
		s, err := parseSample(line)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", url, err)
		}
		if name == "" || s.Name == name {
			out = append(out, s)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	return out, nil
}

// parseSample reads `name{labels} value [timestamp]`.
func parseSample(line string) (Sample, error) {
	var s Sample
	end := strings.IndexAny(line, "{ ")
	if end < 0 {
		return s, fmt.Errorf("no value in %q", line)
	}
	s.Name, line = line[:end], line[end:]
	if line[0] == '{' {
		closing := labelsEnd(line)
		if closing < 0 {
			return s, fmt.Errorf("unterminated labels in %q", line)
		}
		s.labels, line = line[1:closing], line[closing+1:]
	}
	f := strings.Fields(line)
	if len(f) == 0 {
		return s, fmt.Errorf("no value after %s", s.Name)
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return s, fmt.Errorf("%s: %w", s.Name, err)
	}
	s.Value = v
	return s, nil
}

// labelsEnd returns the index of the brace closing the label set that
// line starts with, skipping quoted values (which may hold braces).
func labelsEnd(line string) int {
	quoted := false
	for i := 1; i < len(line); i++ {
		switch {
		case quoted && line[i] == '\\':
			i++
		case line[i] == '"':
			quoted = !quoted
		case !quoted && line[i] == '}':
			return i
		}
	}
	return -1
}

// Sum adds up the samples' values.
func Sum(samples []Sample) float64 {
	var sum float64
	for _, s := range samples {
		sum += s.Value
	}
	return sum
}
