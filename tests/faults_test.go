package tests

// The fault kit (issue 18): two `petrel serve` nodes share one PostgreSQL
// database through a proxy (internal/testutil/pgproxy) that, for the
// length of the run, drops the reply of random COMMITs after the server
// has committed (the outcome is unknown to Petrel) and cuts random
// connections before or after a statement reaches the server. Meanwhile
// clients on both nodes deliver over SMTP (port 25), APPEND over IMAP,
// change flags and expunge scratch messages. Then, with the proxy calm,
// every message that got its 250 or its tagged OK must be present exactly
// once and fetchable, no message may be present twice, and each user's
// quota_bytes_used must equal the sum of the sizes of their messages.
//
// Short form (default; CI): about 20 seconds of faults.
//
//	PETREL_TEST_PG_DSN=... go test -race ./tests -run TestFaultKit -count=1
//
// Long form: a minute or more, with figures.
//
//	PETREL_FAULT_DURATION=60s PETREL_TEST_PG_DSN=... go test ./tests -run TestFaultKit -v -count=1
//
// It is skipped when PETREL_TEST_PG_DSN is unset (see
// internal/store/sqlstore/testdata/pg-start.sh).

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/petrelmail/petrel/internal/store/sqlstore"
	"github.com/petrelmail/petrel/internal/testutil"
	"github.com/petrelmail/petrel/internal/testutil/pgproxy"
)

var faultUsers = []string{"alice@example.test", "bob@example.test"}

// faultLedger records acknowledged tokens per user.
type faultLedger struct {
	mu    sync.Mutex
	acked map[string]string // token -> user
	errs  map[string]int    // channel -> failed operations
	ok    map[string]int    // channel -> acknowledged operations
}

func (l *faultLedger) ack(channel, user, token string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if token != "" {
		l.acked[token] = user
	}
	l.ok[channel]++
}

func (l *faultLedger) fail(channel string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs[channel]++
}

// faultMessage builds a message carrying token; one in five is large
// enough (about 150 KB) to be stored as a blob file.
func faultMessage(token, from, to string, i int64) string {
	body := strings.Repeat("z", len(token)*3) + "\r\n"
	if i%5 == 0 {
		body = strings.Repeat(token+" "+strings.Repeat("b", 70)+"\r\n", 150000/(len(token)+73))
	}
	return fmt.Sprintf("From: <%s>\r\nTo: <%s>\r\nSubject: fault %s\r\nMessage-ID: <%s@fault.test>\r\nX-Crash-Token: %s\r\n\r\nbody of %s\r\n%s",
		from, to, token, token, token, token, body)
}

func TestFaultKit(t *testing.T) {
	if os.Getenv("PETREL_TEST_PG_DSN") == "" {
		t.Skip("fault kit skipped: PETREL_TEST_PG_DSN not set (start PostgreSQL with internal/store/sqlstore/testdata/pg-start.sh)")
	}
	length := 20 * time.Second
	if v := os.Getenv("PETREL_FAULT_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("PETREL_FAULT_DURATION: %v", err)
		}
		length = d
	}
	dsn := testutil.PGSchemaDSN(t)
	target, err := pgproxy.Target(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := pgproxy.Start(target)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	pdsn, err := proxy.DSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{
		"SQLALCHEMY_DATABASE_URI":     pdsn,
		"MESSAGE_RATELIMIT_EXEMPTION": strings.Join(faultUsers, ","),
		"LOG_LEVEL":                   "WARNING",
		"PORTS":                       "25,80,443,465,993,995,4190,143",
	}
	nodes := []*server{newServer(t, settings), newServer(t, settings)}
	// Several nodes need one blob directory (shared storage in production).
	shared := filepath.Join(nodes[0].dataDir, "blobs")
	if err := os.MkdirAll(shared, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(shared, filepath.Join(nodes[1].dataDir, "blobs")); err != nil {
		t.Fatal(err)
	}
	nodes[0].mustCLI("", "domain", "example.test")
	for _, u := range faultUsers {
		nodes[0].mustCLI(crashPassword(u)+"\n", "user", u[:strings.IndexByte(u, '@')], "example.test", "-")
	}
	for _, n := range nodes {
		n.start()
	}

	seed := uint64(time.Now().UnixNano())
	t.Logf("fault kit: %v of faults, seed %d", length, seed)
	proxy.Chaos(0.15, 0.002, seed)
	l := &faultLedger{acked: map[string]string{}, errs: map[string]int{}, ok: map[string]int{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var seq atomic.Int64
	for ni, n := range nodes {
		for g := range 2 {
			wg.Add(4)
			go func() { defer wg.Done(); faultSMTP(n, l, &seq, ni, stop) }()
			go func() { defer wg.Done(); faultSMTP(n, l, &seq, ni, stop) }()
			go func() {
				defer wg.Done()
				faultIMAP(n, l, &seq, faultUsers[g], stop, rand.New(rand.NewPCG(seed, uint64(ni*10+g))))
			}()
			go func() { defer wg.Done(); faultExpunger(n, l, &seq, faultUsers[(g+ni)%2], stop) }()
		}
	}
	time.Sleep(length)
	close(stop)
	wg.Wait()
	proxy.Chaos(0, 0, 0)
	commits, dropped, cut := proxy.Stats()
	for _, n := range nodes {
		if err := n.stop(); err != nil {
			t.Errorf("node stopped with %v\n%s", err, n.logs())
		}
	}
	t.Logf("fault kit: %d COMMITs, %d replies dropped, %d connections cut; acknowledged %v, failed %v",
		commits, dropped, cut, l.ok, l.errs)
	if dropped == 0 || l.ok["smtp"] == 0 || l.ok["append"] == 0 || l.ok["expunge"] == 0 {
		t.Fatalf("the run did not exercise the faults: %d dropped replies, acknowledged %v (failed %v)\n%s",
			dropped, l.ok, l.errs, nodes[0].logs())
	}
	faultVerify(t, dsn, nodes[0].dataDir, l)
}

// faultVerify checks the database directly (no proxy).
func faultVerify(t *testing.T, dsn, dataDir string, l *faultLedger) {
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, sqlstore.Options{Flavor: "postgresql", DSN: dsn, BlobDir: filepath.Join(dataDir, "blobs")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, u := range faultUsers {
		boxes, err := st.ListMailboxes(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		var sum int64
		for _, mb := range boxes {
			msgs, err := st.ListMessages(ctx, u, mb.Name)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range msgs {
				sum += m.Size
				r, err := st.OpenBody(ctx, m.BodyID)
				if err != nil {
					t.Errorf("%s %s UID %d: body not fetchable: %v", u, mb.Name, m.UID, err)
					continue
				}
				b, err := io.ReadAll(r)
				r.Close()
				if err != nil || int64(len(b)) != m.Size {
					t.Errorf("%s %s UID %d: body of %d bytes (%v), size %d", u, mb.Name, m.UID, len(b), err, m.Size)
				}
				if tok := crashToken(strings.NewReader(string(b))); tok != "" {
					seen[tok]++
				}
			}
		}
		for tok, n := range seen {
			if n > 1 {
				t.Errorf("%s: message %s stored %d times", u, tok, n)
			}
		}
		acked := 0
		l.mu.Lock()
		for key, user := range l.acked {
			if user != u {
				continue
			}
			tok := strings.TrimSuffix(key, "@"+u)
			acked++
			if seen[tok] != 1 {
				t.Errorf("%s: acknowledged message %s present %d times", u, tok, seen[tok])
			}
		}
		l.mu.Unlock()
		used, _, err := st.Quota(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		if used != sum {
			t.Errorf("%s: quota_bytes_used %d, messages sum to %d", u, used, sum)
		}
		t.Logf("%s: %d acknowledged messages, %d stored, %d bytes", u, acked, len(seen), sum)
	}
}

func crashStopWait(stop <-chan struct{}, d time.Duration) {
	select {
	case <-stop:
	case <-time.After(d):
	}
}

// faultSMTP delivers on port 25 to one or both users.
func faultSMTP(s *server, l *faultLedger, seq *atomic.Int64, node int, stop <-chan struct{}) {
	for !crashStopped(stop) {
		err := func() error {
			nc, err := net.DialTimeout("tcp", s.addr[25], 2*time.Second)
			if err != nil {
				return err
			}
			defer nc.Close()
			_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
			c := &crashConn{c: nc, r: bufio.NewReader(nc)}
			if err := c.cmd("", "220"); err != nil {
				return err
			}
			if err := c.cmd("EHLO mx.example.org", "250"); err != nil {
				return err
			}
			for k := 0; k < 3 && !crashStopped(stop); k++ {
				i := seq.Add(1)
				token := fmt.Sprintf("s%d-%d", node, i)
				rcpts := faultUsers[i%2 : i%2+1]
				if i%3 == 0 {
					rcpts = faultUsers
				}
				if err := c.cmd("MAIL FROM:<load@example.org>", "250"); err != nil {
					return err
				}
				for _, r := range rcpts {
					if err := c.cmd("RCPT TO:<"+r+">", "250"); err != nil {
						return err
					}
				}
				if err := c.cmd("DATA", "354"); err != nil {
					return err
				}
				if err := c.cmd(faultMessage(token, "load@example.org", rcpts[0], i)+".", "250"); err != nil {
					if strings.Contains(err.Error(), `"4`) {
						continue // 451: not acknowledged; the session goes on
					}
					return err
				}
				for _, r := range rcpts {
					// Each recipient's copy counts: the ledger keys on
					// token+user through distinct tokens per copy.
					l.ack("smtp", r, token+"@"+r)
				}
			}
			_ = c.cmd("QUIT", "221")
			return nil
		}()
		if err != nil {
			l.fail("smtp")
			crashStopWait(stop, 20*time.Millisecond)
		}
	}
}

// faultIMAP APPENDs tracked messages and toggles flags on everything.
func faultIMAP(s *server, l *faultLedger, seq *atomic.Int64, user string, stop <-chan struct{}, rng *rand.Rand) {
	for !crashStopped(stop) {
		err := func() error {
			c, err := crashIMAPDial(s, user, false, 30*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			for k := 0; k < 6 && !crashStopped(stop); k++ {
				sel, err := c.Select("INBOX", nil).Wait()
				if err != nil {
					return err
				}
				if sel.NumMessages > 0 {
					var all imap.SeqSet
					all.AddRange(1, sel.NumMessages)
					op := imap.StoreFlagsAdd
					if rng.IntN(2) == 0 {
						op = imap.StoreFlagsDel
					}
					if _, err := c.Store(all, &imap.StoreFlags{Op: op, Silent: true,
						Flags: []imap.Flag{imap.FlagFlagged, "$Fault"}}, nil).Collect(); err != nil {
						l.fail("flags")
					} else {
						l.ack("flags", user, "")
					}
				}
				i := seq.Add(1)
				token := fmt.Sprintf("a-%d", i)
				msg := faultMessage(token, user, user, i)
				app := c.Append("INBOX", int64(len(msg)), nil)
				if _, err := io.WriteString(app, msg); err != nil {
					return err
				}
				if err := app.Close(); err != nil {
					return err
				}
				if _, err := app.Wait(); err != nil {
					l.fail("append")
					continue
				}
				l.ack("append", user, token+"@"+user)
			}
			return c.Logout().Wait()
		}()
		if err != nil {
			l.fail("imap")
			crashStopWait(stop, 20*time.Millisecond)
		}
	}
}

// faultExpunger APPENDs scratch messages (not tracked), marks them
// \Deleted and removes them with UID EXPUNGE: expunges and their quota
// release run under the faults too, and tracked messages (never
// \Deleted) must survive them.
func faultExpunger(s *server, l *faultLedger, seq *atomic.Int64, user string, stop <-chan struct{}) {
	for !crashStopped(stop) {
		err := func() error {
			c, err := crashIMAPDial(s, user, false, 30*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			if _, err := c.Select("INBOX", nil).Wait(); err != nil {
				return err
			}
			for k := 0; k < 6 && !crashStopped(stop); k++ {
				i := seq.Add(1)
				msg := faultMessage(fmt.Sprintf("scratch%d", i), user, user, i)
				msg = strings.Replace(msg, "X-Crash-Token", "X-Scratch", 1)
				app := c.Append("INBOX", int64(len(msg)), nil)
				if _, err := io.WriteString(app, msg); err != nil {
					return err
				}
				if err := app.Close(); err != nil {
					return err
				}
				data, err := app.Wait()
				if err != nil || data.UID == 0 {
					l.fail("expunge")
					continue
				}
				uids := imap.UIDSetNum(data.UID)
				if _, err := c.Store(uids, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true,
					Flags: []imap.Flag{imap.FlagDeleted}}, nil).Collect(); err != nil {
					l.fail("expunge")
					continue
				}
				if _, err := c.UIDExpunge(uids).Collect(); err != nil {
					l.fail("expunge")
					continue
				}
				l.ack("expunge", user, "")
			}
			return c.Logout().Wait()
		}()
		if err != nil {
			l.fail("imap")
			crashStopWait(stop, 20*time.Millisecond)
		}
	}
}
