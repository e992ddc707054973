package relay

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"time"

	"github.com/emersion/go-sasl"
)

// deadlineConn bounds every write with a deadline: go-smtp sets deadlines
// around commands but not while the body is streamed, and a peer that stops
// reading must not hold a delivery forever (RFC 5321 4.5.3.2.5: 3 minutes
// per data block).
type deadlineConn struct {
	net.Conn
	write time.Duration
}

func (d *deadlineConn) Write(p []byte) (int, error) {
	if err := d.Conn.SetWriteDeadline(time.Now().Add(d.write)); err != nil {
		return 0, err
	}
	return d.Conn.Write(p)
}

// greetedConn replays a synthetic 220 greeting before the real stream.
// go-smtp v0.25 offers STARTTLS only through NewClientStartTLS, which says
// "EHLO localhost" first and gives up when STARTTLS is not offered; so
// Petrel sends STARTTLS itself and hands go-smtp the encrypted connection,
// which it expects to begin with a greeting.
type greetedConn struct {
	net.Conn
	pending []byte
}

func (g *greetedConn) Read(p []byte) (int, error) {
	if len(g.pending) > 0 {
		n := copy(p, g.pending)
		g.pending = g.pending[n:]
		return n, nil
	}
	return g.Conn.Read(p)
}

// oneByteReader reads one byte per call, so that reading the STARTTLS reply
// cannot swallow the first bytes of the TLS handshake.
type oneByteReader struct{ r io.Reader }

func (o oneByteReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}

// startTLS sends STARTTLS on conn, whose earlier replies go-smtp has fully
// read (it reads reply by reply, and a server that pipelines anything before
// our STARTTLS is ignored: RFC 3207 5, the plaintext injection attack), then
// runs the TLS handshake.
func startTLS(ctx context.Context, conn net.Conn, cfg *tls.Config, cmdTimeout, hsTimeout time.Duration) (*tls.Conn, error) {
	if err := conn.SetDeadline(time.Now().Add(cmdTimeout)); err != nil {
		return nil, err
	}
	if _, err := io.WriteString(conn, "STARTTLS\r\n"); err != nil {
		return nil, fmt.Errorf("STARTTLS: %w", err)
	}
	tr := textproto.NewReader(bufio.NewReaderSize(oneByteReader{conn}, 16))
	_, _, err := tr.ReadResponse(220)
	if err != nil {
		return nil, fmt.Errorf("STARTTLS: %w", replyErr(err))
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	return handshake(ctx, conn, cfg, hsTimeout)
}

func handshake(ctx context.Context, conn net.Conn, cfg *tls.Config, timeout time.Duration) (*tls.Conn, error) {
	tc := tls.Client(conn, cfg)
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	return tc, nil
}

// replyErr turns a textproto reply error into go-smtp's SMTPError, so that
// every SMTP reply is mapped by the same code.
func replyErr(err error) error {
	var te *textproto.Error
	if errors.As(err, &te) {
		return parseReply(te.Code, te.Msg)
	}
	return err
}

// loginClient is SASL LOGIN as Postfix and most MUAs speak it: no initial
// response, then the user name and the password in answer to the server's
// two prompts, whatever their text ("Username:", "Password:", or localized
// ones; go-sasl's client insists on the exact text "Password:").
type loginClient struct {
	user, pass string
	step       int
}

var _ sasl.Client = (*loginClient)(nil)

func (l *loginClient) Start() (string, []byte, error) { return sasl.Login, nil, nil }

func (l *loginClient) Next([]byte) ([]byte, error) {
	l.step++
	switch l.step {
	case 1:
		return []byte(l.user), nil
	case 2:
		return []byte(l.pass), nil
	}
	return nil, errors.New("relay: unexpected LOGIN challenge")
}
