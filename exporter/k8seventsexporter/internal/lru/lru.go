// Package lru is a small bounded map whose least recently used entry goes
// first, so the exporter's state has a ceiling whatever the input.
package lru

import "container/list"

// Cache maps K to V and holds at most Size entries. Not safe for
// concurrent use.
type Cache[K comparable, V any] struct {
	size    int
	ll      *list.List
	m       map[K]*list.Element
	onEvict func(K, V)
}

type entry[K comparable, V any] struct {
	k K
	v V
}

// New returns a cache of at most size entries; onEvict (may be nil) is
// called for an entry pushed out by a newer one.
func New[K comparable, V any](size int, onEvict func(K, V)) *Cache[K, V] {
	return &Cache[K, V]{size: size, ll: list.New(), m: make(map[K]*list.Element), onEvict: onEvict}
}

// Get returns the value for k and marks it recently used.
func (c *Cache[K, V]) Get(k K) (V, bool) {
	if e, ok := c.m[k]; ok {
		c.ll.MoveToFront(e)
		return e.Value.(*entry[K, V]).v, true
	}
	var zero V
	return zero, false
}

// Contains reports whether k is present without marking it used.
func (c *Cache[K, V]) Contains(k K) bool {
	_, ok := c.m[k]
	return ok
}

// Put sets k to v, marks it recently used, and evicts the least recently
// used entry when the cache is full.
func (c *Cache[K, V]) Put(k K, v V) {
	if e, ok := c.m[k]; ok {
		e.Value.(*entry[K, V]).v = v
		c.ll.MoveToFront(e)
		return
	}
	c.m[k] = c.ll.PushFront(&entry[K, V]{k, v})
	if c.ll.Len() > c.size {
		old := c.ll.Back()
		c.ll.Remove(old)
		oe := old.Value.(*entry[K, V])
		delete(c.m, oe.k)
		if c.onEvict != nil {
			c.onEvict(oe.k, oe.v)
		}
	}
}

// Remove deletes k (no eviction callback).
func (c *Cache[K, V]) Remove(k K) {
	if e, ok := c.m[k]; ok {
		c.ll.Remove(e)
		delete(c.m, k)
	}
}

// Len is the number of entries.
func (c *Cache[K, V]) Len() int { return c.ll.Len() }

// Each calls f for every entry, most recently used first; f must not
// change the cache.
func (c *Cache[K, V]) Each(f func(K, V)) {
	for e := c.ll.Front(); e != nil; e = e.Next() {
		en := e.Value.(*entry[K, V])
		f(en.k, en.v)
	}
}
