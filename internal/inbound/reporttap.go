package inbound

import (
	"bytes"
	"io"
	"slices"

	"github.com/petrelmail/petrel/internal/store"
)

// ReportTap hands messages delivered to a reporting address (TLSRPT_RUA,
// RFC 8460) to a parser that runs elsewhere (internal/tlsrptin).
type ReportTap struct {
	// Addrs are the reporting addresses, normalised (lower case); a
	// local route whose RCPT is one of them, and that reached a mailbox,
	// hands the message over.
	Addrs []string
	// Take receives the message id, the address and a way to read the
	// stored message. It runs after the commit and before the client's
	// 250, so it must not block (queue and return); the message is in
	// the mailbox whatever it does.
	Take func(msgID, rcpt string, open func() (io.ReadCloser, error))
}

// tapReports offers m to the report tap once if one of env's local
// routes is a reporting address.
func (d *Deliverer) tapReports(env *Envelope, m *store.NewMessage) {
	t := d.tap
	if t == nil || t.Take == nil {
		return
	}
	for _, r := range env.Routes {
		if r.Kind != RouteLocal || len(r.Mailboxes) == 0 || !slices.Contains(t.Addrs, r.Rcpt) {
			continue
		}
		body, name, blobs := m.Body, m.BlobName, d.blobs
		t.Take(env.ID, r.Rcpt, func() (io.ReadCloser, error) {
			if name != "" {
				return blobs.Open(name)
			}
			return io.NopCloser(bytes.NewReader(body)), nil
		})
		return
	}
}
