package sieve

import (
	"fmt"
	"slices"
	"strings"

	"github.com/migadu/go-sieve/interp"
	"github.com/migadu/go-sieve/lexer"
	"github.com/migadu/go-sieve/parser"
)

// loader walks go-sieve's parse tree itself so that our commands and tests
// can sit anywhere in it (go-sieve's command table is private); every node it
// does not own is handed to go-sieve's own loader.
type loader struct {
	lib  *interp.Script
	exts map[string]bool
	slow bool // no fast.go tests: go-sieve's own (for tests)
}

func errAt(p lexer.Position, format string, args ...any) error {
	return fmt.Errorf("line %d: %s", p.Line, fmt.Sprintf(format, args...))
}

func (l *loader) block(pcmds []parser.Cmd) ([]interp.Cmd, error) {
	out := make([]interp.Cmd, 0, len(pcmds))
	prev := ""
	for _, pc := range pcmds {
		id := strings.ToLower(pc.Id)
		// RFC 5228 3.1: elsif and else only follow if or elsif.
		if (id == "elsif" || id == "else") && prev != "if" && prev != "elsif" {
			return nil, errAt(pc.Position, "%s without a preceding if", id)
		}
		prev = id
		c, err := l.cmd(id, pc)
		if err != nil {
			return nil, err
		}
		if c != nil {
			out = append(out, c)
		}
	}
	return out, nil
}

func (l *loader) cmd(id string, pc parser.Cmd) (interp.Cmd, error) {
	switch id {
	case "require":
		return nil, l.require(pc)
	case "if", "elsif", "else":
		return l.control(id, pc)
	case "reject", "ereject":
		return l.reject(id, pc)
	}
	// Test-suite commands exist in go-sieve only for its own tests.
	if id == "test" || strings.HasPrefix(id, "test_") {
		return nil, errAt(pc.Position, "unsupported command: %s", id)
	}
	c, err := interp.LoadCmd(l.lib, pc)
	if err != nil {
		return nil, withLine(pc.Position, err)
	}
	if v, ok := c.(interp.CmdVacation); ok {
		return vacationCmd{inner: v, vars: l.lib.RequiresExtension("variables")}, nil
	}
	return c, nil
}

// withLine adds the command's line to go-sieve errors that carry none.
func withLine(p lexer.Position, err error) error {
	if _, _, ok := lineOf(err.Error()); ok {
		return err
	}
	return errAt(p, "%s", err.Error())
}

func (l *loader) require(pc parser.Cmd) error {
	if len(pc.Args) != 1 || len(pc.Tests) != 0 || pc.Block != nil {
		return errAt(pc.Position, "require takes one string list")
	}
	var names []string
	switch a := pc.Args[0].(type) {
	case parser.StringArg:
		names = []string{a.Value}
	case parser.StringListArg:
		names = a.Value
	default:
		return errAt(pc.Position, "require takes one string list")
	}
	lib := make([]string, 0, len(names))
	for _, n := range names {
		switch {
		case slices.Contains(ownExtensions, n):
			l.exts[n] = true
		case slices.Contains(libraryExtensions, n):
			lib = append(lib, n)
		default:
			return errAt(pc.Position, "unsupported extension %q", n)
		}
	}
	if len(lib) == 0 {
		return nil
	}
	pc.Args = []parser.Arg{parser.StringListArg{Value: lib, Position: pc.Position}}
	_, err := interp.LoadCmd(l.lib, pc)
	if err != nil {
		return withLine(pc.Position, err)
	}
	return nil
}

func (l *loader) control(id string, pc parser.Cmd) (interp.Cmd, error) {
	if len(pc.Args) != 0 {
		return nil, errAt(pc.Position, "%s takes no arguments", id)
	}
	if id == "else" {
		if len(pc.Tests) != 0 {
			return nil, errAt(pc.Position, "else takes no test")
		}
	} else if len(pc.Tests) != 1 {
		return nil, errAt(pc.Position, "%s takes exactly one test", id)
	}
	if pc.Block == nil {
		return nil, errAt(pc.Position, "%s needs a block", id)
	}
	body, err := l.block(pc.Block)
	if err != nil {
		return nil, err
	}
	if id == "else" {
		return interp.CmdElse{Block: body}, nil
	}
	t, err := l.test(pc.Tests[0])
	if err != nil {
		return nil, err
	}
	if id == "if" {
		return interp.CmdIf{Test: t, Block: body}, nil
	}
	return interp.CmdElsif{Test: t, Block: body}, nil
}

func (l *loader) test(pt parser.Test) (interp.Test, error) {
	id := strings.ToLower(pt.Id)
	switch id {
	case "allof", "anyof":
		if len(pt.Args) != 0 || len(pt.Tests) == 0 {
			return nil, errAt(pt.Position, "%s takes a list of tests", id)
		}
		ts := make([]interp.Test, 0, len(pt.Tests))
		for _, sub := range pt.Tests {
			t, err := l.test(sub)
			if err != nil {
				return nil, err
			}
			ts = append(ts, t)
		}
		if id == "allof" {
			return interp.AllOfTest{Tests: ts}, nil
		}
		return interp.AnyOfTest{Tests: ts}, nil
	case "not":
		if len(pt.Args) != 0 || len(pt.Tests) != 1 {
			return nil, errAt(pt.Position, "not takes exactly one test")
		}
		t, err := l.test(pt.Tests[0])
		if err != nil {
			return nil, err
		}
		return interp.NotTest{Test: t}, nil
	case "spamtest":
		return l.spamtest(pt)
	case "header", "address":
		return l.indexed(pt)
	case "envelope":
		if !l.slow {
			return l.loadEnvelope(pt)
		}
	}
	if strings.HasPrefix(id, "test_") {
		return nil, errAt(pt.Position, "unsupported test: %s", id)
	}
	t, err := interp.LoadTest(l.lib, pt)
	if err != nil {
		return nil, withLine(pt.Position, err)
	}
	return t, nil
}

// spamtest [:percent] [COMPARATOR] [MATCH-TYPE] <value: string> (RFC 5235)
// becomes a header test over one synthetic field that Run fills in, so the
// comparison is go-sieve's own.
func (l *loader) spamtest(pt parser.Test) (interp.Test, error) {
	if !l.exts["spamtest"] && !l.exts["spamtestplus"] {
		return nil, errAt(pt.Position, "spamtest needs require \"spamtest\"")
	}
	percent := false
	args := make([]parser.Arg, 0, len(pt.Args)+1)
	for _, a := range pt.Args {
		if t, ok := a.(parser.TagArg); ok && strings.EqualFold(t.Value, "percent") {
			if !l.exts["spamtestplus"] {
				return nil, errAt(pt.Position, ":percent needs require \"spamtestplus\"")
			}
			percent = true
			continue
		}
		args = append(args, a)
	}
	if len(pt.Tests) != 0 || len(args) == 0 || isTag(args[len(args)-1]) ||
		(len(args) >= 2 && needsValue(args[len(args)-2])) {
		return nil, errAt(pt.Position, "spamtest takes one value to compare")
	}
	last := args[len(args)-1]
	args = append(args[:len(args)-1:len(args)-1],
		parser.StringListArg{Value: []string{spamField}, Position: pt.Position}, last)
	inner, err := interp.LoadTest(l.lib, parser.Test{Position: pt.Position, Id: "header", Args: args})
	if err != nil {
		return nil, withLine(pt.Position, err)
	}
	return spamTest{inner: inner, percent: percent}, nil
}

// indexed strips RFC 5260's ":index N [:last]" from header and address tests,
// which go-sieve rejects there, and wraps the rest.
func (l *loader) indexed(pt parser.Test) (interp.Test, error) {
	index, last := 0, false
	args := make([]parser.Arg, 0, len(pt.Args))
	for i := 0; i < len(pt.Args); i++ {
		t, ok := pt.Args[i].(parser.TagArg)
		switch {
		case ok && strings.EqualFold(t.Value, "index"):
			n, isNum := argAt(pt.Args, i+1).(parser.NumberArg)
			if !isNum || n.Value < 1 {
				return nil, errAt(pt.Position, ":index takes a number from 1")
			}
			index = n.Value
			i++
		case ok && strings.EqualFold(t.Value, "last"):
			last = true
		default:
			args = append(args, pt.Args[i])
		}
	}
	if index == 0 && !last {
		return l.plain(pt)
	}
	if !l.lib.RequiresExtension("index") {
		return nil, errAt(pt.Position, ":index needs require \"index\"")
	}
	if index == 0 {
		return nil, errAt(pt.Position, ":last needs :index")
	}
	pt.Args = args
	inner, err := l.plain(pt)
	if err != nil {
		return nil, err
	}
	return indexTest{inner: inner, index: index, last: last}, nil
}

// plain loads a header or address test without :index.
func (l *loader) plain(pt parser.Test) (interp.Test, error) {
	if l.slow {
		return l.libTest(pt)
	}
	if strings.EqualFold(pt.Id, "address") {
		return l.loadAddress(pt)
	}
	return l.headerTest(pt)
}

func (l *loader) reject(id string, pc parser.Cmd) (interp.Cmd, error) {
	if !l.exts[id] {
		return nil, errAt(pc.Position, "%s needs require %q", id, id)
	}
	if len(pc.Tests) != 0 || pc.Block != nil || len(pc.Args) != 1 {
		return nil, errAt(pc.Position, "%s takes one reason string", id)
	}
	var reason string
	switch a := pc.Args[0].(type) {
	case parser.StringArg:
		reason = a.Value
	case parser.StringListArg:
		if len(a.Value) != 1 {
			return nil, errAt(pc.Position, "%s takes one reason string", id)
		}
		reason = a.Value[0]
	default:
		return nil, errAt(pc.Position, "%s takes one reason string", id)
	}
	return rejectCmd{reason: reason, extended: id == "ereject", vars: l.lib.RequiresExtension("variables")}, nil
}

func argAt(args []parser.Arg, i int) parser.Arg {
	if i < len(args) {
		return args[i]
	}
	return nil
}

func isTag(a parser.Arg) bool {
	_, ok := a.(parser.TagArg)
	return ok
}

// needsValue reports tags of the match family that take the next argument.
func needsValue(a parser.Arg) bool {
	t, ok := a.(parser.TagArg)
	if !ok {
		return false
	}
	switch strings.ToLower(t.Value) {
	case "comparator", "value", "count":
		return true
	}
	return false
}
