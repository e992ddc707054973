package relay

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/petrelmail/petrel/internal/queue"
	"github.com/petrelmail/petrel/internal/tlspolicy"
)

// target is one address to connect to.
type target struct {
	hop  nexthop
	host string          // the host name, for TLS, logs and Remote
	addr netip.AddrPort  // where to connect
	pol  *tlspolicy.Host // DANE, MTA-STS or fallback; nil outside MX delivery
	// rule names an RFC 8689 rule in force (REQUIRETLS, or TLS-Required:
	// No relaxing pol), for the log; "" = none.
	rule string
}

// implicitTLS: port 465 is TLS from the first byte for a configured next
// hop (RFC 8314 3.3; Mailu issue #2658 needed a Postfix override for it).
func (t target) implicitTLS() bool {
	return t.hop.kind != hopMX && !t.hop.lmtp && t.addr.Port() == 465
}

// accept is what the server that accepted a recipient said.
type accept struct {
	remote, reply string
	noDSN         bool // the server does not offer DSN
}

// deliverGroup delivers to the recipients of one next hop. It returns a
// result per recipient, or one error when nothing could be tried.
//
// Hosts are tried best first and each host's addresses in turn while the
// failure is temporary and nothing was sent: connect, greeting, EHLO, TLS,
// a 4xx to MAIL FROM. Recipients that one server deferred with 4xx are
// offered to the next one too, up to MaxSessions transactions (Postfix
// smtp_mx_session_limit). After the final dot nothing is retried elsewhere:
// a lost reply may hide a delivery.
func (c *Client) deliverGroup(ctx context.Context, m *queue.Message, g *group, accepted map[string]accept) (map[string]error, *queue.DeliveryError) {
	if m.RequireTLS {
		if de := c.requireTLSHop(g.hop); de != nil {
			c.logResult(m, g.hop, target{rule: "REQUIRETLS (RFC 8689)"}, nil, de)
			return nil, de
		}
	}
	hosts, de := c.hosts(ctx, g.hop)
	if de != nil {
		c.logResult(m, g.hop, target{}, nil, de)
		return nil, de
	}
	port := g.hop.port
	if port == 0 {
		port = c.port
	}
	// DANE and MTA-STS apply to MX deliveries (Mailu: smtp_tls_policy_maps).
	var dom *tlspolicy.Domain
	if c.tlsp != nil && g.hop.kind == hopMX && !isIP(g.hop.host) {
		dom = c.tlsp.ForDomain(ctx, g.hop.host)
	}
	results := map[string]error{}
	pending := g.rcpts // unique: Deliver drops repeated recipients
	var lastErr *queue.DeliveryError
	tried, sessions := 0, 0
hosts:
	for _, h := range hosts {
		var pol *tlspolicy.Host
		rule := ""
		if dom != nil {
			p, err := c.tlsp.ForHost(ctx, dom, h.name, port)
			switch {
			case err != nil && tlsOptional(m):
				// RFC 8689 5: the sender waived DANE and MTA-STS.
				c.tlsp.Refused(dom, h.name, err)
				p = tlspolicy.Relaxed(h.name, "refusal ("+err.Error()+")")
				rule = "TLS-Required: No"
				c.log.Info("relay: MX host refused by TLS policy; delivering anyway (TLS-Required: No, RFC 8689 5)", "msgid", m.ID,
					"nexthop", g.hop.String(), "host", h.name, "error", err.Error())
			case err != nil:
				// Refused by policy: the next MX may do (RFC 7672 2.2.2,
				// RFC 8461 4.1); if none does, the mail is deferred.
				c.tlsp.Refused(dom, h.name, err)
				lastErr = &queue.DeliveryError{Enhanced: "4.7.5", Message: "not delivering to " + h.name + ": " + err.Error(), Remote: h.name}
				c.log.Info("relay: MX host refused by TLS policy", "msgid", m.ID, "nexthop", g.hop.String(), "host", h.name, "error", err.Error())
				continue
			case m.RequireTLS:
				ok, why := p.Validated()
				if !ok {
					// RFC 8689 4.2.1: only a host found and verified
					// through DANE or MTA-STS; another MX may qualify.
					lastErr = &queue.DeliveryError{Permanent: true, Enhanced: "5.7.30",
						Message: "REQUIRETLS support required: " + h.name + " cannot be validated: " + why, Remote: h.name}
					c.log.Info("relay: MX host not usable for REQUIRETLS (RFC 8689 4.2.1)", "msgid", m.ID, "nexthop", g.hop.String(),
						"host", h.name, "tls_policy", p.Kind.String(), "why", why)
					continue
				}
				rule = "REQUIRETLS (RFC 8689): " + why + "; the server must offer REQUIRETLS"
			case p.RequireTLS() && p.RecipientPolicy() && tlsOptional(m):
				p = tlspolicy.Relaxed(h.name, p.Reason)
				rule = "TLS-Required: No"
			}
			pol = p
		}
		addrs, de := c.addrs(ctx, g.hop, h.name)
		if de != nil {
			lastErr = de
			continue
		}
		for _, a := range addrs {
			if tried >= c.maxAddrs || ctx.Err() != nil {
				break hosts
			}
			tried++
			t := target{hop: g.hop, host: h.name, addr: netip.AddrPortFrom(a, uint16(port)), pol: pol, rule: rule}
			res, aerr, s := c.attempt(ctx, m, t, pending)
			if s.transacted {
				sessions++
			}
			var next []string
			for _, r := range pending {
				if err, ok := res[r]; ok {
					results[r] = err
					if err == nil {
						accepted[r] = accept{remote: t.remote(), reply: s.replies[r], noDSN: !s.dsn}
					}
					if err != nil && !permanent(err) {
						next = append(next, r)
					}
					continue
				}
				// Not decided in this session: its error applies, unless an
				// earlier server's reply for r says more.
				if results[r] == nil {
					results[r] = sessionErr(aerr)
				}
				next = append(next, r)
			}
			pending = next
			if aerr != nil {
				lastErr = aerr.de
				if aerr.stop {
					break hosts
				}
			}
			if len(pending) == 0 || sessions >= c.maxSess {
				break hosts
			}
		}
	}
	if tried == 0 {
		if lastErr == nil && ctx.Err() != nil {
			lastErr = localError(fmt.Errorf("delivery interrupted: %w", ctx.Err()), "")
		}
		if lastErr == nil {
			lastErr = &queue.DeliveryError{Enhanced: "4.4.4", Message: "no address to deliver to"}
		}
		c.logResult(m, g.hop, target{}, nil, lastErr)
		return nil, lastErr
	}
	if sessions == 0 && lastErr != nil {
		// No server took part in a transaction: one error for all.
		return nil, lastErr
	}
	return results, nil
}

// tlsOptional: the message waives DANE and MTA-STS failures (RFC 8689 5).
func tlsOptional(m *queue.Message) bool {
	return !m.RequireTLS && m.TLSRequiredNo != nil && m.TLSRequiredNo()
}

// requireTLSHop refuses a next hop that cannot carry a message sent with
// REQUIRETLS (RFC 8689 4.2.1): only MX hosts validated by DANE or
// MTA-STS, or RELAYHOST with its certificate verified, can. The refusal
// is permanent: the sender gets the message back (5.7.30), it is never
// sent without the TLS it asked for.
func (c *Client) requireTLSHop(h nexthop) *queue.DeliveryError {
	refuse := func(why string) *queue.DeliveryError {
		return &queue.DeliveryError{Permanent: true, Enhanced: "5.7.30", Message: "REQUIRETLS support required: " + why}
	}
	switch {
	case h.kind == hopRelayHost && c.noVerify:
		return refuse("RELAYHOST " + h.host + " is used without certificate verification (RELAYHOST_TLS_VERIFY=false)")
	case h.kind == hopTransport:
		return refuse("the transport of relay domain mail (" + h.String() + ") is not verified by DANE or MTA-STS")
	case h.kind == hopMX && (isIP(h.host) || c.tlsp == nil):
		return refuse("no DANE or MTA-STS validation for " + h.host)
	}
	return nil
}

// attempt runs one session, retrying once without TLS when opportunistic
// STARTTLS failed in the handshake.
func (c *Client) attempt(ctx context.Context, m *queue.Message, t target, rcpts []string) (map[string]error, *attemptError, *session) {
	s := &session{c: c, m: m, t: t}
	res, aerr := s.run(ctx, rcpts)
	if aerr != nil && aerr.plainRetry && ctx.Err() == nil {
		c.log.Debug("relay: retrying without TLS", "msgid", m.ID, "host", t.host, "addr", t.addr.String(), "error", aerr.de.Message)
		s = &session{c: c, m: m, t: t, noTLS: true}
		res, aerr = s.run(ctx, rcpts)
	}
	c.logResult(m, t.hop, t, s, errOf(aerr))
	return res, aerr, s
}

// sessionErr is the error for recipients a session left undecided.
func sessionErr(a *attemptError) error {
	if a == nil {
		return &queue.DeliveryError{Enhanced: "4.4.2", Message: "session ended without a reply for this recipient"}
	}
	return a.de
}

func errOf(a *attemptError) *queue.DeliveryError {
	if a == nil {
		return nil
	}
	return a.de
}

// logResult writes the one INFO line per attempt.
func (c *Client) logResult(m *queue.Message, hop nexthop, t target, s *session, de *queue.DeliveryError) {
	attrs := []any{"msgid", m.ID, "nexthop", hop.String()}
	switch {
	case t.rule != "":
		attrs = append(attrs, "tls_rule", t.rule)
	case m.RequireTLS && hop.kind == hopRelayHost:
		attrs = append(attrs, "tls_rule", "REQUIRETLS (RFC 8689): verified TLS to RELAYHOST, which must offer REQUIRETLS")
	}
	if t.host != "" {
		attrs = append(attrs, "host", t.host, "addr", t.addr.String())
	}
	switch {
	case t.pol != nil:
		attrs = append(attrs, "tls_policy", t.pol.Kind.String(), "tls_policy_reason", t.pol.Reason)
	case t.host != "" && hop.kind == hopRelayHost && c.noVerify:
		attrs = append(attrs, "tls_policy", "encrypt-unverified", "tls_policy_reason", "RELAYHOST_TLS_VERIFY=false: STARTTLS when offered, certificate not verified")
	case t.host != "" && hop.kind == hopRelayHost:
		attrs = append(attrs, "tls_policy", "verify", "tls_policy_reason", "RELAYHOST: certificate verified (system CAs and RELAYHOST_CA_FILE)")
	case t.host != "" && !hop.lmtp:
		attrs = append(attrs, "tls_policy", "may", "tls_policy_reason", "STARTTLS when offered, certificate not verified")
	}
	if s != nil {
		attrs = append(attrs, "tls", s.tlsVersion, "accepted", s.accepted, "refused", s.refused)
		if s.reply != "" {
			attrs = append(attrs, "reply", s.reply)
		}
	}
	if de != nil {
		attrs = append(attrs, "error", de.Error(), "permanent", de.Permanent)
		c.log.Info("relay: attempt failed", attrs...)
		return
	}
	c.log.Info("relay: attempt done", attrs...)
}

// remote names the server in errors and the DSN's Remote-MTA.
func (t target) remote() string {
	if t.host != "" {
		return t.host
	}
	return t.addr.Addr().String()
}
