package tlsrptin

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParse: any message gives reports or ErrNotReport/ErrBadReport,
// never a panic; what is returned passed the checks.
func FuzzParse(f *testing.F) {
	js := rfcJSON(f)
	f.Add([]byte(reportMail("application/tlsrpt+gzip", "base64", "", b64(gz(f, js)))))
	f.Add([]byte(reportMail("application/tlsrpt+json", "7bit", "", string(js))))
	f.Add([]byte(reportMail("application/tlsrpt+json", "quoted-printable", "", "{=\r\n}")))
	f.Add([]byte("Content-Type: application/tlsrpt+json\r\n\r\n" + string(js)))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: multipart/mixed; boundary=y\r\n\r\n--y\r\n--x--"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		reps, err := Parse(strings.NewReader(string(msg)))
		if err != nil {
			if !errors.Is(err, ErrNotReport) && !errors.Is(err, ErrBadReport) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		for _, r := range reps {
			if r.check() != nil {
				t.Fatalf("returned a report that fails its checks: %+v", r)
			}
		}
	})
}

// FuzzParseJSON: the report decoder alone.
func FuzzParseJSON(f *testing.F) {
	f.Add(rfcJSON(f))
	f.Add([]byte(`{"policies":[{"policy":{"mx-host":"one"}}]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseJSON(data)
		if err == nil {
			if _, rerr := Rows(*r, "x@y.example", r.DateRange.Start); rerr != nil {
				t.Fatalf("rows of a checked report: %v", rerr)
			}
		} else if !errors.Is(err, ErrBadReport) {
			t.Fatalf("unclassified error %v", err)
		}
	})
}
