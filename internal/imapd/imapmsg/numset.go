package imapmsg

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// NumRange is start:stop of a sequence set; 0 stands for "*" (the largest
// number in use) until Resolve replaces it.
type NumRange struct {
	Start, Stop uint32
}

// NumSet is an RFC 9051 sequence-set of message sequence numbers or UIDs.
type NumSet []NumRange

// ErrNumSet is wrapped by ParseNumSet's errors.
var ErrNumSet = errors.New("invalid sequence set")

// ParseNumSet parses sequence-set (RFC 9051 9): "1:3,5,7:*". "$"
// (RFC 5182 SEARCHRES) is not supported.
func ParseNumSet(s string) (NumSet, error) {
	if s == "" {
		return nil, fmt.Errorf("%w: empty", ErrNumSet)
	}
	var set NumSet
	for _, item := range strings.Split(s, ",") {
		a, b, isRange := strings.Cut(item, ":")
		start, err := parseSeqNumber(a)
		if err != nil {
			return nil, fmt.Errorf("%w: %q", ErrNumSet, item)
		}
		stop := start
		if isRange {
			if stop, err = parseSeqNumber(b); err != nil {
				return nil, fmt.Errorf("%w: %q", ErrNumSet, item)
			}
		}
		set = append(set, NumRange{Start: start, Stop: stop})
	}
	return set, nil
}

// parseSeqNumber parses seq-number: nz-number or "*" (0).
func parseSeqNumber(s string) (uint32, error) {
	if s == "*" {
		return 0, nil
	}
	if s == "" || s[0] == '0' || len(s) > 10 {
		return 0, ErrNumSet
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, ErrNumSet
		}
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, ErrNumSet
	}
	return uint32(n), nil
}

// Resolve replaces "*" with max (RFC 9051 9: "*" is the largest number in
// use; with an empty mailbox nothing is) and orders every range.
func (s NumSet) Resolve(max uint32) NumSet {
	out := make(NumSet, len(s))
	for i, r := range s {
		if r.Start == 0 {
			r.Start = max
		}
		if r.Stop == 0 {
			r.Stop = max
		}
		if r.Start > r.Stop {
			r.Start, r.Stop = r.Stop, r.Start
		}
		out[i] = r
	}
	return out
}

// Contains reports whether n is in the (resolved) set. Ranges still
// holding "*" never match anything but 0.
func (s NumSet) Contains(n uint32) bool {
	for _, r := range s {
		lo, hi := min(r.Start, r.Stop), max(r.Start, r.Stop)
		if n >= lo && n <= hi && n != 0 {
			return true
		}
	}
	return false
}

// String formats the set as sequence-set.
func (s NumSet) String() string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(seqString(r.Start))
		if r.Stop != r.Start {
			b.WriteByte(':')
			b.WriteString(seqString(r.Stop))
		}
	}
	return b.String()
}

func seqString(n uint32) string {
	if n == 0 {
		return "*"
	}
	return strconv.FormatUint(uint64(n), 10)
}

// CompactUIDs formats ascending numbers as a compact sequence set
// ("1:3,7,9:10"), as ESEARCH ALL, VANISHED, COPYUID and APPENDUID want
// them. Numbers not in ascending order are listed one by one in the order
// given (RFC 4315 COPYUID pairs the source and destination sets by
// position).
func CompactUIDs(nums []uint32) string {
	var b strings.Builder
	for i := 0; i < len(nums); {
		j := i
		for j+1 < len(nums) && nums[j+1] == nums[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(uint64(nums[i]), 10))
		if j > i {
			b.WriteByte(':')
			b.WriteString(strconv.FormatUint(uint64(nums[j]), 10))
		}
		i = j + 1
	}
	return b.String()
}
