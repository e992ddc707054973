package sqlstore

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestParseTSText: the hand-written reader of tsText agrees with
// time.Parse on every valid timestamp and refuses what time.Parse
// refuses (the scanner then tries its other layouts).
func TestParseTSText(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		want := time.Unix(r.Int64N(1<<34)-1<<32, r.Int64N(1e9)).UTC().Truncate(time.Microsecond)
		s := want.Format(tsText)
		got, ok := parseTSText(s)
		if !ok || !got.Equal(want) || got.Location() != time.UTC {
			t.Fatalf("parseTSText(%q) = %v, %v; want %v", s, got, ok, want)
		}
	}
	for _, s := range []string{
		"2026-02-29 00:00:00.000000", // not a leap year
		"2026-13-01 00:00:00.000000",
		"2026-12-00 00:00:00.000000",
		"2026-12-06 24:00:00.000000",
		"2026-12-06 23:60:00.000000",
		"2026-12-06 23:59:60.000000",
		"2026-12-06T23:59:59.000000",
		"2026-12-06 23:59:59.00000x",
		"2026-12-06 23:59:59",
		"+026-12-06 23:59:59.000000",
		"",
	} {
		_, perr := time.Parse(tsText, s)
		if _, ok := parseTSText(s); ok || perr == nil {
			t.Errorf("%q: parseTSText ok=%v, time.Parse err=%v; both should refuse", s, ok, perr)
		}
	}
	if got, ok := parseTSText("2024-02-29 23:59:59.999999"); !ok || got.Day() != 29 {
		t.Errorf("leap day: %v %v", got, ok)
	}
	var ts time.Time
	if err := scanTime(&ts).Scan("2026-12-06 20:00:01.000002"); err != nil || !ts.Equal(time.Date(2026, 12, 6, 20, 0, 1, 2000, time.UTC)) {
		t.Errorf("scan: %v %v", ts, err)
	}
	if err := scanTime(&ts).Scan("2026-12-06"); err != nil || !ts.Equal(time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("scan of a date: %v %v", ts, err)
	}
}

// TestParseDateText: the reply window's dates read without time.Parse,
// as time.Parse reads them.
func TestParseDateText(t *testing.T) {
	for _, s := range []string{"1900-01-01", "2999-12-31", "2024-02-29", "2026-12-06", "0001-01-01"} {
		want, err := time.Parse(dateText, s)
		got, ok := parseDateText(s)
		if err != nil || !ok || !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("%q: %v %v, want %v %v", s, got, ok, want, err)
		}
	}
	for _, s := range []string{"2026-02-29", "2026-13-01", "2026-00-10", "2026-12-32", "2026/12/06", "2026-12-6", "20261206", "", "2026-12-06 "} {
		if _, ok := parseDateText(s); ok {
			t.Errorf("%q accepted", s)
		}
	}
}
