// Package pgproxy is a TCP proxy for tests that sits between a client and
// a PostgreSQL server and injects the failures that make a commit's
// outcome unknown: it forwards a COMMIT to the server, waits until the
// server has answered (so the transaction really is committed), drops the
// answer and closes the connection. It also drops whole connections at
// random.
//
// It parses just enough of the PostgreSQL frontend/backend protocol
// (version 3, https://www.postgresql.org/docs/current/protocol-message-formats.html)
// to see message boundaries and recognise COMMIT (or END), sent as a
// simple query ('Q') or through the extended protocol ('P' parse, 'B'
// bind, 'E' execute). SSL and GSS encryption requests are refused, so
// clients must use sslmode=disable or prefer.
//
// Only tests import it.
package pgproxy

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
)

// Proxy forwards connections from Addr to the target server.
type Proxy struct {
	ln     net.Listener
	target string

	mu          sync.Mutex
	dropCommits int        // COMMIT replies still to drop (DropNextCommits)
	commitProb  float64    // chaos: probability a COMMIT reply is dropped
	connProb    float64    // chaos: probability per client message that the connection is cut
	rng         *rand.Rand // guarded by mu
	conns       map[*pair]struct{}
	closed      bool

	droppedCommits atomic.Int64
	cutConns       atomic.Int64
	commits        atomic.Int64
	wg             sync.WaitGroup
}

// Start listens on 127.0.0.1 (a free port) and forwards to target
// ("host:port").
func Start(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("pgproxy: %w", err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[*pair]struct{}{}, rng: rand.New(rand.NewPCG(1, 2))}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's "127.0.0.1:port".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target returns host:port of a postgres:// URL DSN.
func Target(dsn string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("pgproxy: want a postgres:// URL, got %q", dsn)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "5432")
	}
	return host, nil
}

// DSN rewrites a postgres:// URL DSN to go through the proxy.
func (p *Proxy) DSN(dsn string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("pgproxy: want a postgres:// URL, got %q", dsn)
	}
	u.Host = p.Addr()
	return u.String(), nil
}

// DropNextCommits makes the proxy swallow the replies of the next n
// COMMITs (on any connection) after the server has answered them, and
// close those connections.
func (p *Proxy) DropNextCommits(n int) {
	p.mu.Lock()
	p.dropCommits = n
	p.mu.Unlock()
}

// Chaos sets the probability that a COMMIT's reply is dropped and the
// probability, per client message, that the connection is cut (before or
// after the message reaches the server), with a seed for repeatability.
// Chaos(0, 0, _) turns it off.
func (p *Proxy) Chaos(commitProb, connProb float64, seed uint64) {
	p.mu.Lock()
	p.commitProb, p.connProb = commitProb, connProb
	p.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	p.mu.Unlock()
}

// Stats reports the COMMITs seen, the COMMIT replies dropped and the
// connections cut at random so far.
func (p *Proxy) Stats() (commits, dropped, cut int64) {
	return p.commits.Load(), p.droppedCommits.Load(), p.cutConns.Load()
}

// CutAll closes every open connection.
func (p *Proxy) CutAll() {
	p.mu.Lock()
	all := make([]*pair, 0, len(p.conns))
	for c := range p.conns {
		all = append(all, c)
	}
	p.mu.Unlock()
	for _, c := range all {
		c.close()
	}
}

// Close stops listening and closes every connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	err := p.ln.Close()
	p.CutAll()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		pr := &pair{p: p, client: c, server: s}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			pr.close()
			return
		}
		p.conns[pr] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go pr.upstream()
		go pr.downstream()
	}
}

// decide draws the fate of one client message: cut the connection, drop
// the reply of a COMMIT.
func (p *Proxy) decide(isCommit bool) (cut, dropReply bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if isCommit {
		p.commits.Add(1)
		if p.dropCommits > 0 {
			p.dropCommits--
			return false, true
		}
		if p.commitProb > 0 && p.rng.Float64() < p.commitProb {
			return false, true
		}
	}
	if p.connProb > 0 && p.rng.Float64() < p.connProb {
		return true, false
	}
	return false, false
}

// pair is one proxied connection.
type pair struct {
	p              *Proxy
	client, server net.Conn
	once           sync.Once
	// dropping: a COMMIT went to the server whose reply must not reach
	// the client; downstream swallows everything up to ReadyForQuery
	// and then closes both ends.
	dropping atomic.Bool
}

func (c *pair) close() {
	c.once.Do(func() {
		c.client.Close()
		c.server.Close()
		c.p.mu.Lock()
		delete(c.p.conns, c)
		c.p.mu.Unlock()
	})
}

// Protocol codes of the untyped first message (PostgreSQL protocol 53.2).
const (
	codeSSLRequest    = 80877103
	codeGSSENCRequest = 80877104
)

// upstream copies client -> server message by message.
func (c *pair) upstream() {
	defer c.p.wg.Done()
	defer c.close()
	r := bufio.NewReader(c.client)
	// Startup phase: untyped messages until a StartupMessage.
	for {
		msg, err := readUntyped(r)
		if err != nil {
			return
		}
		code := binary.BigEndian.Uint32(msg[4:8])
		if code == codeSSLRequest || code == codeGSSENCRequest {
			if _, err := c.client.Write([]byte{'N'}); err != nil {
				return
			}
			continue
		}
		if _, err := c.server.Write(msg); err != nil {
			return
		}
		break
	}
	commitStmts := map[string]bool{}   // prepared statement name -> is COMMIT
	commitPortals := map[string]bool{} // portal name -> is COMMIT
	for {
		typ, msg, err := readTyped(r)
		if err != nil {
			return
		}
		isCommit := false
		body := msg[5:]
		switch typ {
		case 'Q':
			isCommit = isCommitSQL(cstring(body))
		case 'P':
			name := cstring(body)
			query := cstring(body[min(len(body), len(name)+1):])
			commitStmts[name] = isCommitSQL(query)
		case 'B':
			portal := cstring(body)
			stmt := cstring(body[min(len(body), len(portal)+1):])
			commitPortals[portal] = commitStmts[stmt]
		case 'E':
			isCommit = commitPortals[cstring(body)]
		case 'X':
			c.server.Write(msg)
			return
		}
		cut, drop := c.p.decide(isCommit)
		if cut && c.p.rng2() {
			// Cut before the server sees the message.
			c.p.cutConns.Add(1)
			return
		}
		if drop {
			c.dropping.Store(true)
		}
		if _, err := c.server.Write(msg); err != nil {
			return
		}
		if cut {
			// Cut after the server got the message: its outcome is
			// unknown to the client.
			c.p.cutConns.Add(1)
			return
		}
	}
}

// rng2 is a coin flip.
func (p *Proxy) rng2() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rng.IntN(2) == 0
}

// downstream copies server -> client, or swallows the reply of a dropped
// COMMIT.
func (c *pair) downstream() {
	defer c.p.wg.Done()
	defer c.close()
	r := bufio.NewReader(c.server)
	for {
		typ, msg, err := readTyped(r)
		if err != nil {
			return
		}
		if c.dropping.Load() {
			if typ == 'Z' { // ReadyForQuery: the server is done with COMMIT
				c.p.droppedCommits.Add(1)
				return
			}
			continue
		}
		if _, err := c.client.Write(msg); err != nil {
			return
		}
	}
}

// maxMessage bounds one protocol message (PostgreSQL's own limit for a
// field is 1 GB; tests move far less).
const maxMessage = 256 << 20

var errTooLarge = errors.New("pgproxy: message too large")

// readUntyped reads a startup-phase message (length, then body).
func readUntyped(r *bufio.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n < 8 || n > maxMessage {
		return nil, errTooLarge
	}
	msg := make([]byte, n)
	copy(msg, hdr[:])
	_, err := io.ReadFull(r, msg[4:])
	return msg, err
}

// readTyped reads a regular message: type byte, length (counting itself),
// body. msg is the whole message as it came.
func readTyped(r *bufio.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n < 4 || n > maxMessage {
		return 0, nil, errTooLarge
	}
	msg := make([]byte, 1+n)
	copy(msg, hdr[:])
	_, err := io.ReadFull(r, msg[5:])
	return hdr[0], msg, err
}

// cstring returns b up to its first NUL.
func cstring(b []byte) string {
	for i, x := range b {
		if x == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// isCommitSQL recognises COMMIT, COMMIT TRANSACTION/WORK and END, any
// case, with an optional semicolon.
func isCommitSQL(q string) bool {
	q = strings.ToLower(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(q), ";")))
	switch q {
	case "commit", "end", "commit transaction", "commit work", "end transaction", "end work":
		return true
	}
	return false
}
