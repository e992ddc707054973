package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Rate units as the Python limits library defines them (limits/limits.py
// TIME_TYPES): a month is 30 days and a year 12 such months.
const (
	day   = 24 * time.Hour
	month = 30 * day
	year  = 12 * month
)

func rateUnit(name string) (time.Duration, bool) {
	switch strings.TrimSuffix(name, "s") {
	case "second":
		return time.Second, true
	case "minute":
		return time.Minute, true
	case "hour":
		return time.Hour, true
	case "day":
		return day, true
	case "month":
		return month, true
	case "year":
		return year, true
	}
	return 0, false
}

// maxRatePer keeps Count/Per within time.Duration.
const maxRatePer = 100 * year

// ParseRate parses one rate in the syntax of Mailu's limits library
// (limits/util.py EXPR): "5/hour", "200/day", "10 per minute",
// "1 per 2 hours", "1/2hours"; units second, minute, hour, day, month
// (30 days) and year (360 days), singular or plural, any case. Several
// rates joined by "," ";" or "|" are not accepted here (see Parse).
func ParseRate(s string) (Rate, error) {
	in := strings.ToLower(strings.TrimSpace(s))
	count, rest := leadingDigits(in)
	if count == "" {
		return Rate{}, fmt.Errorf("%q does not start with a number", s)
	}
	rest = strings.TrimLeft(rest, " \t")
	switch {
	case strings.HasPrefix(rest, "/"):
		rest = rest[1:]
	case strings.HasPrefix(rest, "per"):
		rest = rest[3:]
	default:
		return Rate{}, fmt.Errorf("%q: expected \"/\" or \"per\" after the number", s)
	}
	rest = strings.TrimLeft(rest, " \t")
	mult, rest := leadingDigits(rest)
	unitName := strings.TrimSpace(rest)
	unit, ok := rateUnit(unitName)
	if !ok {
		return Rate{}, fmt.Errorf("%q: unknown time unit %q (use second, minute, hour, day, month or year)", s, unitName)
	}
	n, err := strconv.Atoi(count)
	if err != nil || n < 1 {
		return Rate{}, fmt.Errorf("%q: the count must be a whole number of at least 1", s)
	}
	m := 1
	if mult != "" {
		m, err = strconv.Atoi(mult)
		if err != nil || m < 1 {
			return Rate{}, fmt.Errorf("%q: the period multiplier must be a whole number of at least 1", s)
		}
	}
	if time.Duration(m) > maxRatePer/unit {
		return Rate{}, fmt.Errorf("%q: the period is longer than 100 years", s)
	}
	return Rate{Count: n, Per: time.Duration(m) * unit}, nil
}

func leadingDigits(s string) (digits, rest string) {
	i := 0
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	return s[:i], s[i:]
}

// String writes the rate in the syntax ParseRate reads: "5/hour" or
// "1 per 2 hours".
func (r Rate) String() string {
	units := []struct {
		d    time.Duration
		name string
	}{{year, "year"}, {month, "month"}, {day, "day"}, {time.Hour, "hour"}, {time.Minute, "minute"}, {time.Second, "second"}}
	for _, u := range units {
		if r.Per > 0 && r.Per%u.d == 0 {
			if m := r.Per / u.d; m != 1 {
				return fmt.Sprintf("%d per %d %ss", r.Count, m, u.name)
			}
			return fmt.Sprintf("%d/%s", r.Count, u.name)
		}
	}
	return fmt.Sprintf("%d per %s", r.Count, r.Per)
}

// splitRates splits a limits "rate string" into its parts
// (limits/util.py SEPARATORS: , ; |).
func splitRates(s string) []string {
	var out []string
	for _, p := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ';' || r == '|' }) {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
