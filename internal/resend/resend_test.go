package resend

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestMark(t *testing.T) {
	ctx := context.Background()
	assert.False(t, FromContext(ctx), "unmarked")
	marked := NewContext(ctx)
	assert.True(t, FromContext(marked))
	type other struct{}
	assert.True(t, FromContext(context.WithValue(marked, other{}, 1)), "the mark survives contexts derived from it")
	assert.False(t, FromContext(ctx), "the parent stays unmarked")
}
