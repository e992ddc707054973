package sieve

import (
	"context"
	"errors"
	"regexp"
	"strconv"
	"strings"

	"github.com/migadu/go-sieve/interp"
)

// spamField is the synthetic header a spamtest reads; it exists only inside
// a spamtest's check, never in the message.
const spamField = "X-Petrel-Spamtest"

// spamTest is RFC 5235's spamtest: a header test over spamField.
type spamTest struct {
	inner   interp.Test
	percent bool
}

func (t spamTest) Check(ctx context.Context, d *interp.RuntimeData) (bool, error) {
	st := stateFrom(ctx)
	v := st.spam.value(t.percent)
	orig, edits := d.Msg, d.HeaderEdits
	d.Msg, d.HeaderEdits = fieldView{Message: orig, name: spamField, value: v}, nil
	defer func() { d.Msg, d.HeaderEdits = orig, edits }()
	return t.inner.Check(ctx, d)
}

// fieldView answers one header field and nothing else.
type fieldView struct {
	interp.Message
	name, value string
}

func (v fieldView) HeaderGet(key string) ([]string, error) {
	if strings.EqualFold(key, v.name) {
		return []string{v.value}, nil
	}
	return nil, nil
}

// Spam is what spamtest reports. Tested false means nobody scored the
// message: spamtest then yields "0" (RFC 5235 3.1). Percent is Mailu's
// scale: Dovecot's strlen of X-Spam-Level over sieve_spamtest_max_value
// 15, which the host computes from the score (filter.SpamPercent).
type Spam struct {
	Tested  bool
	Percent int // 0..100
}

// value is the spamtest string: "0" untested, else 1..10 (RFC 5235 3.1:
// 1 means not spam, 10 definitely spam), or 0..100 with :percent (3.2).
func (s Spam) value(percent bool) string {
	switch {
	case !s.Tested:
		return "0"
	case percent:
		return strconv.Itoa(s.Percent)
	}
	return strconv.Itoa(1 + s.Percent*9/100)
}

// indexTest is a header or address test restricted to one occurrence of
// each named field: :index N counts from the top, with :last from the
// bottom (RFC 5260 4). Edits made by editheader count, as they do for
// go-sieve's own tests.
type indexTest struct {
	inner interp.Test
	index int
	last  bool
}

func (t indexTest) Check(ctx context.Context, d *interp.RuntimeData) (bool, error) {
	orig, edits := d.Msg, d.HeaderEdits
	snap := &interp.RuntimeData{Msg: orig, HeaderEdits: edits}
	d.Msg, d.HeaderEdits = indexView{Message: orig, snap: snap, index: t.index, last: t.last}, nil
	defer func() { d.Msg, d.HeaderEdits = orig, edits }()
	return t.inner.Check(ctx, d)
}

type indexView struct {
	interp.Message
	snap  *interp.RuntimeData
	index int
	last  bool
}

func (v indexView) HeaderGet(key string) ([]string, error) {
	vals, err := interp.GetHeaderWithEdits(v.snap, key)
	if err != nil {
		return nil, err
	}
	i := v.index - 1
	if v.last {
		i = len(vals) - v.index
	}
	if i < 0 || i >= len(vals) {
		return nil, nil
	}
	return vals[i : i+1], nil
}

// rejectCmd is RFC 5429's reject and ereject.
type rejectCmd struct {
	reason   string
	extended bool
	vars     bool
}

func (c rejectCmd) Execute(ctx context.Context, d *interp.RuntimeData) error {
	st := stateFrom(ctx)
	// RFC 5429 2.1: more than one reject in a run is an error.
	if st.reject != nil {
		return errors.New("reject used twice")
	}
	reason := c.reason
	if c.vars {
		var err error
		if reason, err = expandVars(d, reason); err != nil {
			return err
		}
	}
	st.reject = &Reject{Reason: reason, Extended: c.extended}
	d.ImplicitKeep = false
	return nil
}

// vacationCmd wraps go-sieve's vacation: it keeps the :addresses the host
// needs for RFC 5230 4.5, and stays silent for the null sender (4.5) where
// go-sieve would fail the whole script.
type vacationCmd struct {
	inner interp.CmdVacation
	vars  bool
}

func (c vacationCmd) Execute(ctx context.Context, d *interp.RuntimeData) error {
	if d.Envelope.EnvelopeFrom() == "" {
		return nil
	}
	if err := c.inner.Execute(ctx, d); err != nil {
		return err
	}
	st := stateFrom(ctx)
	st.vacationDefaultSubject = c.inner.Subject == ""
	st.vacationAddrs = st.vacationAddrs[:0]
	for _, a := range c.inner.Addresses {
		if c.vars {
			var err error
			if a, err = expandVars(d, a); err != nil {
				return err
			}
		}
		st.vacationAddrs = append(st.vacationAddrs, a)
	}
	return nil
}

// variableRef is RFC 5229 3's variable-ref, as go-sieve spells it.
var variableRef = regexp.MustCompile(`\${(?:[a-zA-Z_][a-zA-Z0-9_]*\.(?:(?:[a-zA-Z_][a-zA-Z0-9_]*|[0-9]+)\.)*)?(?:[a-zA-Z_][a-zA-Z0-9_]*|[0-9]+)}`)

// expandVars substitutes variables in our own commands' strings (go-sieve's
// expansion is private).
func expandVars(d *interp.RuntimeData, s string) (string, error) {
	var firstErr error
	out := variableRef.ReplaceAllStringFunc(s, func(m string) string {
		name := m[2 : len(m)-1]
		if n, err := strconv.Atoi(name); err == nil && n >= 0 {
			return d.MatchVariable(n)
		}
		v, err := d.Var(name)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		return v
	})
	return out, firstErr
}

// runState carries one run's extension state to our commands and tests.
type runState struct {
	spam          Spam
	reject        *Reject
	vacationAddrs []string
	// vacationDefaultSubject: no :subject, go-sieve put in its own default.
	vacationDefaultSubject bool
	// addrCache holds the parsed addresses of fields address tests
	// read, valid while the number of header edits is addrEdits.
	addrCache map[string][]address
	addrEdits int
}

type stateKey struct{}

func stateFrom(ctx context.Context) *runState {
	if st, ok := ctx.Value(stateKey{}).(*runState); ok {
		return st
	}
	return &runState{}
}
