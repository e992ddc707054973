package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// runScaling is -mode scaling (bench/scaling.sh): on a mailbox filled by
// -mode fill, one row per operation, each timed alone on one connection
// (login not timed), with a second connection selected in the same
// mailbox whose NOOP after each EXPUNGE times another session's view
// update. The operations, in order:
//
//	select, fetch_flags (UID FETCH 1:* (UID FLAGS)),
//	search_subject/from/msgid (UID SEARCH SUBJECT, FROM, HEADER
//	Message-ID), the first ("cold") and again ("warm"),
//	store (UID STORE 1:* +FLAGS.SILENT (\Flagged)),
//	expunge_small (-exp1 messages: UID STORE \Deleted, then EXPUNGE,
//	timed alone), other_small (the other session's NOOP), expunge_large
//	(-exp2 messages) and other_large.
func runScaling(ctx context.Context, d *dialer, o options, out io.Writer) error {
	c, err := d.dial(ctx)
	if err != nil {
		return err
	}
	defer c.close()
	other, err := d.dial(ctx)
	if err != nil {
		return err
	}
	defer other.close()
	for _, x := range []*conn{c, other} {
		x.setDeadline(o.timeout)
		if err := x.login(o.user, o.pass); err != nil {
			return err
		}
	}
	var uids []int64
	exists := -1
	step := func(x *conn, name, cmd string, count func(untagged) int) error {
		x.setDeadline(o.timeout)
		n := 0
		cpu0 := cpuSeconds()
		t0 := time.Now()
		b, err := x.cmd(cmd, func(u untagged) {
			if count != nil {
				n += count(u)
			} else {
				n++
			}
		})
		el := time.Since(t0)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		row{mode: "scaling", step: name, conc: 1, rep: 1, n: n, seconds: el.Seconds(),
			lat: []time.Duration{el}, bytes: b, cpu: cpuSeconds() - cpu0}.write(out)
		return nil
	}
	one := func(untagged) int { return 1 }
	if err := step(c, "select", "SELECT "+quote(o.mailbox), func(u untagged) int {
		if v, ok := parseExists(u.line); ok {
			exists = v
		}
		return 0
	}); err != nil {
		return err
	}
	if o.expect > 0 && exists != o.expect {
		return fmt.Errorf("SELECT: %d messages, want %d", exists, o.expect)
	}
	if _, err := other.cmd("SELECT "+quote(o.mailbox), nil); err != nil {
		return err
	}
	if err := step(c, "fetch_flags", "UID FETCH 1:* (UID FLAGS)", func(u untagged) int {
		if v, ok := parseFetchUID(u.line); ok {
			uids = append(uids, v)
		}
		return 1
	}); err != nil {
		return err
	}
	found := func(u untagged) int { return searchCount(u.line) }
	searches := []struct{ name, cmd string }{
		{"search_subject", `UID SEARCH SUBJECT "topic 7"`},
		{"search_from", `UID SEARCH FROM "sender 13"`},
		{"search_msgid", `UID SEARCH HEADER Message-ID ".4242@example.org"`},
	}
	for _, temp := range []string{"_cold", "_warm"} {
		for _, s := range searches {
			if err := step(c, s.name+temp, s.cmd, found); err != nil {
				return err
			}
		}
	}
	if err := step(c, "store", `UID STORE 1:* +FLAGS.SILENT (\Flagged)`, one); err != nil {
		return err
	}
	_, _ = other.cmd("NOOP", nil) // the other session learns of the STORE, untimed
	expunge := func(name string, k int) error {
		if k <= 0 || len(uids) <= k {
			return nil
		}
		set := strconv.FormatInt(uids[0], 10) + ":" + strconv.FormatInt(uids[k-1], 10)
		uids = uids[k:]
		c.setDeadline(o.timeout)
		if _, err := c.cmd(`UID STORE `+set+` +FLAGS.SILENT (\Deleted)`, nil); err != nil {
			return err
		}
		_, _ = other.cmd("NOOP", nil) // flag changes reported apart from the expunges
		if err := step(c, "expunge_"+name, "EXPUNGE", one); err != nil {
			return err
		}
		return step(other, "other_"+name, "NOOP", one)
	}
	if err := expunge("small", o.exp1); err != nil {
		return err
	}
	if err := expunge("large", o.exp2); err != nil {
		return err
	}
	_ = other.logout()
	return c.logout()
}

// runMaildir is -mode maildir: writes -n messages (the generator of
// -mode fill) as files in -dir/cur, as a Maildir that Dovecot indexes at
// its first SELECT. Filling Dovecot over IMAP slows down as the Maildir
// grows (every APPEND re-reads its new/ directory: some 12/s at 20,000
// messages on the test machine), so 100,000 messages go in this way.
func runMaildir(o options, out io.Writer) error {
	cur := filepath.Join(o.dir, "cur")
	for _, d := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(o.dir, d), 0o700); err != nil {
			return err
		}
	}
	t0 := time.Now()
	base := t0.Unix() - int64(o.n)
	var total int64
	for i := 0; i < o.n; i++ {
		msg := message(i, o.size, "maildir", o.user)
		name := fmt.Sprintf("%d.M%dP%d.bench,S=%d:2,", base+int64(i), i, os.Getpid(), len(msg))
		if err := os.WriteFile(filepath.Join(cur, name), msg, 0o600); err != nil {
			return err
		}
		total += int64(len(msg))
	}
	el := time.Since(t0)
	row{mode: "maildir", step: "write", conc: 1, rep: 1, n: o.n, seconds: el.Seconds(),
		lat: []time.Duration{el}, bytes: total}.write(out)
	return nil
}

// runMbox is -mode mbox: -mode fill's messages as one mbox file (LF line
// ends, a "From " separator line each), the source imaptest's stress mode
// APPENDs from (its mbox= setting). No server.
func runMbox(o options, out io.Writer) error {
	t0 := time.Now()
	var b bytes.Buffer
	for i := 0; i < o.n; i++ {
		msg := bytes.ReplaceAll(message(i, o.size, "mbox", o.user), []byte("\r\n"), []byte("\n"))
		fmt.Fprintf(&b, "From sender%d@example.org %s\n", i%97,
			time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i)*time.Minute).Format("Mon Jan _2 15:04:05 2006"))
		b.Write(msg)
		b.WriteString("\n")
	}
	if err := os.WriteFile(o.dir, b.Bytes(), 0o644); err != nil {
		return err
	}
	el := time.Since(t0)
	row{mode: "mbox", step: "write", conc: 1, rep: 1, n: o.n, seconds: el.Seconds(),
		lat: []time.Duration{el}, bytes: int64(b.Len())}.write(out)
	return nil
}

// runIndex is -mode index: SELECT and UID FETCH 1:* (UID FLAGS), untimed,
// so that Dovecot builds its index of a Maildir written by -mode maildir
// (as APPENDs would have).
func runIndex(ctx context.Context, d *dialer, o options) error {
	c, err := d.dial(ctx)
	if err != nil {
		return err
	}
	defer c.close()
	c.setDeadline(o.timeout)
	if err := c.login(o.user, o.pass); err != nil {
		return err
	}
	if _, err := c.cmd("SELECT "+quote(o.mailbox), nil); err != nil {
		return err
	}
	if _, err := c.cmd("UID FETCH 1:* (UID FLAGS)", nil); err != nil {
		return err
	}
	return c.logout()
}
