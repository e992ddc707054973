package tlsrptin

import (
	"strings"
	"testing"
)

// BenchmarkParse parses one RFC 8460 example report mailed as a gzip
// attachment: the work each report costs the background parser.
func BenchmarkParse(b *testing.B) {
	msg := reportMail("application/tlsrpt+gzip", "base64", "", b64(gz(b, rfcJSON(b))))
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := Parse(strings.NewReader(msg)); err != nil {
			b.Fatal(err)
		}
	}
}
