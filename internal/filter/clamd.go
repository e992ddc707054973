package filter

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// DefaultClamdPort is clamd's TCPSocket in Mailu (ANTIVIRUS_ADDRESS
// antivirus:3310); DefaultClamdTimeout is rspamd's antivirus.conf timeout
// in Mailu (60 s) shortened: a message waits for it inside DATA.
const (
	DefaultClamdPort    = "3310"
	DefaultClamdTimeout = 30 * time.Second
	clamdChunk          = 64 << 10
)

// ErrClamdSizeLimit: clamd refused the stream as larger than its
// StreamMaxLength.
var ErrClamdSizeLimit = errors.New("clamd: INSTREAM size limit exceeded")

// ClamdClient scans messages with clamd's INSTREAM command over TCP (or a
// Unix socket when Address starts with "/"). It is safe for concurrent
// use; each scan uses its own connection.
type ClamdClient struct {
	network, addr string
	timeout       time.Duration
}

// NewClamdClient returns a client for ANTIVIRUS_ADDRESS (host[:port],
// default port 3310, or a Unix socket path).
func NewClamdClient(address string, timeout time.Duration) (*ClamdClient, error) {
	if timeout <= 0 {
		timeout = DefaultClamdTimeout
	}
	if strings.HasPrefix(address, "/") {
		return &ClamdClient{network: "unix", addr: address, timeout: timeout}, nil
	}
	a, err := withDefaultPort(address, DefaultClamdPort)
	if err != nil {
		return nil, fmt.Errorf("filter: ANTIVIRUS_ADDRESS: %w", err)
	}
	return &ClamdClient{network: "tcp", addr: a, timeout: timeout}, nil
}

func (c *ClamdClient) dial(ctx context.Context) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err := d.DialContext(ctx, c.network, c.addr)
	if err != nil {
		return nil, fmt.Errorf("clamd: %w", err)
	}
	dl := time.Now().Add(c.timeout)
	if t, ok := ctx.Deadline(); ok && t.Before(dl) {
		dl = t
	}
	_ = conn.SetDeadline(dl)
	// Close the connection when ctx ends, so a stuck clamd cannot hold
	// the SMTP session past its context.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	return &stopConn{Conn: conn, stop: stop}, nil
}

type stopConn struct {
	net.Conn
	stop func() bool
}

func (c *stopConn) Close() error { c.stop(); return c.Conn.Close() }

// Ping sends zPING and expects PONG.
func (c *ClamdClient) Ping(ctx context.Context) error {
	conn, err := c.dial(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("zPING\x00")); err != nil {
		return fmt.Errorf("clamd: %w", err)
	}
	reply, err := readReply(conn)
	if err != nil {
		return err
	}
	if reply != "PONG" {
		return fmt.Errorf("clamd: unexpected PING reply %q", reply)
	}
	return nil
}

// Scan streams r to clamd (zINSTREAM: chunks of a 4-byte big-endian length
// and data, then a zero length) and returns the virus name, "" when clean.
func (c *ClamdClient) Scan(ctx context.Context, r io.Reader) (virus string, err error) {
	conn, err := c.dial(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	w := bufio.NewWriterSize(conn, clamdChunk+4)
	if _, err := w.WriteString("zINSTREAM\x00"); err != nil {
		return "", fmt.Errorf("clamd: %w", err)
	}
	buf := make([]byte, clamdChunk)
	var hdr [4]byte
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			binary.BigEndian.PutUint32(hdr[:], uint32(n))
			w.Write(hdr[:])
			if _, err := w.Write(buf[:n]); err != nil {
				// clamd closes early when the stream passes its
				// StreamMaxLength; its reply says so.
				if reply, rerr := readReply(conn); rerr == nil {
					return parseScanReply(reply)
				}
				return "", fmt.Errorf("clamd: %w", err)
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return "", fmt.Errorf("clamd: read message: %w", rerr)
		}
	}
	binary.BigEndian.PutUint32(hdr[:], 0)
	w.Write(hdr[:])
	if err := w.Flush(); err != nil {
		if reply, rerr := readReply(conn); rerr == nil {
			return parseScanReply(reply)
		}
		return "", fmt.Errorf("clamd: %w", err)
	}
	reply, err := readReply(conn)
	if err != nil {
		return "", err
	}
	return parseScanReply(reply)
}

// readReply reads one NUL-terminated reply (z-prefixed commands).
func readReply(conn net.Conn) (string, error) {
	br := bufio.NewReaderSize(io.LimitReader(conn, 4096), 4096)
	s, err := br.ReadString(0)
	if err != nil && !(errors.Is(err, io.EOF) && s != "") {
		return "", fmt.Errorf("clamd: read reply: %w", err)
	}
	return strings.TrimRight(s, "\x00\r\n"), nil
}

// parseScanReply reads "stream: OK", "stream: Name FOUND" or "... ERROR".
func parseScanReply(reply string) (string, error) {
	body := strings.TrimPrefix(reply, "stream: ")
	switch {
	case body == "OK":
		return "", nil
	case strings.HasSuffix(body, " FOUND"):
		name := strings.TrimSpace(strings.TrimSuffix(body, " FOUND"))
		if name == "" {
			name = "unknown"
		}
		return name, nil
	case strings.Contains(body, "size limit exceeded"):
		return "", ErrClamdSizeLimit
	default:
		return "", fmt.Errorf("clamd: %q", reply)
	}
}
