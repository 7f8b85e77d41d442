// Package deps tests scripts/install-deps.sh, which `make run` and `make
// test` call first: where it cannot install (not Debian, not root) it stops
// at once and lists exactly what to install.
package deps

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func script(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "scripts", "install-deps.sh"))
	require.NoError(t, err)
	return p
}

// Off Debian (here: a PATH without dpkg-query and apt-get, and without the
// commands the tests need), it installs nothing and names the packages.
func TestOffDebianListsWhatToInstall(t *testing.T) {
	bin := t.TempDir()
	for _, c := range []string{"go", "bash", "id", "cc", "make"} {
		p, err := exec.LookPath(c)
		if err != nil {
			t.Skipf("%s is not installed", c)
		}
		require.NoError(t, os.Symlink(p, filepath.Join(bin, c)))
	}
	cmd := exec.Command(script(t), "test")
	cmd.Env = append(os.Environ(), "PATH="+bin)
	out, err := cmd.CombinedOutput()
	require.Error(t, err, "%s", out)
	msg := string(out)
	require.Contains(t, msg, "cannot install them here (not Debian or Ubuntu")
	for _, pkg := range []string{"jq", "curl", "podman", "buildah", "runc"} { // commands not on that PATH
		require.Contains(t, msg, " "+pkg, msg)
	}
	require.Contains(t, msg, "apt-get install -y --no-install-recommends qemu-system-x86")
	require.NotContains(t, msg, "installing", "nothing was installed")

	// make run needs fewer: only the build (the collector reads /dev/kmsg
	// where no journald runs). Here without a C compiler and make.
	runBin := t.TempDir()
	for _, c := range []string{"go", "bash", "id"} {
		p, lookErr := exec.LookPath(c)
		require.NoError(t, lookErr)
		require.NoError(t, os.Symlink(p, filepath.Join(runBin, c)))
	}
	cmd = exec.Command(script(t), "run")
	cmd.Env = append(os.Environ(), "PATH="+runBin)
	out, err = cmd.CombinedOutput()
	require.Error(t, err, "%s", out)
	require.True(t, strings.HasPrefix(strings.TrimSpace(strings.Split(string(out), "\n")[1]), "apt-get install -y build-essential"), "%s", out)
	require.NotContains(t, string(out), "systemd", "make run needs no journald")
}

func TestUsage(t *testing.T) {
	out, err := exec.Command(script(t), "deploy").CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "usage:")
}
