// Package filter gives the verdict on an inbound message (port 25 and
// RELAYNETS): rspamd, clamd, forbidden attachments, greylisting, the
// built-in score and the per-user classifier. It returns one Verdict that
// smtpd and inbound act on; it never delivers or replies itself.
//
// The types in this file are the contract between the SMTP side (which
// fills Message from the session and msgauth's results) and the checks.
package filter

import (
	"io"
	"net/netip"
)

// AuthSummary is what msgauth found, in RFC 8601 result words
// ("pass", "fail", "softfail", "neutral", "none", "temperror", "permerror").
type AuthSummary struct {
	SPF             string   // for MAIL FROM (HELO when the sender is null)
	DKIMPassDomains []string // d= of every signature that verified
	DMARC           string
	DMARCPolicy     string // the policy that applied: "none", "quarantine", "reject" ("" without a record)
	FromDomain      string // RFC5322.From domain
	IPRev           string
}

// Message is one inbound message as the checks see it.
type Message struct {
	ID       string // Petrel message id, for logs
	RemoteIP netip.Addr
	HeloName string
	MailFrom string   // normalised reverse-path; "" is the null sender
	Rcpts    []string // accepted local recipients (full addresses)
	// Users are the local mailboxes (user emails) that get a copy, after
	// aliases; the built-in classifier scores the message for each of
	// them. Empty: Rcpts is used.
	Users []string
	Auth  AuthSummary
	// Trusted: the client is in RELAYNETS (Mailu: rspamd local_networks),
	// so greylisting and DNSBLs do not apply to it.
	Trusted bool
	Size    int64
	// Open returns the message as it will be stored (headers and body).
	// It may be called more than once; each reader starts at the top.
	Open func() (io.ReadCloser, error)
}

// Action is what to do with the message as a whole.
type Action int

const (
	Accept   Action = iota // deliver; Score decides Junk per user
	TempFail               // 451 4.7.1: greylisting, scanner unreachable (Mailu: milter_default_action = tempfail)
	Reject                 // 5xx: spam score over the reject level, virus, forbidden attachment
)

// Header is one header field to add to the stored message.
type Header struct{ Name, Value string }

// Verdict is the outcome of all checks. Reply fields are set for TempFail
// and Reject (e.g. 451 "4.7.1", 550 "5.7.1", 554 "5.7.1").
type Verdict struct {
	Action   Action
	Code     int
	Enhanced string
	Text     string // short, for the client
	Reason   string // detail, for the log

	// Score is on rspamd's scale (Mailu rejects at 15); Scored is false
	// when no scanner produced a score.
	Score  float64
	Scored bool
	Virus  string
	// UserScores is the score for each user (Message.Users) whose own
	// classifier is trained: Score plus that classifier's opinion. A user
	// not listed gets Score. nil with rspamd (it learns globally).
	UserScores map[string]float64

	AddHeaders    []Header // X-Spam, X-Spam-Level, X-Spamd-Bar, and what rspamd asks for
	RemoveHeaders []string // header names rspamd asks to remove
}
