package app

import (
	"testing"

	"github.com/petrelmail/petrel/internal/filter/filtertest"
)

// BenchmarkInbound25Filter is BenchmarkInbound25 with the checks split:
// authentication only, authentication plus the built-in filter (score,
// attachments, classifier look-up), and authentication plus a real rspamd
// (filtertest starts one; skipped where rspamd is not installed).
//
//	go test -run XXX -bench Inbound25Filter -benchtime 2000x ./internal/app
func BenchmarkInbound25Filter(b *testing.B) {
	b.Run("auth-only", func(b *testing.B) { benchInboundEnv(b, 10, true, map[string]string{"PETREL_BENCH_NO_FILTER": "1"}) })
	b.Run("auth+builtin", func(b *testing.B) { benchInboundEnv(b, 10, true, nil) })
	b.Run("auth+rspamd", func(b *testing.B) {
		r := filtertest.StartRspamd(b)
		benchInboundEnv(b, 10, true, map[string]string{"ANTISPAM_ADDRESS": r.Check})
	})
}
