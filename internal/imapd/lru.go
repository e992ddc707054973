package imapd

import (
	"container/list"
	"sync"
)

// lru is the bounded, least-recently-used map by id that the structure,
// header and mailbox-listing caches share. Each entry has a cost; the
// cache holds at most maxEntries entries (0: no count bound) and maxCost
// in all, evicting from the least recently used end.
type lru[V any] struct {
	mu         sync.Mutex
	maxEntries int
	maxCost    int64
	cost       int64
	ll         *list.List // of *lruItem[V], most recent at the front
	byID       map[int64]*list.Element
}

type lruItem[V any] struct {
	id   int64
	v    V
	cost int64
}

func newLRU[V any](maxEntries int, maxCost int64) *lru[V] {
	return &lru[V]{maxEntries: maxEntries, maxCost: maxCost, ll: list.New(), byID: make(map[int64]*list.Element)}
}

// get returns the value cached for id and marks it recently used.
func (c *lru[V]) get(id int64) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byID[id]
	if !ok {
		var zero V
		return zero, false
	}
	c.ll.MoveToFront(e)
	return e.Value.(*lruItem[V]).v, true
}

// put caches v for id, replacing what id had, then evicts down to the
// bounds. A value costing more than the whole bound is not cached, and
// id's older value is dropped.
func (c *lru[V]) put(id int64, v V, cost int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cost > c.maxCost {
		c.removeLocked(id)
		return
	}
	if e, ok := c.byID[id]; ok {
		it := e.Value.(*lruItem[V])
		c.cost += cost - it.cost
		it.v, it.cost = v, cost
		c.ll.MoveToFront(e)
	} else {
		c.byID[id] = c.ll.PushFront(&lruItem[V]{id: id, v: v, cost: cost})
		c.cost += cost
	}
	for c.cost > c.maxCost || (c.maxEntries > 0 && c.ll.Len() > c.maxEntries) {
		last := c.ll.Back()
		it := last.Value.(*lruItem[V])
		c.ll.Remove(last)
		delete(c.byID, it.id)
		c.cost -= it.cost
	}
}

// remove drops id's value, if any.
func (c *lru[V]) remove(id int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeLocked(id)
}

// removeAll drops the values of ids, under one lock.
func (c *lru[V]) removeAll(ids []int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		c.removeLocked(id)
	}
}

func (c *lru[V]) removeLocked(id int64) {
	if e, ok := c.byID[id]; ok {
		c.cost -= e.Value.(*lruItem[V]).cost
		c.ll.Remove(e)
		delete(c.byID, id)
	}
}

// size returns the number of entries and their total cost.
func (c *lru[V]) size() (int, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len(), c.cost
}
