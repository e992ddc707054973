package filter

import (
	"math"
	"strings"
)

// Mailu's (rspamd's default) action levels on its scale.
const (
	RejectScore    = 15.0 // reject: 550 5.7.1
	AddHeaderScore = 6.0  // add header: X-Spam: Yes
	GreylistScore  = 4.0  // greylist: 451 4.7.1
	// MaxStars is sieve_spamtest_max_value in Mailu's Dovecot: the
	// X-Spam-Level length that means 100 %.
	MaxStars = 15
)

// ownSpamHeaders are the fields Petrel writes from the score. Copies that
// arrive with the message are removed first: on port 25 anyone can write
// "X-Spam-Level: ***************", and a user's Sieve script (spamtest)
// or mail client must only ever see ours.
var ownSpamHeaders = []string{"X-Spam", "X-Spam-Level", "X-Spamd-Bar", "X-Spam-Status", "X-Spam-Flag", "X-Virus"}

// spamHeaders are rspamd milter_headers' x-spam-level and x-spamd-bar
// routines as Mailu uses them, plus X-Spam: Yes from the "add header"
// action (rspamd proxy's spam_header):
//   - X-Spam-Level: "*" × floor(score), omitted below 1 (capped at 100
//     stars, as rspamd does not cap but a header must stay sane);
//   - X-Spamd-Bar: "+" × floor(score), "-" × floor(-score) at -1 or
//     less, else "/";
//   - X-Spam: Yes when flagged (score ≥ 6 or rspamd's add header).
func spamHeaders(score float64, flagged bool) []Header {
	var hs []Header
	if flagged {
		hs = append(hs, Header{Name: "X-Spam", Value: "Yes"})
	}
	n := int(math.Floor(score))
	if n >= 1 {
		hs = append(hs, Header{Name: "X-Spam-Level", Value: strings.Repeat("*", min(n, 100))})
	}
	bar := "/"
	switch {
	case score >= 1:
		bar = strings.Repeat("+", min(n, 100))
	case score <= -1:
		bar = strings.Repeat("-", min(int(math.Floor(-score)), 100))
	}
	hs = append(hs, Header{Name: "X-Spamd-Bar", Value: bar})
	return hs
}

// SpamPercent is Mailu's spamtest :percent value for a score:
// floor(score) stars out of 15, as a whole percentage clamped to 0–100
// (Dovecot sieve_spamtest_status_type = strlen).
func SpamPercent(score float64) int {
	n := math.Floor(score)
	if n <= 0 {
		return 0
	}
	if n >= MaxStars {
		return 100
	}
	return int(n * 100 / MaxStars)
}

// IsSpamFor is Mailu's default sieve rule for one user: spamtest :percent
// :value "gt" spam_threshold.
func IsSpamFor(score float64, threshold int) bool {
	return SpamPercent(score) > threshold
}
