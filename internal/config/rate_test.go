package config

import (
	"strings"
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    Rate
		wantErr string
	}{
		{in: "5/hour", want: Rate{5, time.Hour}},
		{in: "200/day", want: Rate{200, 24 * time.Hour}},
		{in: "50/day", want: Rate{50, 24 * time.Hour}},
		{in: "10 per minute", want: Rate{10, time.Minute}},
		{in: "5/second", want: Rate{5, time.Second}},
		{in: "5/seconds", want: Rate{5, time.Second}},
		{in: "1/2hours", want: Rate{1, 2 * time.Hour}},
		{in: "1 per 2 hours", want: Rate{1, 2 * time.Hour}},
		{in: "1 / 2 hours", want: Rate{1, 2 * time.Hour}},
		{in: "3per day", want: Rate{3, 24 * time.Hour}},
		{in: "  7/HOUR  ", want: Rate{7, time.Hour}},
		{in: "1/month", want: Rate{1, 30 * 24 * time.Hour}},
		{in: "1/year", want: Rate{1, 360 * 24 * time.Hour}},
		{in: "1000/minute", want: Rate{1000, time.Minute}},
		{in: "", wantErr: "does not start with a number"},
		{in: "hour", wantErr: "does not start with a number"},
		{in: "5", wantErr: `expected "/" or "per"`},
		{in: "5 hour", wantErr: `expected "/" or "per"`},
		{in: "5/fortnight", wantErr: `unknown time unit "fortnight"`},
		{in: "5/", wantErr: `unknown time unit ""`},
		{in: "5/2", wantErr: `unknown time unit ""`},
		{in: "0/hour", wantErr: "at least 1"},
		{in: "-1/hour", wantErr: "does not start with a number"},
		{in: "1/0 hours", wantErr: "multiplier"},
		{in: "99999999999999999999/hour", wantErr: "count"},
		{in: "1/101 years", wantErr: "longer than 100 years"},
		{in: "1/hour;2/day", wantErr: "unknown time unit"},
	}
	for _, tt := range tests {
		got, err := ParseRate(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseRate(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestRateString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		r    Rate
		want string
	}{
		{Rate{5, time.Hour}, "5/hour"},
		{Rate{200, 24 * time.Hour}, "200/day"},
		{Rate{1, 2 * time.Hour}, "1 per 2 hours"},
		{Rate{3, 90 * time.Second}, "3 per 90 seconds"},
		{Rate{1, 360 * 24 * time.Hour}, "1/year"},
		{Rate{1, 60 * 24 * time.Hour}, "1 per 2 months"},
		{Rate{1, 1500 * time.Millisecond}, "1 per 1.5s"},
	}
	for _, tt := range tests {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("%#v.String() = %q; want %q", tt.r, got, tt.want)
		}
	}
}

func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"5/hour", "10 per minute", "1 per 2 hours", "1/2hours", "0/day", "5/fortnight", "9/99years"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRate(s)
		if err != nil {
			return
		}
		if r.Count < 1 || r.Per < time.Second || r.Per > maxRatePer {
			t.Fatalf("ParseRate(%q) = %#v", s, r)
		}
		again, err := ParseRate(r.String())
		if err != nil || again != r {
			t.Fatalf("ParseRate(%q) = %#v; re-parse of %q = %#v, %v", s, r, r.String(), again, err)
		}
	})
}
