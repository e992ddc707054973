package msgauth

import (
	"testing"
	"time"
)

// A result is reused until spfCacheTTL, per (address, HELO, sender);
// temporary errors are never kept.
func TestSPFCache(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newSPFCache(func() time.Time { return now })
	k := spfKey("192.0.2.1", "mx.sender.test", "a@sender.test")
	c.put(k, Outcome{Result: Pass, Domain: "sender.test"})
	if o, ok := c.get(k); !ok || o.Result != Pass || o.Domain != "sender.test" {
		t.Fatalf("get = %+v %v, want the pass", o, ok)
	}
	for _, other := range []string{
		spfKey("192.0.2.2", "mx.sender.test", "a@sender.test"),
		spfKey("192.0.2.1", "other.test", "a@sender.test"),
		spfKey("192.0.2.1", "mx.sender.test", "b@sender.test"),
	} {
		if o, ok := c.get(other); ok {
			t.Errorf("%q hit %+v", other, o)
		}
	}
	now = now.Add(spfCacheTTL)
	if _, ok := c.get(k); ok {
		t.Error("a result older than the TTL was reused")
	}
	c.put(k, Outcome{Result: TempError})
	if _, ok := c.get(k); ok {
		t.Error("a temperror was kept")
	}
}
