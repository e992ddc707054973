package ratelimit

import "time"

// node is one entry of an lru: a key, the time that orders it, a value.
type node[V any] struct {
	key        string
	at         time.Time
	val        V
	prev, next *node[V]
}

// lru is a map whose entries also sit in a doubly linked list, least
// recently touched first. Callers hold the owner's mutex.
type lru[V any] struct {
	m          map[string]*node[V]
	head, tail *node[V]
}

func newLRU[V any]() lru[V] { return lru[V]{m: make(map[string]*node[V])} }

func (o *lru[V]) len() int { return len(o.m) }

func (o *lru[V]) get(key string) *node[V] { return o.m[key] }

// oldest returns the least recently touched entry, or nil.
func (o *lru[V]) oldest() *node[V] { return o.head }

func (o *lru[V]) add(key string, at time.Time, val V) *node[V] {
	n := &node[V]{key: key, at: at, val: val}
	o.m[key] = n
	o.pushBack(n)
	return n
}

// touch sets n's time and moves it to the back.
func (o *lru[V]) touch(n *node[V], at time.Time) {
	n.at = at
	if o.tail == n {
		return
	}
	o.unlink(n)
	o.pushBack(n)
}

func (o *lru[V]) remove(n *node[V]) {
	if n == nil {
		return
	}
	o.unlink(n)
	delete(o.m, n.key)
}

func (o *lru[V]) pushBack(n *node[V]) {
	n.prev, n.next = o.tail, nil
	if o.tail != nil {
		o.tail.next = n
	} else {
		o.head = n
	}
	o.tail = n
}

func (o *lru[V]) unlink(n *node[V]) {
	if n.prev != nil {
		n.prev.next = n.next
	} else {
		o.head = n.next
	}
	if n.next != nil {
		n.next.prev = n.prev
	} else {
		o.tail = n.prev
	}
	n.prev, n.next = nil, nil
}
