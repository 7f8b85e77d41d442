package podstore

import "container/list"

// givenUp is a bounded set of keys (container IDs, pod UIDs) the store
// will not learn: forgotten identities, and IDs a wait timed out on. When
// full, the key added or hit longest ago makes room.
type givenUp struct {
	max   int
	keys  map[string]*list.Element
	order list.List // of string, most recent first
}

func newGivenUp(maxKeys int) *givenUp {
	return &givenUp{max: maxKeys, keys: map[string]*list.Element{}}
}

func (g *givenUp) add(key string) {
	if g.max <= 0 {
		return
	}
	if el, ok := g.keys[key]; ok {
		g.order.MoveToFront(el)
		return
	}
	g.keys[key] = g.order.PushFront(key)
	for g.order.Len() > g.max {
		delete(g.keys, g.order.Remove(g.order.Back()).(string))
	}
}

func (g *givenUp) has(key string) bool {
	el, ok := g.keys[key]
	if ok {
		g.order.MoveToFront(el)
	}
	return ok
}

func (g *givenUp) remove(key string) {
	if el, ok := g.keys[key]; ok {
		g.order.Remove(el)
		delete(g.keys, key)
	}
}

func (g *givenUp) len() int { return g.order.Len() }
