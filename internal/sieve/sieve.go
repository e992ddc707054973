// Package sieve compiles and runs users' Sieve scripts (RFC 5228) over
// github.com/migadu/go-sieve. It knows no store and no delivery: Run returns
// the actions a script asked for, and internal/inbound carries them out.
//
// What go-sieve v1.1.2 lacks and this package adds on top of it (load.go,
// ext.go), without forking it:
//   - spamtest and spamtestplus (RFC 5235): rewritten to a header test over a
//     value the host supplies, so every comparator and match type works;
//   - reject and ereject (RFC 5429): our own command, an action in Result;
//   - :index and :last on header and address tests (RFC 5260 section 4;
//     go-sieve has them only on date);
//   - line numbers on errors go-sieve reports without one (unknown
//     extension in require), and the if/elsif/else order check;
//   - recovery from go-sieve panics (a bad variable reference panics there),
//     turned into a runtime error so the message is kept.
package sieve

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	gosieve "github.com/migadu/go-sieve"
	"github.com/migadu/go-sieve/interp"
	"github.com/migadu/go-sieve/lexer"
	"github.com/migadu/go-sieve/parser"
)

// libraryExtensions are the go-sieve extensions we enable; it does the work.
var libraryExtensions = []string{
	"fileinto", "envelope", "encoded-character",
	"comparator-i;octet", "comparator-i;ascii-casemap",
	"comparator-i;ascii-numeric", "comparator-i;unicode-casemap",
	"imap4flags", "variables", "relational", "vacation", "copy", "regex",
	"date", "index", "editheader", "mailbox", "subaddress", "body",
}

// ownExtensions are implemented in this package (ext.go).
var ownExtensions = []string{"reject", "ereject", "spamtest", "spamtestplus"}

// MaxScriptSize bounds what Check and Compile accept; ManageSieve may set a
// smaller MAXSIZE of its own.
const MaxScriptSize = 1 << 20

// Extensions is the SIEVE capability list (RFC 5804 1.7): every extension a
// script may require here, comparators included, in a stable order.
func Extensions() []string {
	out := make([]string, 0, len(libraryExtensions)+len(ownExtensions))
	out = append(out, libraryExtensions...)
	out = append(out, ownExtensions...)
	slices.Sort(out)
	return out
}

// Check parses and loads script against the supported extensions. The error
// reads "line N: problem" whenever the position is known.
func Check(script []byte) error {
	_, err := Compile(script)
	return err
}

// Script is a compiled script, safe for concurrent Run calls.
type Script struct {
	lib  *interp.Script
	cmds []interp.Cmd
	exts map[string]bool // our own extensions the script required
}

// Compile parses and loads a script once; callers cache the result.
func Compile(script []byte) (*Script, error) { return compile(script, true) }

// compile is Compile; fast false leaves every test to go-sieve (the
// tests compare both).
func compile(script []byte, fast bool) (*Script, error) {
	if len(script) > MaxScriptSize {
		return nil, fmt.Errorf("script is larger than %d bytes", MaxScriptSize)
	}
	opts := options()
	toks, err := lexer.Lex(bytes.NewReader(script), &opts.Lexer)
	if err != nil {
		return nil, describe(err)
	}
	stream := lexer.NewStream(toks)
	pcmds, err := parser.Parse(stream, &opts.Parser)
	if err == nil && stream.Last() != nil {
		// go-sieve stops quietly at a "}" with no block open; the rest
		// of the script would be ignored.
		line, _ := stream.Last().LineCol()
		return nil, fmt.Errorf("line %d: unexpected \"}\"", line)
	}
	if err != nil {
		if _, _, ok := lineOf(err.Error()); !ok && len(toks) > 0 {
			// go-sieve has no position once the tokens ran out.
			line, _ := toks[len(toks)-1].LineCol()
			err = fmt.Errorf("line %d: %w at the end of the script", line, err)
		}
		return nil, describe(err)
	}
	// An empty library script carries options and the required extensions;
	// the commands themselves are loaded by our loader (load.go).
	lib, err := interp.LoadScript(nil, &opts.Interp, libraryExtensions)
	if err != nil {
		return nil, describe(err)
	}
	l := &loader{lib: lib, exts: map[string]bool{}, slow: !fast}
	cmds, err := l.block(pcmds)
	if err != nil {
		return nil, describe(err)
	}
	return &Script{lib: lib, cmds: cmds, exts: l.exts}, nil
}

func options() gosieve.Options {
	o := gosieve.DefaultOptions()
	o.Lexer.MaxTokens = 100_000 // a 200-rule script is about 3,000 tokens
	o.Interp.MaxRedirects = MaxRedirects
	o.EnabledExtensions = libraryExtensions
	return o
}

// describe turns go-sieve's "L:C: text" into "line L: text" for users and
// drops its internal function names.
func describe(err error) error {
	msg := err.Error()
	if line, text, ok := lineOf(msg); ok {
		msg = fmt.Sprintf("line %d: %s", line, text)
	}
	for _, p := range []string{"LoadSpec: ", "LoadBlock: ", "LoadTest: ", "loadRequire: "} {
		msg = strings.Replace(msg, p, "", 1)
	}
	msg = missingRequire.ReplaceAllString(msg, `missing require "$1"`)
	msg = argRequired.ReplaceAllString(msg, "argument $1 is missing")
	return errors.New(msg)
}

// go-sieve's wording, made readable.
var (
	missingRequire = regexp.MustCompile(`missing require '([^' ]+)'?`)
	argRequired    = regexp.MustCompile(`\b(\d+) argument is required`)
)

// lineOf splits "L:C: text" or "line L: text".
func lineOf(msg string) (line int, text string, ok bool) {
	var col int
	if n, _ := fmt.Sscanf(msg, "%d:%d:", &line, &col); n == 2 {
		_, rest, _ := strings.Cut(msg, ":")
		_, rest, _ = strings.Cut(rest, ":")
		return line, strings.TrimSpace(rest), true
	}
	if n, _ := fmt.Sscanf(msg, "line %d:", &line); n == 1 {
		_, rest, _ := strings.Cut(msg, ":")
		return line, strings.TrimSpace(rest), true
	}
	return 0, "", false
}
