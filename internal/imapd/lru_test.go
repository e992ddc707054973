package imapd

import "testing"

func TestLRUBoundsAndReplace(t *testing.T) {
	c := newLRU[string](3, 10)
	c.put(1, "a", 4)
	c.put(2, "b", 4)
	if v, ok := c.get(1); !ok || v != "a" { // 1 is now the most recent
		t.Fatalf("get(1) = %q, %v", v, ok)
	}
	c.put(3, "c", 4) // cost 12 > 10: the least recent (2) goes
	if _, ok := c.get(2); ok {
		t.Fatal("2 survived eviction")
	}
	if n, cost := c.size(); n != 2 || cost != 8 {
		t.Fatalf("size = %d, %d", n, cost)
	}
	c.put(1, "A", 1) // replace: cost follows
	if v, _ := c.get(1); v != "A" {
		t.Fatalf("replaced value %q", v)
	}
	if _, cost := c.size(); cost != 5 {
		t.Fatalf("cost after replace = %d", cost)
	}
	c.put(4, "d", 1)
	c.put(5, "e", 1) // 4 entries > maxEntries 3: the least recent (3) goes
	if _, ok := c.get(3); ok {
		t.Fatal("entry bound not kept")
	}
	c.put(1, "huge", 11) // over the whole bound: not cached, old value dropped
	if _, ok := c.get(1); ok {
		t.Fatal("an entry over the bound was kept")
	}
	c.remove(4)
	if n, cost := c.size(); n != 1 || cost != 1 {
		t.Fatalf("size after remove = %d, %d", n, cost)
	}
}
