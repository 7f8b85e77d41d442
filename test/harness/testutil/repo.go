package testutil

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// module is the repository's Go module, which RepoRoot looks for.
const module = "github.com/otelcol-oomkill/otelcol-oomkill"

// RepoRoot returns the repository's root: the nearest directory above the
// working directory (a test's package directory) whose go.mod declares the
// module. Nested modules (internal/tools, test/k8sbin) are passed over.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if declaresModule(filepath.Join(dir, "go.mod")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no go.mod of %s above the working directory", module)
		}
		dir = parent
	}
}

func declaresModule(gomod string) bool {
	f, err := os.Open(gomod)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.TrimSpace(m) == module
		}
	}
	return false
}

// RepoPath returns the absolute path of rel (slash-separated) in the repository.
func RepoPath(t testing.TB, rel string) string {
	t.Helper()
	return filepath.Join(RepoRoot(t), filepath.FromSlash(rel))
}

// CollectorBinary returns the distribution `make build` builds,
// bin/otelcol-oomkill; when it is missing the test fails in CI and is
// skipped elsewhere (SkipOrFail), saying how to build it.
func CollectorBinary(t testing.TB) string {
	t.Helper()
	p := RepoPath(t, "bin/otelcol-oomkill")
	if _, err := os.Stat(p); err != nil {
		SkipOrFail(t, p+" is missing: run `make build` (make test does)")
	}
	return p
}

// SkipOrFail stops a test that lacks a prerequisite: in CI (CI set), where
// every prerequisite is installed, that is a broken setup and fails; on a
// developer's machine the test is skipped with msg, which says what to
// install or build.
func SkipOrFail(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// RandomHex returns n random bytes in hex (2n digits), for names no
// parallel run can share.
func RandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// RandomPodUID returns a random pod UID in the API's form (8-4-4-4-12).
func RandomPodUID() string {
	u := RandomHex(16)
	return fmt.Sprintf("%s-%s-%s-%s-%s", u[:8], u[8:12], u[12:16], u[16:20], u[20:])
}
