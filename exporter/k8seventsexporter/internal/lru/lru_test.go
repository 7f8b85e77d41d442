package lru

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestBoundedLeastRecentlyUsedFirst(t *testing.T) {
	var evicted []string
	c := New[string, int](2, func(k string, _ int) { evicted = append(evicted, k) })
	c.Put("a", 1)
	c.Put("b", 2)
	_, _ = c.Get("a") // b is now the least recently used
	c.Put("c", 3)
	assert.Equal(t, []string{"b"}, evicted)
	assert.Equal(t, 2, c.Len())
	assert.True(t, c.Contains("a"))
	assert.False(t, c.Contains("b"))
	c.Put("a", 10)
	v, ok := c.Get("a")
	assert.True(t, ok)
	assert.Equal(t, 10, v)
	c.Remove("a")
	assert.Equal(t, 1, c.Len())
	var keys []string
	c.Each(func(k string, _ int) { keys = append(keys, k) })
	assert.Equal(t, []string{"c"}, keys)
	assert.Equal(t, []string{"b"}, evicted, "Remove does not call onEvict")
}
