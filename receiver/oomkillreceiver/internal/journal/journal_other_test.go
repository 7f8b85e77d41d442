//go:build !linux || !cgo

package journal

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestUnsupported(t *testing.T) {
	_, err := CheckReadable(Location{})
	require.ErrorIs(t, err, ErrUnsupported)
	r, err := Open(Location{Directory: t.TempDir()}, Options{})
	require.ErrorIs(t, err, ErrUnsupported)
	require.Nil(t, r)
	require.ErrorContains(t, err, "runs only on Linux, built with cgo (CGO_ENABLED=1)")
}
