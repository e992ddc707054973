package sieve

// MaxRedirects bounds redirect actions per message (RFC 5228 10: limit
// the number of redirects a script may do); one more is a runtime error.
const MaxRedirects = 5

// Reject is a reject or ereject action (RFC 5429).
type Reject struct {
	Reason   string
	Extended bool // ereject: refuse at SMTP time where possible
}
