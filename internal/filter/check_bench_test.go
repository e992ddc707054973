package filter

import (
	"context"
	"strings"
	"testing"

	"github.com/petrelmail/petrel/internal/testutil"
)

// BenchmarkBuiltinCheck is the built-in filter's verdict on one plain
// 4 KiB message for one untrained user, as port 25 asks for it: score,
// attachment scan, classifier look-up (no greylisting, no DNSBL).
//
//	go test -run XXX -bench BuiltinCheck -benchmem ./internal/filter
func BenchmarkBuiltinCheck(b *testing.B) {
	st := testutil.OpenStore(b, b.TempDir(), "example.test", "alice")
	f := New(Options{Builtin: NewBuiltin(BuiltinOptions{Store: st, Classifier: true})})
	body := plainMsg + strings.Repeat("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n", 64)
	m := msgOf(body)
	m.Users = []string{"alice@example.test"}
	m.Auth = AuthSummary{SPF: "pass", DKIMPassDomains: []string{"sender.test"}, DMARC: "pass", FromDomain: "sender.test", IPRev: "pass"}
	ctx := context.Background()
	for b.Loop() {
		if _, err := f.Check(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
}
