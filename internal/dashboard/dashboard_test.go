package dashboard

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite examples/grafana/otelcol-oomkill.json and its README's panel list")

var (
	jsonPath   = filepath.Join("..", "..", "examples", "grafana", "otelcol-oomkill.json")
	readmePath = filepath.Join("..", "..", "examples", "grafana", "README.md")
)

// The shipped JSON is what this package builds (regenerate with
// `go test ./internal/dashboard -update`), and the README lists every
// panel with its query.
func TestShippedFilesAreCurrent(t *testing.T) {
	want, err := JSON()
	require.NoError(t, err)
	readme, err := os.ReadFile(readmePath)
	require.NoError(t, err)
	wantReadme, err := withPanelList(string(readme), want)
	require.NoError(t, err)
	if *update {
		require.NoError(t, os.WriteFile(jsonPath, want, 0o644))
		require.NoError(t, os.WriteFile(readmePath, []byte(wantReadme), 0o644))
		readme = []byte(wantReadme)
	}
	got, err := os.ReadFile(jsonPath)
	require.NoError(t, err)
	require.Equal(t, string(want), string(got), "go test ./internal/dashboard -update")
	require.Equal(t, wantReadme, string(readme), "go test ./internal/dashboard -update")
}

// The shipped JSON decodes strictly into the Grafana Foundation SDK's
// dashboard types (the schema Grafana's own dashboard kind is generated
// from): no unknown field, no wrong type, no missing required field, in the
// dashboard, its variables, every panel, each panel type's options and
// field config, and every Prometheus query.
func TestDecodesIntoGrafanaSchema(t *testing.T) {
	raw, err := os.ReadFile(jsonPath)
	require.NoError(t, err)
	noErrors(t, strictDecode(raw))

	// The checks are not vacuous: a misspelt option, a query of the wrong
	// type or a missing required field fail them.
	for _, broken := range []struct{ from, to string }{
		{`"reduceOptions": {`, `"reduceOption": {`},
		{`"refId": "A"`, `"refId": 1`},
		{`"schemaVersion": 39,`, ``},
	} {
		require.Contains(t, string(raw), broken.from)
		err := strictDecode([]byte(strings.Replace(string(raw), broken.from, broken.to, 1)))
		var errs cog.BuildErrors
		if errors.As(err, &errs) {
			require.NotEmpty(t, errs, "%q -> %q decoded", broken.from, broken.to)
		} else {
			require.Error(t, err, "%q -> %q decoded", broken.from, broken.to)
		}
	}
}

// strictDecode decodes a dashboard with every panel type's and the
// Prometheus query's types registered, and validates it.
func strictDecode(raw []byte) error {
	plugins.RegisterDefaultPlugins()
	var d dashboard.Dashboard //nolint:staticcheck // the classic dashboard JSON is what this file is (see build)
	if err := d.UnmarshalJSONStrict(raw); err != nil {
		var errs cog.BuildErrors
		if !errors.As(err, &errs) || len(errs) > 0 {
			return err
		}
	}
	return d.Validate()
}

// What an importer relies on: the datasource is a variable every panel
// uses, the three filters exist, each panel has one query and a
// description, ids are unique and panels fit the grid without overlapping.
func TestLayoutAndVariables(t *testing.T) {
	raw, err := os.ReadFile(jsonPath)
	require.NoError(t, err)
	var d struct {
		UID        string `json:"uid"`
		Templating struct {
			List []struct {
				Name, Type string
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			Type, Title, Description string
			ID                       uint32                      `json:"id"`
			Datasource               struct{ UID string }        `json:"datasource"`
			GridPos                  struct{ H, W, X, Y uint32 } `json:"gridPos"`
			Targets                  []struct{ Expr string }     `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(raw, &d))
	require.Equal(t, UID, d.UID)
	var names []string
	for _, v := range d.Templating.List {
		names = append(names, v.Name)
	}
	require.Equal(t, []string{"datasource", "cluster", "namespace", "node"}, names)
	require.Equal(t, "datasource", d.Templating.List[0].Type)

	ids := map[uint32]bool{}
	occupied := map[[2]uint32]string{}
	panels := 0
	for _, p := range d.Panels {
		require.False(t, ids[p.ID], "panel id %d twice", p.ID)
		ids[p.ID] = true
		pos := p.GridPos
		require.LessOrEqual(t, pos.X+pos.W, uint32(24), "%s fits the grid", p.Title)
		for x := pos.X; x < pos.X+pos.W; x++ {
			for y := pos.Y; y < pos.Y+pos.H; y++ {
				require.Empty(t, occupied[[2]uint32{x, y}], "%s overlaps %s", p.Title, occupied[[2]uint32{x, y}])
				occupied[[2]uint32{x, y}] = p.Title
			}
		}
		if p.Type == "row" {
			continue
		}
		panels++
		require.Equal(t, "${datasource}", p.Datasource.UID, "%s: the datasource variable", p.Title)
		require.Len(t, p.Targets, 1, p.Title)
		require.NotEmpty(t, p.Targets[0].Expr, p.Title)
		require.NotEmpty(t, p.Description, p.Title)
	}
	require.Equal(t, 16, panels)
}

// noErrors fails on err, but for an empty cog.BuildErrors: the SDK returns
// its empty error list as a non-nil error.
func noErrors(t *testing.T, err error) {
	t.Helper()
	var errs cog.BuildErrors
	if errors.As(err, &errs) && len(errs) == 0 {
		return
	}
	require.NoError(t, err)
}

// withPanelList is readme with the part between the panel-list markers
// replaced by each panel's title, description and query.
func withPanelList(readme string, dashboardJSON []byte) (string, error) {
	const begin, end = "<!-- panels: generated by go test ./internal/dashboard -update -->\n", "<!-- end of panels -->\n"
	i, j := strings.Index(readme, begin), strings.Index(readme, end)
	if i < 0 || j < i {
		return "", errMarkers
	}
	var d struct {
		Panels []struct {
			Type        string `json:"type"`
			Title       string `json:"title"`
			Description string `json:"description"`
			Targets     []struct {
				Expr    string `json:"expr"`
				Instant bool   `json:"instant"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(dashboardJSON, &d); err != nil {
		return "", err
	}
	var b strings.Builder
	for _, p := range d.Panels {
		if p.Type == "row" {
			b.WriteString("\n### Row: " + p.Title + "\n")
			continue
		}
		kind := "range query, one point per step"
		if p.Targets[0].Instant {
			kind = "instant query over the time range"
		}
		b.WriteString("\n**" + p.Title + "** (" + p.Type + ", " + kind + "): " + p.Description + "\n\n```promql\n" + p.Targets[0].Expr + "\n```\n")
	}
	return readme[:i+len(begin)] + b.String() + "\n" + readme[j:], nil
}

var errMarkers = errors.New("examples/grafana/README.md lacks the panel-list markers")
