// Package fts is the word index behind IMAP SEARCH BODY and TEXT
// (docs/search.md): how text becomes index terms, how a SEARCH needle
// becomes a query that finds every body that may contain it, and the
// background indexer that fills the store's index off the delivery path.
//
// The index is only ever a candidate filter: IMAP SEARCH is a substring
// search (RFC 9051 6.4.4), so every candidate is confirmed on its text.
// A query therefore must never leave out a body whose text contains the
// needle; it may return more.
package fts

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxTermLen bounds an index term in bytes (a vocabulary key; PostgreSQL's
// B-tree refuses keys of more than about 2,700). Longer words are indexed by their first MaxTermLen
// bytes, and queries cut their words the same way.
const MaxTermLen = 120

// MaxExpand bounds how many vocabulary terms one partial word may stand
// for in a query; beyond it the word gives no constraint.
const MaxExpand = 256

// Fold is the case folding SEARCH compares with (imapmsg's fold).
func Fold(s string) string { return strings.ToLower(s) }

// isWordRune says which runes make words: letters, digits and combining
// marks. Everything else separates words.
func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.IsMark(r)
}

// cut shortens a term to MaxTermLen bytes at a rune boundary.
func cut(t string) string {
	if len(t) <= MaxTermLen {
		return t
	}
	i := MaxTermLen
	for i > 0 && !utf8.RuneStart(t[i]) {
		i--
	}
	return t[:i]
}

// words splits folded text into its words, in order, with repeats.
func words(text string, fn func(w string)) {
	start := -1
	for i, r := range text {
		if isWordRune(r) {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 {
			fn(text[start:i])
			start = -1
		}
	}
	if start >= 0 {
		fn(text[start:])
	}
}

// Terms returns the distinct index terms of text, which the caller has
// folded (Fold): its words, cut to MaxTermLen.
func Terms(text string) []string {
	seen := make(map[string]struct{})
	var out []string
	words(text, func(w string) {
		w = cut(w)
		if _, ok := seen[w]; !ok {
			seen[w] = struct{}{}
			out = append(out, w)
		}
	})
	return out
}

// TermKind says how a word of a needle must appear in the index.
type TermKind int

const (
	Whole  TermKind = iota // a separator on both sides in the needle: the term itself
	Prefix                 // open on the right: a term starting with it
	Inner                  // open on the left: a term containing it (expanded from the vocabulary)
)

// Term is one word of a needle.
type Term struct {
	Text string
	Kind TermKind
}

// Plan returns the words of needle (folded here) that every text
// containing it must have as terms. ok is false when the needle has no
// word at all (e.g. "@" or ""): the index cannot narrow the search.
//
// A needle found in a text lines up with the text's words: a word of the
// needle with a separator on both sides is a whole word of the text, the
// last word may be the start of a longer one, and the first may be the
// end (or, when it is also the last, the middle) of one.
func Plan(needle string) (terms []Term, ok bool) {
	n := Fold(needle)
	var ws []string
	words(n, func(w string) { ws = append(ws, w) })
	if len(ws) == 0 {
		return nil, false
	}
	first, _ := utf8.DecodeRuneInString(n)
	last, _ := utf8.DecodeLastRuneInString(n)
	openLeft := isWordRune(first)
	openRight := isWordRune(last)
	for i, w := range ws {
		kind := Whole
		switch {
		case i == 0 && openLeft:
			kind = Inner
		case i == len(ws)-1 && openRight:
			kind = Prefix
		}
		// A word longer than MaxTermLen is cut like the text's: a whole
		// or starting word still matches the cut term, and the vocabulary
		// look-up of an inner word includes every cut term.
		terms = append(terms, Term{Text: cut(w), Kind: kind})
	}
	return terms, true
}
