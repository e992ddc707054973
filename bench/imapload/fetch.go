package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// headerFields is what a desktop client's first sync asks for (after
// Thunderbird's default header list).
const headerFields = "UID FETCH 1:* (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (FROM TO CC SUBJECT DATE MESSAGE-ID REFERENCES IN-REPLY-TO CONTENT-TYPE)])"

// fetchStep is one timed command of the fetch suite.
type fetchStep struct {
	name    string
	command string
}

var fetchSteps = []fetchStep{
	{"select", ""}, // SELECT <mailbox>, filled in by runFetch
	{"uid_flags", "UID FETCH 1:* (UID FLAGS)"},
	{"envelope", "FETCH 1:* (ENVELOPE)"},
	{"headers", headerFields},
	{"search_unseen", "UID SEARCH UNSEEN"},
	{"search_subject", `UID SEARCH SUBJECT "topic 7"`},
}

func runFetch(ctx context.Context, d *dialer, o options, out io.Writer) error {
	for rep := 1; rep <= o.reps; rep++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fetchOnce(ctx, d, o, rep, out); err != nil {
			return fmt.Errorf("fetch rep %d: %w", rep, err)
		}
	}
	return nil
}

// fetchOnce runs the suite on a fresh connection (its login is not timed).
func fetchOnce(ctx context.Context, d *dialer, o options, rep int, out io.Writer) error {
	c, err := d.dial(ctx)
	if err != nil {
		return err
	}
	defer c.close()
	c.setDeadline(o.timeout)
	if err := c.login(o.user, o.pass); err != nil {
		return err
	}
	var (
		exists = -1
		uids   []int64
	)
	for _, st := range fetchSteps {
		cmd := st.command
		if st.name == "select" {
			cmd = "SELECT " + quote(o.mailbox)
		}
		n := 0
		fn := func(u untagged) {
			n++
			switch st.name {
			case "select":
				if v, ok := parseExists(u.line); ok {
					exists = v
				}
			case "uid_flags":
				if v, ok := parseFetchUID(u.line); ok {
					uids = append(uids, v)
				}
			case "search_unseen", "search_subject":
				n += searchCount(u.line) - 1
			}
		}
		c.setDeadline(o.timeout)
		cpu0 := cpuSeconds()
		t0 := time.Now()
		b, err := c.cmd(cmd, fn)
		el := time.Since(t0)
		if err != nil {
			return err
		}
		if st.name == "select" && o.expect > 0 && exists != o.expect {
			return fmt.Errorf("SELECT: %d messages, want %d", exists, o.expect)
		}
		if st.name == "select" {
			n = exists
		}
		row{mode: "fetch", step: st.name, conc: 1, rep: rep, n: n, seconds: el.Seconds(),
			lat: []time.Duration{el}, bytes: b, cpu: cpuSeconds() - cpu0}.write(out)
	}
	if len(uids) == 0 || o.bodies <= 0 {
		return c.logout()
	}
	// BODY.PEEK[] of messages spread over the mailbox, one command each,
	// as a reader opening messages does.
	pick := spread(uids, o.bodies)
	lat := make([]time.Duration, 0, len(pick))
	var total int64
	cpu0 := cpuSeconds()
	t0 := time.Now()
	for _, u := range pick {
		s := time.Now()
		b, err := c.cmd("UID FETCH "+strconv.FormatInt(u, 10)+" BODY.PEEK[]", nil)
		if err != nil {
			return err
		}
		lat = append(lat, time.Since(s))
		total += b
	}
	row{mode: "fetch", step: "bodies", conc: 1, rep: rep, n: len(pick), seconds: time.Since(t0).Seconds(),
		lat: lat, bytes: total, cpu: cpuSeconds() - cpu0}.write(out)
	return c.logout()
}

// spread picks n of uids evenly spaced (all of them if there are fewer).
func spread(uids []int64, n int) []int64 {
	if len(uids) <= n {
		return uids
	}
	out := make([]int64, 0, n)
	for i := 0; i < n; i++ {
		out = append(out, uids[i*len(uids)/n])
	}
	return out
}

// parseExists reads "* N EXISTS".
func parseExists(line []byte) (int, bool) {
	f := bytes.Fields(line)
	if len(f) != 3 || string(f[0]) != "*" || !strings.EqualFold(string(f[2]), "EXISTS") {
		return 0, false
	}
	v, err := strconv.Atoi(string(f[1]))
	return v, err == nil && v >= 0
}

// parseFetchUID finds the UID item of "* N FETCH (... UID 123 ...)".
func parseFetchUID(line []byte) (int64, bool) {
	i := bytes.Index(line, []byte(" FETCH ("))
	if i < 0 {
		return 0, false
	}
	rest := line[i+len(" FETCH ("):]
	for len(rest) > 0 {
		j := bytes.Index(rest, []byte("UID "))
		if j < 0 {
			return 0, false
		}
		if j == 0 || rest[j-1] == ' ' || rest[j-1] == '(' {
			num := rest[j+4:]
			k := 0
			for k < len(num) && num[k] >= '0' && num[k] <= '9' {
				k++
			}
			if k == 0 || k > 10 {
				return 0, false
			}
			v, err := strconv.ParseInt(string(num[:k]), 10, 64)
			return v, err == nil && v > 0
		}
		rest = rest[j+4:]
	}
	return 0, false
}

// searchCount is how many numbers "* SEARCH 1 2 3" holds; any other
// response counts as 1.
func searchCount(line []byte) int {
	f := bytes.Fields(line)
	if len(f) < 2 || string(f[0]) != "*" || !strings.EqualFold(string(f[1]), "SEARCH") {
		return 1
	}
	return len(f) - 2
}

// message builds message number i of about size bytes: distinct headers
// (the search and header fetches have something to read) and a text body.
func message(i, size int, nonce, to string) []byte {
	var b bytes.Buffer
	b.Grow(size + 128)
	fmt.Fprintf(&b, "From: \"Sender %d\" <sender%d@example.org>\r\n", i%97, i%97)
	fmt.Fprintf(&b, "To: <%s>\r\n", to)
	fmt.Fprintf(&b, "Subject: Bench message %d about topic %d\r\n", i, i%50)
	fmt.Fprintf(&b, "Date: %s\r\n", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i)*time.Minute).Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <bench.%s.%d@example.org>\r\n", nonce, i)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n")
	const line = "The quick brown fox jumps over the lazy dog while the mail server counts.\r\n"
	for b.Len()+len(line) <= size {
		b.WriteString(line)
	}
	for b.Len() < size-2 {
		b.WriteByte('x')
	}
	b.WriteString("\r\n")
	return b.Bytes()
}
