package testutil

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A journal a journald started by hand left (root:root, no setgid) is laid
// out as on a node for the test's journald, and put back afterwards, files
// that journald added included. Needs root (chown).
func TestJournalLayoutAndRestore(t *testing.T) {
	if os.Geteuid() != 0 {
		SkipOrFail(t, "needs root: it changes files' owners")
	}
	const gid = 4242
	top := filepath.Join(t.TempDir(), "journal")
	dir := filepath.Join(top, "0123456789abcdef0123456789abcdef")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	old := filepath.Join(dir, "system.journal")
	require.NoError(t, os.WriteFile(old, []byte("journal"), 0o640))
	require.NoError(t, os.Chmod(top, 0o755)) // as journald makes them, without systemd-tmpfiles
	require.NoError(t, os.Chmod(dir, 0o755))

	before, err := snapshot(top)
	require.NoError(t, err)
	require.True(t, before.existed)
	require.NoError(t, layOutAsNode(top, dir, gid))
	assertOwner(t, top, 0, gid, 0o2755)
	assertOwner(t, dir, 0, gid, 0o2750)
	assertOwner(t, old, 0, gid, 0o640)

	added := filepath.Join(dir, "system@0001.journal")
	require.NoError(t, os.WriteFile(added, nil, 0o640))
	require.NoError(t, os.Chown(added, 0, gid)) // what the setgid directory gives it
	require.NoError(t, before.restore())
	assertOwner(t, top, 0, 0, 0o755)
	assertOwner(t, dir, 0, 0, 0o755)
	assertOwner(t, old, 0, 0, 0o640)
	assertOwner(t, added, 0, 0, 0o640)

	// A journal that was not there is removed.
	none := filepath.Join(t.TempDir(), "none")
	s, err := snapshot(none)
	require.NoError(t, err)
	require.False(t, s.existed)
	require.NoError(t, layOutAsNode(none, filepath.Join(none, "m"), gid))
	require.NoError(t, s.restore())
	assert.NoDirExists(t, none)
}

func assertOwner(t *testing.T, path string, uid, gid int, mode uint32) {
	t.Helper()
	var st syscall.Stat_t
	require.NoError(t, syscall.Stat(path, &st))
	assert.Equal(t, []any{uid, gid, mode}, []any{int(st.Uid), int(st.Gid), st.Mode & 0o7777}, path)
}
