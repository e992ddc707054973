// Package submit prepares the content of a message a user submits (port 465,
// or 587 after STARTTLS) before it is delivered or queued, doing what
// Mailu's Postfix (the outclean cleanup service) and rspamd do on that path:
//
//   - client-identifying header fields are removed (outclean_header_filter.cf):
//     Received, User-Agent, X-Mailer, X-Originating-IP, X-Enigmail,
//     X-Pgp-Agent, and a comment after the MIME-Version;
//   - Message-ID and Date are added when missing (RFC 6409 8.2, 8.3);
//   - the message is DKIM-signed when its From domain is a local domain or an
//     alternative (rspamd dkim_signing with Mailu's vault).
//
// Only the message's own header is rewritten; the header fields of attached
// messages and MIME parts are left as they are. Memory is bounded: the
// header is held (at most MaxHeaderBytes), the body streams, and a message
// to sign is spooled to a temporary file when it is large.
package submit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/petrelmail/petrel/internal/msgauth"
)

// DefaultMemoryLimit is the size up to which a message is signed from
// memory; larger ones go to a temporary file.
const DefaultMemoryLimit = 1 << 20

// Signers picks the DKIM signer for a From domain. *msgauth.Signers
// implements it; an error for which msgauth.Unsigned is true means the
// message goes out unsigned.
type Signers interface {
	SignerFor(ctx context.Context, fromDomain string) (*msgauth.Signer, error)
}

// Options configure a Preparer.
type Options struct {
	// Signers signs messages from local domains; nil: no DKIM signing.
	Signers Signers
	// Hostname is the first HOSTNAMES entry, the right side of the
	// Message-IDs Prepare makes ("localhost" when empty).
	Hostname string
	Now      func() time.Time // nil: time.Now
	// NewMessageID returns the left side of a new Message-ID; nil: the
	// time and 64 random bits, as "20250304050607.1a2b3c4d5e6f7081".
	NewMessageID func() string
	// TempDir holds messages being signed that are larger than
	// MemoryLimit; "": the system's temporary directory.
	TempDir string
	// MemoryLimit: messages up to this many bytes are signed from
	// memory; 0: DefaultMemoryLimit.
	MemoryLimit int64
	Logger      *slog.Logger // nil: discard
}

// Meta describes the submission, for the log.
type Meta struct {
	User   string // the authenticated login
	Sender string // the envelope sender
	ID     string // Petrel's message id (msgid in the log)
}

// Preparer rewrites and signs submitted messages. It holds no mutable state
// and is safe for concurrent use.
type Preparer struct {
	opts Options
	log  *slog.Logger
}

// New returns a Preparer.
func New(opts Options) *Preparer {
	if opts.Hostname == "" {
		opts.Hostname = "localhost"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MemoryLimit <= 0 {
		opts.MemoryLimit = DefaultMemoryLimit
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Preparer{opts: opts, log: opts.Logger}
}

// Prepare reads a submitted message from src and writes the prepared
// message to dst. A header larger than MaxHeaderBytes gives
// ErrHeaderTooLarge. Errors reading src are returned wrapped, so the
// caller can tell the client's fault (errors.Is) from a local one. A
// failure to look up the signing domain is an error (the message is not
// sent unsigned because the database was down).
func (p *Preparer) Prepare(ctx context.Context, src io.Reader, dst io.Writer, meta Meta) error {
	br := bufio.NewReaderSize(&ctxReader{ctx: ctx, r: src}, 32<<10)
	h, err := readHeader(br)
	if err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	var head bytes.Buffer
	p.writeHeader(&head, h)
	body := io.MultiReader(&head, bytes.NewReader(h.rest), br)

	signer, err := p.signer(ctx, h, meta)
	if err != nil {
		return err
	}
	if signer == nil {
		if _, err := io.Copy(dst, body); err != nil {
			return fmt.Errorf("submit: %w", err)
		}
		return nil
	}
	return p.sign(ctx, signer, body, dst)
}

// writeHeader writes the cleaned header, the added fields and the empty
// line that ends the header, all with CRLF line ends.
func (p *Preparer) writeHeader(w *bytes.Buffer, h *header) {
	for _, f := range h.fields {
		switch {
		case scrubbed(f.name):
			continue
		case strings.EqualFold(f.name, "MIME-Version"):
			if i := mimeVersionCut(f.raw); i >= 0 {
				writeCRLF(w, f.raw[:i])
				continue
			}
		}
		writeCRLF(w, f.raw)
	}
	// RFC 6409 8.3 and 8.2: the MSA adds what the client left out
	// (Postfix cleanup does the same).
	if !h.has("Message-ID") {
		fmt.Fprintf(w, "Message-ID: <%s@%s>\r\n", p.messageID(), p.opts.Hostname)
	}
	if !h.has("Date") {
		// RFC 5322 3.3 date-time.
		fmt.Fprintf(w, "Date: %s\r\n", p.opts.Now().Format("Mon, 2 Jan 2006 15:04:05 -0700"))
	}
	// RFC 5322 2.1: an empty line separates header and body, also when
	// the client left it out or sent no body.
	w.WriteString("\r\n")
}

// writeCRLF writes the lines of a header field with CRLF line ends (RFC
// 5322 2.1), also the last one when the message ended inside the header.
func writeCRLF(w *bytes.Buffer, raw []byte) {
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		w.Write(bytes.TrimSuffix(line, []byte("\r")))
		w.WriteString("\r\n")
	}
}

func (p *Preparer) messageID() string {
	if p.opts.NewMessageID != nil {
		return p.opts.NewMessageID()
	}
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24)
	return p.opts.Now().UTC().Format("20060102150405") + "." + hex.EncodeToString(b[:])
}

// signer returns the DKIM signer for the message's From domain, or nil
// when it goes out unsigned.
func (p *Preparer) signer(ctx context.Context, h *header, meta Meta) (*msgauth.Signer, error) {
	if p.opts.Signers == nil {
		return nil, nil
	}
	from, ok := h.get("From")
	if !ok {
		p.unsigned(meta, msgauth.ErrNoFrom)
		return nil, nil
	}
	domain, err := msgauth.FromDomain(strings.TrimSpace(from))
	if err != nil {
		p.unsigned(meta, err)
		return nil, nil
	}
	s, err := p.opts.Signers.SignerFor(ctx, domain)
	if msgauth.Unsigned(err) {
		p.unsigned(meta, err)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("submit: %w", err)
	}
	return s, nil
}

func (p *Preparer) unsigned(meta Meta, why error) {
	p.log.Debug("not DKIM-signed", "msgid", meta.ID, "user", meta.User, "from", meta.Sender, "reason", why.Error())
}

// sign signs in one pass over the client's data: the message goes to a
// spool (memory, then a temporary file) while go-msgauth hashes it, then
// the DKIM-Signature field and the spool go to dst.
func (p *Preparer) sign(ctx context.Context, s *msgauth.Signer, msg io.Reader, dst io.Writer) error {
	sp := &spool{dir: p.opts.TempDir, limit: p.opts.MemoryLimit}
	defer sp.close()
	tee := io.TeeReader(msg, sp)
	sig, err := s.Signature(ctx, tee)
	if err == nil {
		// Signature stops at the end of the message, but a reader that
		// gives data and io.EOF separately leaves nothing behind.
		_, err = io.Copy(io.Discard, tee)
	}
	if err != nil {
		if sp.err != nil {
			return fmt.Errorf("submit: spool: %w", sp.err)
		}
		return fmt.Errorf("submit: %w", err)
	}
	if sp.err != nil {
		return fmt.Errorf("submit: spool: %w", sp.err)
	}
	if _, err := io.WriteString(dst, sig); err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	r, err := sp.reader()
	if err != nil {
		return fmt.Errorf("submit: spool: %w", err)
	}
	if _, err := io.Copy(dst, &ctxReader{ctx: ctx, r: r}); err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	return nil
}

// ctxReader stops a long copy when the context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(b)
}
