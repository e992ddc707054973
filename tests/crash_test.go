package tests

// The crash kit (issue 6): kill -9 Petrel at random moments while clients
// send on 25 and 465 and read (and APPEND) over IMAP, restart on the same
// DATA_DIR, and check that every message that got its 250 (or its tagged
// OK after APPEND) is present exactly once: in its mailbox (seen both in
// the database and over IMAP) or, for external recipients, in the outbound
// queue. RELAYHOST points at a loopback server that greets every
// connection with 421, so queued messages stay queued and can be counted.
// After every kill the SQLite file must pass PRAGMA integrity_check and
// foreign_key_check, and the server must come up again and answer.
//
// Short form (default; CI, with -race on 2 cores): 3 rounds of a few
// seconds each.
//
//	go test -race ./tests -run TestCrashKit -count=1
//
// Long form: 20 rounds, with a report line per round and a total.
//
//	PETREL_CRASH_ROUNDS=20 go test ./tests -run TestCrashKit -v -count=1
//
// Every run logs its seed (kill delays, recipients, message sizes); replay
// one with PETREL_CRASH_SEED=<seed>. Thread timing is not replayable, so
// a replay reproduces the schedule, not the exact interleaving.

import (
	"bufio"
	"context"
	"crypto/tls"
	"database/sql"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/petrelmail/petrel/internal/relay/sinktest"
)

// crashUsers are the local accounts; the password is the address's local
// part with a fixed suffix.
var crashUsers = []string{"alice@example.test", "bob@example.test", "carol@example.test"}

// crashRemote are external recipients: they go to the outbound queue.
var crashRemote = []string{"ext1@remote.example", "ext2@remote.example"}

func crashPassword(user string) string {
	return "Crash-" + user[:strings.IndexByte(user, '@')] + "-pw1"
}

// crashPlace is where one copy of a message must be: a user's mailboxes
// (box is the user's address) or the queue (box is "queue " + recipient).
type crashPlace struct{ box, token string }

func (p crashPlace) queued() bool { return strings.HasPrefix(p.box, "queue ") }

// crashLedger records what the clients tried and what was acknowledged.
type crashLedger struct {
	mu    sync.Mutex
	tried map[string]bool        // every token a client began to send
	acked map[crashPlace]int     // acknowledged copies -> round
	msgs  map[string]map[int]int // channel ("25", "465", "append") -> round -> acknowledged messages
	first map[int]time.Time      // round -> when its first acknowledgement came
	last  map[int]time.Time      // round -> when its latest acknowledgement came
	pause map[int]time.Duration  // round -> longest wait between two acknowledgements
	errs  map[string]string      // channel -> first error seen before the kill, per round
}

func newCrashLedger() *crashLedger {
	return &crashLedger{tried: map[string]bool{}, acked: map[crashPlace]int{},
		msgs: map[string]map[int]int{"25": {}, "465": {}, "append": {}}, errs: map[string]string{},
		first: map[int]time.Time{}, last: map[int]time.Time{}, pause: map[int]time.Duration{}}
}

func (l *crashLedger) try(token string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tried[token] = true
}

func (l *crashLedger) ack(channel string, round int, places []crashPlace) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range places {
		l.acked[p] = round
	}
	l.msgs[channel][round]++
	now := time.Now()
	if _, ok := l.first[round]; !ok {
		l.first[round] = now
	} else if d := now.Sub(l.last[round]); d > l.pause[round] {
		l.pause[round] = d
	}
	l.last[round] = now
}

// noteErr keeps the first error a channel met while the server was
// supposed to be up: it explains a round with few acknowledgements.
func (l *crashLedger) noteErr(channel string, killed *atomic.Bool, err error) {
	if err == nil || killed.Load() {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.errs[channel]; !ok {
		l.errs[channel] = err.Error()
	}
}

// crashConn is a line-oriented SMTP client that returns errors instead of
// failing the test: the server dying under it is the point.
type crashConn struct {
	c net.Conn
	r *bufio.Reader
}

func (c *crashConn) reply() (string, error) {
	var last string
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return "", err
		}
		last = line
		if len(line) < 4 || line[3] != '-' {
			return strings.TrimRight(last, "\r\n"), nil
		}
	}
}

// cmd sends line (none when empty) and wants a reply starting with want.
func (c *crashConn) cmd(line, want string) error {
	if line != "" {
		if _, err := io.WriteString(c.c, line+"\r\n"); err != nil {
			return err
		}
	}
	got, err := c.reply()
	if err != nil {
		return fmt.Errorf("after %.20q: %w", line, err)
	}
	if !strings.HasPrefix(got, want) {
		return fmt.Errorf("after %.20q: got %q, want %s", line, got, want)
	}
	return nil
}

// crashMessage builds a message carrying token; one in eight is large
// enough (about 160 KB) to be stored as a blob file instead of inline.
func crashMessage(rng *rand.Rand, token, from string, to []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "From: <%s>\r\nTo: %s\r\nSubject: crash %s\r\nMessage-ID: <%s@crash.test>\r\nX-Crash-Token: %s\r\n\r\n",
		from, strings.Join(to, ", "), token, token, token)
	lines := 3
	if rng.IntN(8) == 0 {
		lines = 2100
	}
	for i := 0; i < lines; i++ {
		fmt.Fprintf(&b, "%s line %05d %s\r\n", token, i, strings.Repeat("x", 50))
	}
	return b.String()
}

// crashPick returns 1..most distinct elements of from.
func crashPick(rng *rand.Rand, from []string, most int) []string {
	p := rng.Perm(len(from))
	n := 1 + rng.IntN(min(most, len(from)))
	out := make([]string, 0, n)
	for _, i := range p[:n] {
		out = append(out, from[i])
	}
	return out
}

// crashTransaction runs MAIL, RCPT and DATA for one message on an open
// session and records its places once the 250 after the dot is read.
func crashTransaction(c *crashConn, l *crashLedger, channel string, round int, rng *rand.Rand, token, from string, rcpts []string) error {
	if err := c.cmd("MAIL FROM:<"+from+">", "250"); err != nil {
		return err
	}
	var places []crashPlace
	for _, r := range rcpts {
		if err := c.cmd("RCPT TO:<"+r+">", "250"); err != nil {
			return err
		}
		box := r
		if strings.HasSuffix(r, "@remote.example") {
			box = "queue " + r
		}
		places = append(places, crashPlace{box, token})
	}
	if err := c.cmd("DATA", "354"); err != nil {
		return err
	}
	l.try(token)
	if err := c.cmd(crashMessage(rng, token, from, rcpts)+".", "250"); err != nil {
		return err
	}
	// RFC 5321 4.1.1.4: the 250 after the dot is the server taking
	// responsibility; only now is the message acknowledged.
	l.ack(channel, round, places)
	return nil
}

// crashSender25 sends unauthenticated mail to local users on port 25,
// one to three transactions per connection, until stop is closed.
func crashSender25(s *server, l *crashLedger, round, g int, seed uint64, stop <-chan struct{}, killed *atomic.Bool) {
	rng := rand.New(rand.NewPCG(seed, uint64(round*100+g)))
	n := 0
	for !crashStopped(stop) {
		err := func() error {
			nc, err := net.DialTimeout("tcp", s.addr[25], 2*time.Second)
			if err != nil {
				return err
			}
			defer nc.Close()
			_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
			c := &crashConn{c: nc, r: bufio.NewReader(nc)}
			if err := c.cmd("", "220"); err != nil {
				return err
			}
			if err := c.cmd("EHLO mx.example.org", "250"); err != nil {
				return err
			}
			for k := 1 + rng.IntN(3); k > 0 && !crashStopped(stop); k-- {
				token := fmt.Sprintf("r%d-m%d-%d", round, g, n)
				n++
				if err := crashTransaction(c, l, "25", round, rng, token, "load@example.org", crashPick(rng, crashUsers, 2)); err != nil {
					return err
				}
			}
			_ = c.cmd("QUIT", "221")
			return nil
		}()
		if err != nil {
			l.noteErr("25", killed, err)
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// crashSender465 submits over implicit TLS with AUTH PLAIN, to local
// users and external recipients (which are queued).
func crashSender465(s *server, l *crashLedger, round, g int, seed uint64, stop <-chan struct{}, killed *atomic.Bool) {
	rng := rand.New(rand.NewPCG(seed, uint64(round*100+50+g)))
	user := crashUsers[g%len(crashUsers)]
	var others []string
	for _, u := range crashUsers {
		if u != user {
			others = append(others, u)
		}
	}
	targets := append(others, crashRemote...)
	n := 0
	for !crashStopped(stop) {
		err := func() error {
			d := &net.Dialer{Timeout: 2 * time.Second}
			nc, err := tls.DialWithDialer(d, "tcp", s.addr[465], &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				return err
			}
			defer nc.Close()
			_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
			c := &crashConn{c: nc, r: bufio.NewReader(nc)}
			if err := c.cmd("", "220"); err != nil {
				return err
			}
			if err := c.cmd("EHLO laptop.example.org", "250"); err != nil {
				return err
			}
			plain := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + crashPassword(user)))
			if err := c.cmd("AUTH PLAIN "+plain, "235"); err != nil {
				return err
			}
			for k := 1 + rng.IntN(3); k > 0 && !crashStopped(stop); k-- {
				token := fmt.Sprintf("r%d-s%d-%d", round, g, n)
				n++
				if err := crashTransaction(c, l, "465", round, rng, token, user, crashPick(rng, targets, 3)); err != nil {
					return err
				}
			}
			_ = c.cmd("QUIT", "221")
			return nil
		}()
		if err != nil {
			l.noteErr("465", killed, err)
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// crashIMAPDial logs in over 993 (implicit TLS) or 143 with STARTTLS.
func crashIMAPDial(s *server, user string, startTLS bool, life time.Duration) (*imapclient.Client, error) {
	tc := &tls.Config{InsecureSkipVerify: true}
	port := 993
	if startTLS {
		port = 143
	}
	nc, err := net.DialTimeout("tcp", s.addr[port], 2*time.Second)
	if err != nil {
		return nil, err
	}
	_ = nc.SetDeadline(time.Now().Add(life))
	var c *imapclient.Client
	if startTLS {
		c, err = imapclient.NewStartTLS(nc, &imapclient.Options{TLSConfig: tc})
		if err != nil {
			nc.Close()
			return nil, err
		}
		// After STARTTLS, go-imap v2 (beta.8) sends CAPABILITY from a
		// goroutine of its own that nobody waits for; when the server is
		// killed while it is on the wire, the client races with itself
		// (seen under -race in CI). Waiting for it here keeps the next
		// command from overlapping it.
		c.Caps()
	} else {
		c = imapclient.New(tls.Client(nc, tc), nil)
	}
	if err := c.Login(user, crashPassword(user)).Wait(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// crashReader is an IMAP client at work: SELECT, FETCH, STORE \Seen,
// IDLE, and now and then an APPEND whose tagged OK counts as an
// acknowledgement like a 250.
func crashReader(s *server, l *crashLedger, round, g int, seed uint64, stop <-chan struct{}, killed *atomic.Bool) {
	rng := rand.New(rand.NewPCG(seed, uint64(round*100+80+g)))
	user := crashUsers[g%len(crashUsers)]
	n := 0
	for !crashStopped(stop) {
		err := func() error {
			c, err := crashIMAPDial(s, user, g%2 == 1, 15*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			for k := 0; k < 4 && !crashStopped(stop); k++ {
				sel, err := c.Select("INBOX", nil).Wait()
				if err != nil {
					return err
				}
				if sel.NumMessages > 0 {
					var all imap.SeqSet
					all.AddRange(1, sel.NumMessages)
					// BODYSTRUCTURE reads and parses every body, as a
					// header fetch would, but comes without literals:
					// go-imap v2 (beta.8) hands a literal to the caller
					// while its reader goroutine goes on with the same
					// buffer, and when the server is killed mid-literal
					// the two race (seen under -race in CI).
					opts := &imap.FetchOptions{UID: true, Flags: true, BodyStructure: &imap.FetchItemBodyStructure{}}
					if _, err := c.Fetch(all, opts).Collect(); err != nil {
						return err
					}
					seq := 1 + uint32(rng.IntN(int(sel.NumMessages)))
					if _, err := c.Store(imap.SeqSetNum(seq), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true,
						Flags: []imap.Flag{imap.FlagSeen}}, nil).Collect(); err != nil {
						return err
					}
				}
				switch rng.IntN(3) {
				case 0:
					token := fmt.Sprintf("r%d-a%d-%d", round, g, n)
					n++
					msg := crashMessage(rng, token, user, []string{user})
					l.try(token)
					app := c.Append("INBOX", int64(len(msg)), nil)
					if _, err := io.WriteString(app, msg); err != nil {
						return err
					}
					if err := app.Close(); err != nil {
						return err
					}
					if _, err := app.Wait(); err != nil {
						return err
					}
					l.ack("append", round, []crashPlace{{user, token}})
				case 1:
					idle, err := c.Idle()
					if err != nil {
						return err
					}
					time.Sleep(time.Duration(50+rng.IntN(250)) * time.Millisecond)
					if err := idle.Close(); err != nil {
						return err
					}
					if err := idle.Wait(); err != nil {
						return err
					}
				default:
					if err := c.Noop().Wait(); err != nil {
						return err
					}
				}
			}
			return c.Logout().Wait()
		}()
		if err != nil {
			l.noteErr("imap", killed, err)
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func crashStopped(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

// crashToken finds the X-Crash-Token field in a message's header.
func crashToken(r io.Reader) string {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		line = strings.TrimRight(line, "\r\n")
		if v, ok := strings.CutPrefix(line, "X-Crash-Token:"); ok {
			return strings.TrimSpace(v)
		}
		if line == "" || err != nil {
			return ""
		}
	}
}

// crashIntegrity opens the SQLite file read-only while the server is
// down and requires PRAGMA integrity_check to say "ok" and
// foreign_key_check to find nothing.
func crashIntegrity(t *testing.T, dataDir string) {
	t.Helper()
	u := url.URL{Scheme: "file", Path: filepath.Join(dataDir, "main.db")}
	db, err := sql.Open("sqlite", u.String()+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatalf("opening the database read-only: %v", err)
	}
	defer db.Close()
	rows, err := db.Query("PRAGMA integrity_check")
	if err != nil {
		t.Fatalf("integrity_check: %v", err)
	}
	var res []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		res = append(res, line)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		t.Fatalf("integrity_check: %v", err)
	}
	if len(res) != 1 || res[0] != "ok" {
		t.Fatalf("PRAGMA integrity_check after kill -9: %q", res)
	}
	fk, err := db.Query("PRAGMA foreign_key_check")
	if err != nil {
		t.Fatalf("foreign_key_check: %v", err)
	}
	defer fk.Close()
	if fk.Next() {
		t.Fatal("PRAGMA foreign_key_check after kill -9 found dangling rows")
	}
}

// crashDBCounts counts every token copy in the database: in each user's
// mailboxes and in the outbound queue. Only while the server is down.
func crashDBCounts(t *testing.T, s *server) map[crashPlace]int {
	t.Helper()
	ctx := context.Background()
	st := openStore(t, s)
	defer st.Close()
	counts := map[crashPlace]int{}
	read := func(bodyID int64) string {
		r, err := st.OpenBody(ctx, bodyID)
		if err != nil {
			t.Fatalf("opening body %d: %v", bodyID, err)
		}
		defer r.Close()
		return crashToken(r)
	}
	for _, u := range crashUsers {
		boxes, err := st.ListMailboxes(ctx, u)
		if err != nil {
			t.Fatalf("mailboxes of %s: %v", u, err)
		}
		for _, b := range boxes {
			msgs, err := st.ListMessages(ctx, u, b.Name)
			if err != nil {
				t.Fatalf("messages of %s %s: %v", u, b.Name, err)
			}
			for _, m := range msgs {
				if tok := read(m.BodyID); tok != "" {
					counts[crashPlace{u, tok}]++
				}
			}
		}
	}
	items, err := st.ListQueueEntries(ctx)
	if err != nil {
		t.Fatalf("listing the queue: %v", err)
	}
	for _, it := range items {
		if tok := read(it.BodyID); tok != "" {
			counts[crashPlace{"queue " + it.Recipient, tok}]++
		}
	}
	return counts
}

// crashIMAPCounts counts every token copy in every mailbox over IMAP: a
// path independent of the store package.
func crashIMAPCounts(t *testing.T, s *server) map[crashPlace]int {
	t.Helper()
	counts := map[crashPlace]int{}
	for _, u := range crashUsers {
		c, err := crashIMAPDial(s, u, false, 2*time.Minute)
		if err != nil {
			t.Fatalf("IMAP login as %s after restart: %v\n%s", u, err, s.logs())
		}
		list, err := c.List("", "*", nil).Collect()
		if err != nil {
			t.Fatalf("IMAP LIST for %s: %v", u, err)
		}
		for _, mb := range list {
			sel, err := c.Select(mb.Mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
			if err != nil {
				t.Fatalf("IMAP EXAMINE %s for %s: %v", mb.Mailbox, u, err)
			}
			if sel.NumMessages == 0 {
				continue
			}
			var all imap.SeqSet
			all.AddRange(1, sel.NumMessages)
			section := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"X-Crash-Token"}, Peek: true}
			msgs, err := c.Fetch(all, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
			if err != nil {
				t.Fatalf("IMAP FETCH %s for %s: %v", mb.Mailbox, u, err)
			}
			if len(msgs) != int(sel.NumMessages) {
				t.Errorf("IMAP %s %s: EXISTS %d but FETCH 1:* returned %d messages", u, mb.Mailbox, sel.NumMessages, len(msgs))
			}
			for _, m := range msgs {
				if tok := crashToken(strings.NewReader(string(m.FindBodySection(section)))); tok != "" {
					counts[crashPlace{u, tok}]++
				}
			}
		}
		_ = c.Logout().Wait()
		c.Close()
	}
	return counts
}

// crashTally is one verification's figures, in message copies.
type crashTally struct {
	acked, present, lost, dup, extra, unknown int
	problems                                  []string
}

// crashVerify compares everything acknowledged so far with counts.
func crashVerify(l *crashLedger, counts map[crashPlace]int) crashTally {
	l.mu.Lock()
	defer l.mu.Unlock()
	var tl crashTally
	for p, round := range l.acked {
		tl.acked++
		switch n := counts[p]; {
		case n == 1:
			tl.present++
		case n == 0:
			tl.lost++
			tl.problems = append(tl.problems, fmt.Sprintf("LOST %s in %s (acknowledged in round %d)", p.token, p.box, round))
		}
	}
	for p, n := range counts {
		if n > 1 {
			tl.dup++
			tl.problems = append(tl.problems, fmt.Sprintf("DUPLICATE %s in %s: %d copies", p.token, p.box, n))
		}
		if _, ok := l.acked[p]; !ok {
			if l.tried[p.token] {
				tl.extra++ // in flight at the kill: may or may not be there
			} else {
				tl.unknown++
				tl.problems = append(tl.problems, fmt.Sprintf("UNKNOWN %s in %s: no client sent it", p.token, p.box))
			}
		}
	}
	sort.Strings(tl.problems)
	return tl
}

// crashReport fails the test with the first problems found.
func crashReport(t *testing.T, when string, problems []string) {
	t.Helper()
	const most = 20
	for i, p := range problems {
		if i == most {
			t.Errorf("%s: ... and %d more", when, len(problems)-most)
			break
		}
		t.Errorf("%s: %s", when, p)
	}
}

// crashCompare requires the IMAP view and the database to agree on every
// mailbox copy.
func crashCompare(t *testing.T, round int, db, im map[crashPlace]int) {
	t.Helper()
	for p, n := range db {
		if !p.queued() && im[p] != n {
			t.Errorf("round %d: %s in %s: database has %d copies, IMAP shows %d", round, p.token, p.box, n, im[p])
		}
	}
	for p, n := range im {
		if _, ok := db[p]; !ok {
			t.Errorf("round %d: %s in %s: IMAP shows %d copies, the database none", round, p.token, p.box, n)
		}
	}
}

// crashDisk describes the data directory after a kill: database and WAL
// sizes, committed blob files and leftover temp files (for the report).
func crashDisk(dataDir string) string {
	size := func(name string) int64 {
		fi, err := os.Stat(filepath.Join(dataDir, name))
		if err != nil {
			return 0
		}
		return fi.Size()
	}
	blobs, tmp := 0, 0
	_ = filepath.WalkDir(filepath.Join(dataDir, "blobs"), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if filepath.Base(filepath.Dir(path)) == "tmp" {
			tmp++
		} else {
			blobs++
		}
		return nil
	})
	return fmt.Sprintf("main.db %d KiB, -wal %d KiB, %d blob files, %d in blobs/tmp",
		size("main.db")>>10, size("main.db-wal")>>10, blobs, tmp)
}

// crashStart starts the server and waits until every port the clients
// use accepts connections: start waits for port 25 only, and the
// listeners come up one after another.
func crashStart(t *testing.T, s *server) {
	t.Helper()
	s.start()
	for _, p := range []int{465, 993, 143} {
		deadline := time.Now().Add(30 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", s.addr[p], time.Second)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("port %d does not answer after the restart: %v\n%s", p, err, s.logs())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func crashEnvInt(t *testing.T, name string, def int64) int64 {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return n
}

// TestCrashKit is the crash kit described at the top of this file.
func TestCrashKit(t *testing.T) {
	rounds := int(crashEnvInt(t, "PETREL_CRASH_ROUNDS", 3))
	seed := uint64(crashEnvInt(t, "PETREL_CRASH_SEED", time.Now().UnixNano()%1_000_000_000))
	t.Logf("crash kit: %d rounds, seed %d (replay with PETREL_CRASH_SEED=%d)", rounds, seed, seed)
	master := rand.New(rand.NewPCG(seed, 0))

	// Every connection to the relay host is greeted with 421: external
	// mail is deferred and stays in the queue, where it can be counted.
	relay := sinktest.Start(t, sinktest.Options{Greeting: "421 4.3.2 crash kit: try again later"})
	s := newServer(t, map[string]string{
		"RELAYHOST":                   fmt.Sprintf("[127.0.0.1]:%d", relay.Port()),
		"MESSAGE_RATELIMIT_EXEMPTION": strings.Join(crashUsers, ","),
		"DELAY_WARNING_TIME":          "0", // no delay DSNs carrying our tokens back
		"LOG_LEVEL":                   "WARNING",
		"PORTS":                       "25,80,443,465,993,995,4190,143", // 143 for the STARTTLS reader
	})
	s.mustCLI("", "domain", "example.test")
	for _, u := range crashUsers {
		local := u[:strings.IndexByte(u, '@')]
		s.mustCLI(crashPassword(u)+"\n", "user", local, "example.test", "-")
	}
	l := newCrashLedger()
	crashStart(t, s)

	const senders25, senders465, readers = 3, 2, 2
	var total crashTally
	for round := 1; round <= rounds; round++ {
		delay := time.Duration(50+master.IntN(2950)) * time.Millisecond
		if round == 1 {
			// The first round runs long enough for every path to get
			// acknowledgements even on a slow CI machine; later rounds
			// may kill at any moment, even before the first message.
			delay = time.Duration(1500+master.IntN(1500)) * time.Millisecond
		}
		stop := make(chan struct{})
		began := time.Now()
		var killed atomic.Bool
		var wg sync.WaitGroup
		for g := 0; g < senders25; g++ {
			wg.Go(func() { crashSender25(s, l, round, g, seed, stop, &killed) })
		}
		for g := 0; g < senders465; g++ {
			wg.Go(func() { crashSender465(s, l, round, g, seed, stop, &killed) })
		}
		for g := 0; g < readers; g++ {
			wg.Go(func() { crashReader(s, l, round, g, seed, stop, &killed) })
		}
		time.Sleep(delay)
		killed.Store(true)
		s.kill() // SIGKILL: no chance to flush anything
		close(stop)
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			t.Fatalf("round %d: clients still running 60s after the kill", round)
		}

		disk := crashDisk(s.dataDir)
		crashIntegrity(t, s.dataDir)
		db := crashDBCounts(t, s)
		crashStart(t, s) // the store opens and the server answers again
		im := crashIMAPCounts(t, s)
		crashCompare(t, round, db, im)
		tl := crashVerify(l, db)
		l.mu.Lock()
		m25, m465, mApp := l.msgs["25"][round], l.msgs["465"][round], l.msgs["append"][round]
		timing := "no acknowledgement"
		if f, ok := l.first[round]; ok {
			timing = fmt.Sprintf("first acknowledgement after %v, longest pause between two %v", f.Sub(began).Round(time.Millisecond),
				l.pause[round].Round(time.Millisecond))
		}
		errs := l.errs
		l.errs = map[string]string{}
		l.mu.Unlock()
		t.Logf("round %2d: kill -9 after %v: acknowledged %d messages (25: %d, 465: %d, APPEND: %d); "+
			"all rounds so far: %d copies acknowledged, %d present once, %d lost, %d duplicated, %d unacknowledged present",
			round, delay, m25+m465+mApp, m25, m465, mApp, tl.acked, tl.present, tl.lost, tl.dup, tl.extra)
		t.Logf("round %2d: %s; after the kill: %s", round, timing, disk)
		for ch, e := range errs {
			t.Logf("round %2d: first %s client error before the kill: %s", round, ch, e)
		}
		crashReport(t, fmt.Sprintf("round %d", round), tl.problems)
		total = tl
	}

	// A clean stop after the last restart, then the whole ledger again.
	s.stopClean()
	crashIntegrity(t, s.dataDir)
	final := crashVerify(l, crashDBCounts(t, s))
	crashReport(t, "after the clean stop", final.problems)
	l.mu.Lock()
	var m25, m465, mApp, queued int
	for _, n := range l.msgs["25"] {
		m25 += n
	}
	for _, n := range l.msgs["465"] {
		m465 += n
	}
	for _, n := range l.msgs["append"] {
		mApp += n
	}
	for p := range l.acked {
		if p.queued() {
			queued++
		}
	}
	l.mu.Unlock()
	t.Logf("TOTAL %d rounds (seed %d): %d messages acknowledged (25: %d, 465: %d, APPEND: %d) = %d copies (%d queued); "+
		"%d present once, %d lost, %d duplicated, %d unacknowledged present",
		rounds, seed, m25+m465+mApp, m25, m465, mApp, final.acked, queued, final.present, final.lost, final.dup, final.extra)
	if total.acked != final.acked {
		t.Errorf("the ledger changed after the last round: %d then %d", total.acked, final.acked)
	}
	if m25 == 0 || m465 == 0 || queued == 0 {
		t.Errorf("a path was never exercised: 25: %d, 465: %d, queued copies: %d", m25, m465, queued)
	}
}

// TestCrashVerify checks the crash kit's own bookkeeping: a missing
// acknowledged copy is lost, two copies are a duplicate, an
// unacknowledged copy in flight is allowed, an unknown one is not.
func TestCrashVerify(t *testing.T) {
	l := newCrashLedger()
	for _, tok := range []string{"a", "b", "c", "d"} {
		l.try(tok)
	}
	l.ack("25", 1, []crashPlace{{"alice@example.test", "a"}, {"queue x@remote.example", "a"}})
	l.ack("465", 2, []crashPlace{{"bob@example.test", "b"}})
	tests := []struct {
		name                              string
		counts                            map[crashPlace]int
		present, lost, dup, extra, unknwn int
	}{
		{"all there", map[crashPlace]int{{"alice@example.test", "a"}: 1, {"queue x@remote.example", "a"}: 1, {"bob@example.test", "b"}: 1}, 3, 0, 0, 0, 0},
		{"queue copy lost", map[crashPlace]int{{"alice@example.test", "a"}: 1, {"bob@example.test", "b"}: 1}, 2, 1, 0, 0, 0},
		{"duplicate", map[crashPlace]int{{"alice@example.test", "a"}: 1, {"queue x@remote.example", "a"}: 1, {"bob@example.test", "b"}: 2}, 2, 0, 1, 0, 0},
		{"in flight once", map[crashPlace]int{{"alice@example.test", "a"}: 1, {"queue x@remote.example", "a"}: 1, {"bob@example.test", "b"}: 1, {"carol@example.test", "c"}: 1}, 3, 0, 0, 1, 0},
		{"in flight twice", map[crashPlace]int{{"alice@example.test", "a"}: 1, {"queue x@remote.example", "a"}: 1, {"bob@example.test", "b"}: 1, {"carol@example.test", "d"}: 2}, 3, 0, 1, 1, 0},
		{"unknown", map[crashPlace]int{{"alice@example.test", "a"}: 1, {"queue x@remote.example", "a"}: 1, {"bob@example.test", "b"}: 1, {"bob@example.test", "zz"}: 1}, 3, 0, 0, 0, 1},
	}
	for _, tc := range tests {
		got := crashVerify(l, tc.counts)
		if got.acked != 3 || got.present != tc.present || got.lost != tc.lost || got.dup != tc.dup || got.extra != tc.extra || got.unknown != tc.unknwn {
			t.Errorf("%s: got %+v", tc.name, got)
		}
		if ok := tc.lost+tc.dup+tc.unknwn == 0; ok != (len(got.problems) == 0) {
			t.Errorf("%s: problems %q", tc.name, got.problems)
		}
	}
}
