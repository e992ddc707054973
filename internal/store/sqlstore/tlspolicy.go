package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

var _ store.TLSPolicies = (*Store)(nil)

// GetMTASTSPolicy implements store.TLSPolicies.
func (s *Store) GetMTASTSPolicy(ctx context.Context, domain string) (*store.MTASTSPolicy, error) {
	p := &store.MTASTSPolicy{Domain: domain}
	err := s.readConn().queryRow(ctx, `SELECT policy_id, policy, fetched_at, expires_at FROM mta_sts_policy WHERE domain = ?`, domain).
		Scan(&p.ID, &p.Text, scanTime(&p.FetchedAt), scanTime(&p.Expires))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: get MTA-STS policy of %s: %w", domain, err)
	}
	return p, nil
}

// PutMTASTSPolicy implements store.TLSPolicies.
func (s *Store) PutMTASTSPolicy(ctx context.Context, p store.MTASTSPolicy) error {
	err := s.withTx(ctx, func(c conn) error {
		_, err := c.exec(ctx, `INSERT INTO mta_sts_policy (domain, policy_id, policy, fetched_at, expires_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (domain) DO UPDATE SET policy_id = excluded.policy_id, policy = excluded.policy,
fetched_at = excluded.fetched_at, expires_at = excluded.expires_at`,
			p.Domain, p.ID, p.Text, s.d.ts(p.FetchedAt), s.d.ts(p.Expires))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlstore: put MTA-STS policy of %s: %w", p.Domain, err)
	}
	return nil
}

const addTLSResult = `INSERT INTO tls_result (day, policy_domain, policy_type, mx_host, result_type, sending_ip, receiving_ip, policy_string, detail, n)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (day, policy_domain, policy_type, mx_host, result_type, sending_ip, receiving_ip)
DO UPDATE SET n = tls_result.n + excluded.n, policy_string = excluded.policy_string, detail = excluded.detail`

// AddTLSResults implements store.TLSPolicies.
func (s *Store) AddTLSResults(ctx context.Context, rs []store.TLSResult) error {
	if len(rs) == 0 {
		return nil
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		err = s.withTx(ctx, func(c conn) error {
			for _, r := range rs {
				if _, err := c.exec(ctx, addTLSResult, dateArg(r.Day), r.PolicyDomain, r.PolicyType, r.MXHost, r.ResultType,
					r.SendingIP, r.ReceivingIP, r.PolicyString, r.Detail, r.Count); err != nil {
					return err
				}
			}
			return nil
		})
		if !retryable(err) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("sqlstore: add TLS results: %w", err)
	}
	return nil
}

// TLSResults implements store.TLSPolicies.
func (s *Store) TLSResults(ctx context.Context, day time.Time) ([]store.TLSResult, error) {
	d := time.Date(day.UTC().Year(), day.UTC().Month(), day.UTC().Day(), 0, 0, 0, 0, time.UTC)
	return list(ctx, s.readConn(), "TLS results", func(sc interface{ Scan(...any) error }) (store.TLSResult, error) {
		r := store.TLSResult{Day: d}
		err := sc.Scan(&r.PolicyDomain, &r.PolicyType, &r.MXHost, &r.ResultType, &r.SendingIP, &r.ReceivingIP,
			&r.PolicyString, &r.Detail, &r.Count)
		return r, err
	}, `SELECT policy_domain, policy_type, mx_host, result_type, sending_ip, receiving_ip, policy_string, detail, n
FROM tls_result WHERE day = ? ORDER BY policy_domain, policy_type, mx_host, result_type, sending_ip, receiving_ip`, dateArg(d))
}

// PruneTLSResults implements store.TLSPolicies.
func (s *Store) PruneTLSResults(ctx context.Context, before time.Time) error {
	err := s.withTx(ctx, func(c conn) error {
		if _, err := c.exec(ctx, `DELETE FROM tls_result WHERE day < ?`, dateArg(before)); err != nil {
			return err
		}
		_, err := c.exec(ctx, `DELETE FROM tls_report_sent WHERE day < ?`, dateArg(before))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlstore: prune TLS results: %w", err)
	}
	return nil
}

// ClaimTLSReport implements store.TLSPolicies.
func (s *Store) ClaimTLSReport(ctx context.Context, day time.Time, domain string) (bool, error) {
	var n int64
	err := s.withTx(ctx, func(c conn) error {
		res, err := c.exec(ctx, `INSERT INTO tls_report_sent (day, policy_domain) VALUES (?, ?) ON CONFLICT DO NOTHING`, dateArg(day), domain)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return false, fmt.Errorf("sqlstore: claim TLS report %s: %w", domain, err)
	}
	return n > 0, nil
}
