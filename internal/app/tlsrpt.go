package app

import (
	"io"
	"strings"

	"github.com/petrelmail/petrel/internal/config"
	"github.com/petrelmail/petrel/internal/inbound"
	"github.com/petrelmail/petrel/internal/mailaddr"
	"github.com/petrelmail/petrel/internal/tlsrptin"
)

// tlsrptAddr is the reporting address of the _smtp._tls record petrel
// dns suggests (TLSRPT_RUA at DOMAIN), or "" when there is none.
func tlsrptAddr(cfg *config.Config) string {
	if cfg.TLSRPTRUA == "" || cfg.Domain == "" {
		return ""
	}
	d, err := mailaddr.NormalizeDomain(cfg.Domain)
	if err != nil {
		return ""
	}
	return strings.ToLower(cfg.TLSRPTRUA) + "@" + d
}

// newTLSRPTReceiver builds the parser of received TLS-RPT reports, nil
// without a reporting address.
func newTLSRPTReceiver(cfg *config.Config, p *parts) *tlsrptin.Receiver {
	if tlsrptAddr(cfg) == "" {
		return nil
	}
	return tlsrptin.New(tlsrptin.Options{
		Store:           p.store,
		Logger:          p.log.With("part", "tlsrpt"),
		MaxMessageBytes: cfg.MessageSizeLimit + 64<<10, // the message plus the headers added on delivery
	})
}

// reportTap hands mail delivered to the reporting address to the
// receiver, which parses it in the background.
func (p *parts) reportTap() *inbound.ReportTap {
	if p.tlsrpt == nil {
		return nil
	}
	r := p.tlsrpt
	return &inbound.ReportTap{
		Addrs: []string{tlsrptAddr(p.cfg)},
		Take: func(msgID, rcpt string, open func() (io.ReadCloser, error)) {
			r.Offer(msgID, rcpt, open)
		},
	}
}
