// Package sinktest runs receiving SMTP and LMTP servers on loopback for
// tests of outbound delivery: a sink records every message it accepts and
// answers 4xx or 5xx on demand, per recipient, to MAIL or to DATA. It can
// offer STARTTLS or speak implicit TLS with a self-signed certificate, and
// require AUTH PLAIN or LOGIN.
package sinktest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Options configure a sink. The zero value is a plain SMTP sink on
// 127.0.0.1 with a random port.
type Options struct {
	Addr        string      // listen address; default "127.0.0.1:0"
	LMTP        bool        // speak LMTP (LHLO, one DATA reply per recipient)
	DSN         bool        // offer DSN (RFC 3461) and record its parameters
	TLS         *tls.Config // offer STARTTLS with this config (see Cert)
	ImplicitTLS bool        // TLS from the first byte (port 465 style); needs TLS
	// Users, when set, requires AUTH (PLAIN or LOGIN, as Mechanisms) with
	// one of these user -> password pairs before MAIL.
	Users      map[string]string
	Mechanisms []string // default PLAIN and LOGIN
	SMTPUTF8   bool     // advertise SMTPUTF8
	// REQUIRETLS: advertise REQUIRETLS (RFC 8689) after STARTTLS and
	// record the MAIL parameter.
	REQUIRETLS bool
	MaxSize    int64 // advertise SIZE with this limit and enforce it
	// Greeting, when set, replaces the whole server: every connection gets
	// this line (e.g. "421 4.3.2 busy") and is closed.
	Greeting string
	// Hold, when set, makes each DATA wait until it can receive from Hold
	// (or Hold is closed) before reading the message: deliveries in
	// progress pile up for MaxActive to count.
	Hold <-chan struct{}
}

// Message is one message a sink accepted.
type Message struct {
	From     string
	To       []string
	Data     []byte
	Helo     string // EHLO/LHLO name
	Remote   string // the client's address (host:port)
	TLS      bool   // the transaction ran over TLS
	TLSVer   uint16
	AuthUser string
	AuthMech string // PLAIN or LOGIN
	UTF8     bool   // MAIL had SMTPUTF8
	Body     string // MAIL BODY= value ("8BITMIME", "")
	Size     int64  // MAIL SIZE= value
	// RequireTLS: MAIL had REQUIRETLS (with Options.REQUIRETLS).
	RequireTLS bool
	// RFC 3461 parameters, with Options.DSN: RET, ENVID, and per
	// recipient "NOTIFY=... ORCPT=type;addr" as received.
	Ret, EnvID string
	RcptDSN    map[string]string
}

// Sink is a running server.
type Sink struct {
	// Addr is the host:port it listens on.
	Addr string

	opts Options
	srv  *smtp.Server
	ln   net.Listener

	mu        sync.Mutex
	msgs      []Message
	conns     int
	open      map[net.Conn]bool
	active    int
	maxActive int
	rcptErr   map[string]*smtp.SMTPError
	dataErr   map[string]*smtp.SMTPError // per recipient for LMTP; "" = all
	mailErr   *smtp.SMTPError
	authFail  int
}

// Start runs a sink until the test ends.
func Start(t testing.TB, o Options) *Sink {
	t.Helper()
	addr := o.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("sinktest: listen %s: %v", addr, err)
	}
	s := &Sink{Addr: ln.Addr().String(), opts: o, ln: ln,
		rcptErr: map[string]*smtp.SMTPError{}, dataErr: map[string]*smtp.SMTPError{}, open: map[net.Conn]bool{}}
	if o.Greeting != "" {
		go s.refuse()
		t.Cleanup(func() { ln.Close() })
		return s
	}
	s.ln = countingListener{Listener: ln, s: s}
	if o.ImplicitTLS {
		if o.TLS == nil {
			t.Fatal("sinktest: ImplicitTLS needs TLS")
		}
		s.ln = tls.NewListener(s.ln, o.TLS)
	}
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = "sink.test"
	srv.EnableDSN = o.DSN
	srv.LMTP = o.LMTP
	srv.EnableSMTPUTF8 = o.SMTPUTF8
	srv.EnableREQUIRETLS = o.REQUIRETLS
	srv.MaxMessageBytes = o.MaxSize
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	srv.ErrorLog = discardLogger{}
	if !o.ImplicitTLS {
		srv.TLSConfig = o.TLS
	}
	s.srv = srv
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(s.ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		// A Close before Serve registered the listener misses it (a
		// test that never connects ends that fast): closing it directly
		// ends Serve either way.
		ln.Close()
		<-done
	})
	return s
}

// Port is the port the sink listens on.
func (s *Sink) Port() int {
	_, p, _ := net.SplitHostPort(s.Addr)
	n, _ := strconv.Atoi(p)
	return n
}

// RcptReply makes RCPT TO:<rcpt> fail with the given reply.
func (s *Sink) RcptReply(rcpt string, code int, enhanced smtp.EnhancedCode, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rcptErr[rcpt] = &smtp.SMTPError{Code: code, EnhancedCode: enhanced, Message: msg}
}

// MailReply makes every MAIL FROM fail with the given reply.
func (s *Sink) MailReply(code int, enhanced smtp.EnhancedCode, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mailErr = &smtp.SMTPError{Code: code, EnhancedCode: enhanced, Message: msg}
}

// DataReply makes the reply to the final dot fail: for one recipient with
// LMTP, or for the whole message with SMTP (rcpt "").
func (s *Sink) DataReply(rcpt string, code int, enhanced smtp.EnhancedCode, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dataErr[rcpt] = &smtp.SMTPError{Code: code, EnhancedCode: enhanced, Message: msg}
}

// Messages returns the messages accepted so far.
func (s *Sink) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Conns is how many connections the sink has accepted.
func (s *Sink) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// Open is how many connections are open now.
func (s *Sink) Open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.open)
}

// DropConns closes every open connection from the server's side, as a
// server does after its idle timeout.
func (s *Sink) DropConns() {
	s.mu.Lock()
	var all []net.Conn
	for c := range s.open {
		all = append(all, c)
	}
	s.mu.Unlock()
	for _, c := range all {
		c.Close()
	}
}

// MaxActive is the most messages that were in DATA at the same time.
func (s *Sink) MaxActive() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxActive
}

// hold waits for opts.Hold, counting the DATA commands waiting.
func (s *Sink) hold() {
	if s.opts.Hold == nil {
		return
	}
	s.mu.Lock()
	s.active++
	s.maxActive = max(s.maxActive, s.active)
	s.mu.Unlock()
	<-s.opts.Hold
	s.mu.Lock()
	s.active--
	s.mu.Unlock()
}

// AuthFailures is how many AUTH attempts failed.
func (s *Sink) AuthFailures() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authFail
}

func (s *Sink) refuse() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns++
		s.mu.Unlock()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.WriteString(c, s.opts.Greeting+"\r\n")
		c.Close()
	}
}

func (s *Sink) newSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{sink: s, conn: c}, nil
}

// countingListener counts accepted connections and tracks the open ones.
type countingListener struct {
	net.Listener
	s *Sink
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, s: l.s}
	l.s.mu.Lock()
	l.s.conns++
	l.s.open[tc] = true
	l.s.mu.Unlock()
	return tc, nil
}

// trackedConn leaves the sink's open set when closed.
type trackedConn struct {
	net.Conn
	s *Sink
}

func (c *trackedConn) Close() error {
	c.s.mu.Lock()
	delete(c.s.open, c)
	c.s.mu.Unlock()
	return c.Conn.Close()
}

type session struct {
	sink *Sink
	conn *smtp.Conn
	user string
	mech string
	msg  Message
}

var (
	_ smtp.AuthSession = (*session)(nil)
	_ smtp.LMTPSession = (*session)(nil)
)

func (ss *session) AuthMechanisms() []string {
	if len(ss.sink.opts.Users) == 0 {
		return nil
	}
	if m := ss.sink.opts.Mechanisms; len(m) > 0 {
		return m
	}
	return []string{sasl.Plain, sasl.Login}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	check := func(user, pass string) error {
		want, ok := ss.sink.opts.Users[user]
		if !ok || want != pass {
			ss.sink.mu.Lock()
			ss.sink.authFail++
			ss.sink.mu.Unlock()
			return smtp.ErrAuthFailed
		}
		ss.user, ss.mech = user, mech
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(_, user, pass string) error { return check(user, pass) }), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	if len(ss.sink.opts.Users) > 0 && ss.user == "" {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	}
	ss.sink.mu.Lock()
	mailErr := ss.sink.mailErr
	ss.sink.mu.Unlock()
	if mailErr != nil {
		return mailErr
	}
	ss.msg = Message{From: from, Helo: ss.conn.Hostname(), AuthUser: ss.user, AuthMech: ss.mech,
		Remote: ss.conn.Conn().RemoteAddr().String()}
	if opts != nil {
		ss.msg.UTF8, ss.msg.Body, ss.msg.Size = opts.UTF8, string(opts.Body), opts.Size
		ss.msg.Ret, ss.msg.EnvID = string(opts.Return), opts.EnvelopeID
		ss.msg.RequireTLS = opts.RequireTLS
	}
	if st, ok := ss.conn.TLSConnectionState(); ok {
		ss.msg.TLS, ss.msg.TLSVer = true, st.Version
	}
	return nil
}

func (ss *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	ss.sink.mu.Lock()
	err := ss.sink.rcptErr[to]
	ss.sink.mu.Unlock()
	if err != nil {
		return err
	}
	ss.msg.To = append(ss.msg.To, to)
	if opts != nil && (len(opts.Notify) > 0 || opts.OriginalRecipient != "") {
		var n []string
		for _, v := range opts.Notify {
			n = append(n, string(v))
		}
		if ss.msg.RcptDSN == nil {
			ss.msg.RcptDSN = map[string]string{}
		}
		ss.msg.RcptDSN[to] = "NOTIFY=" + strings.Join(n, ",") + " ORCPT=" + string(opts.OriginalRecipientType) + ";" + opts.OriginalRecipient
	}
	return nil
}

func (ss *session) Data(r io.Reader) error {
	ss.sink.hold()
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.sink.mu.Lock()
	defer ss.sink.mu.Unlock()
	if e := ss.sink.dataErr[""]; e != nil {
		return e
	}
	m := ss.msg
	m.Data = data
	ss.sink.msgs = append(ss.sink.msgs, m)
	return nil
}

func (ss *session) LMTPData(r io.Reader, status smtp.StatusCollector) error {
	ss.sink.hold()
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.sink.mu.Lock()
	defer ss.sink.mu.Unlock()
	m := ss.msg
	m.Data, m.To = data, nil
	for _, rcpt := range ss.msg.To {
		if e := ss.sink.dataErr[rcpt]; e != nil {
			status.SetStatus(rcpt, e)
			continue
		}
		status.SetStatus(rcpt, nil)
		m.To = append(m.To, rcpt)
	}
	if len(m.To) > 0 {
		ss.sink.msgs = append(ss.sink.msgs, m)
	}
	return nil
}

func (ss *session) Reset()        { ss.msg = Message{} }
func (ss *session) Logout() error { return nil }

// loginServer is the server side of SASL LOGIN, which go-sasl lacks: it
// prompts "Username:" (unless the client sent it as initial response) and
// "Password:".
type loginServer struct {
	check func(user, pass string) error
	user  string
	state int
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	switch l.state {
	case 0:
		l.state = 1
		if len(resp) == 0 {
			return []byte("Username:"), false, nil
		}
		l.user, l.state = string(resp), 2
		return []byte("Password:"), false, nil
	case 1:
		l.user, l.state = string(resp), 2
		return []byte("Password:"), false, nil
	case 2:
		l.state = 3
		return nil, true, l.check(l.user, string(resp))
	}
	return nil, true, errors.New("unexpected LOGIN response")
}

// Cert returns a self-signed certificate for hosts (names or IP addresses),
// a server config with it, and a pool that trusts it.
func Cert(t testing.TB, hosts ...string) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: hosts[0]},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	cfg := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}}}
	return cfg, pool
}

// HasHeader reports whether the message data contains line (a quick check
// for tests; not a MIME parser).
func (m Message) HasHeader(line string) bool {
	return bytes.Contains(m.Data, []byte(line+"\r\n"))
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
func (discardLogger) Println(...any)        {}
