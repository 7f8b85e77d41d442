package kernellab

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseOutputs(t *testing.T) {
	b := []byte("\n@@KERNELLAB FILE a 3\nx\ny\n@@KERNELLAB FILE empty 0\n\n@@KERNELLAB DONE 7\n")
	outs, rc, err := parseOutputs(b)
	require.NoError(t, err)
	assert.Equal(t, 7, rc)
	assert.Equal(t, map[string][]byte{"a": []byte("x\ny"), "empty": {}}, outs)

	_, _, err = parseOutputs([]byte("\n@@KERNELLAB FILE a 30\nxy"))
	assert.ErrorContains(t, err, "cut short")
	_, _, err = parseOutputs(nil)
	assert.ErrorContains(t, err, "no DONE line")
}

func TestParseExport(t *testing.T) {
	var b bytes.Buffer
	b.WriteString("MESSAGE=one\n_TRANSPORT=kernel\nSYSLOG_IDENTIFIER=kernel\n\n")
	b.WriteString("MESSAGE\n\x05\x00\x00\x00\x00\x00\x00\x00a\nb=c\n_TRANSPORT=kernel\n\n")
	es, err := ParseExport(b.Bytes())
	require.NoError(t, err)
	require.Len(t, es, 2)
	assert.Equal(t, "one", es[0].Message())
	assert.True(t, es[0].Kernel())
	assert.Equal(t, "a\nb=c", es[1].Message())
	assert.False(t, es[1].Kernel(), "no SYSLOG_IDENTIFIER=kernel")
	assert.Equal(t, b.Bytes(), append(append([]byte(nil), es[0].Raw...), es[1].Raw...))

	_, err = ParseExport([]byte("MESSAGE\n\xff\x00\x00\x00\x00\x00\x00\x00a\n\n"))
	assert.ErrorContains(t, err, "bad length")
	_, err = ParseExport([]byte("MESSAGE=x\n"))
	assert.Error(t, err)
}

// The archive writer's output unpacks with a real cpio (busybox's, which
// the lab fetches anyway).
func TestNewcArchive(t *testing.T) {
	if _, err := exec.LookPath("apt-get"); err != nil {
		t.Skip("not a Debian machine: ", err)
	}
	cache, err := CacheDir()
	require.NoError(t, err)
	unlock, err := lockCache(cache)
	require.NoError(t, err)
	bb, err := unpacked(cache, "busybox-static")
	unlock()
	require.NoError(t, err)
	cpio := filepath.Join(bb, "bin", "busybox")
	var b bytes.Buffer
	require.NoError(t, writeArchive(&b, []File{
		{Path: "/a/b/c.txt", Data: []byte("hello")},
		{Path: "/a/link", Link: "b/c.txt"},
		{Path: "/a/b/c.txt", Data: []byte("replaced"), Mode: 0o600},
	}))
	dir := t.TempDir()
	cmd := exec.Command(cpio, "cpio", "-i", "-d")
	cmd.Dir, cmd.Stdin = dir, &b
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	got, err := os.ReadFile(filepath.Join(dir, "a", "link"))
	require.NoError(t, err)
	assert.Equal(t, "replaced", string(got), "later entries of a path win; the link resolves")
	fi, err := os.Stat(filepath.Join(dir, "a", "b", "c.txt"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
}

func TestHostBinaryListsLibraries(t *testing.T) {
	self, err := os.Executable()
	require.NoError(t, err)
	files, err := HostBinary(self, "/usr/bin/x")
	require.NoError(t, err)
	assert.Equal(t, "/usr/bin/x", files[0].Path)
	var paths []string
	for _, f := range files[1:] {
		paths = append(paths, f.Path)
	}
	if len(paths) > 0 { // a cgo test binary links libc and its loader
		assert.True(t, strings.Contains(strings.Join(paths, " "), "ld-linux"), "%v", paths)
	}
}

// Modules come with what they depend on, dependencies first, uncompressed.
func TestModuleFilesResolveDependencies(t *testing.T) {
	if _, err := exec.LookPath("apt-get"); err != nil {
		t.Skip("not a Debian machine: ", err)
	}
	files, err := moduleFiles(Debian612, []string{"bridge", "veth"})
	require.NoError(t, err)
	last := files[len(files)-1]
	require.Equal(t, "/lab/modules", last.Path)
	order := strings.Fields(string(last.Data))
	pos := map[string]int{}
	for i, m := range order {
		pos[m] = i
	}
	for _, m := range []string{"llc", "stp", "bridge", "veth"} {
		require.Contains(t, pos, m, "load order %v", order)
	}
	assert.Less(t, pos["llc"], pos["stp"], "stp needs llc")
	assert.Less(t, pos["stp"], pos["bridge"], "bridge needs stp")
	for _, f := range files[:len(files)-1] {
		b, rerr := os.ReadFile(f.Source)
		require.NoError(t, rerr)
		assert.Equal(t, []byte("\x7fELF"), b[:4], "%s is an uncompressed module", f.Path)
	}
	_, err = moduleFiles(Debian612, []string{"no_such_module"})
	assert.ErrorContains(t, err, "no module no_such_module")
}
