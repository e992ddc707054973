package sqlstore

import (
	"context"
	"fmt"

	"github.com/petrelmail/petrel/internal/store"
)

var _ store.ReceivedTLSReports = (*Store)(nil)

// AddReceivedTLSReports implements store.ReceivedTLSReports.
func (s *Store) AddReceivedTLSReports(ctx context.Context, rows []store.ReceivedTLSReport) (int, error) {
	var added int
	err := s.withTx(ctx, func(c conn) error {
		added = 0
		for _, r := range rows {
			res, err := c.exec(ctx, `INSERT INTO tlsrpt_received (received_at, recipient, organization, report_id, contact,
start_at, end_at, policy_index, policy_domain, policy_type, policy_string, mx_hosts, success, failure, details)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
				s.d.ts(r.ReceivedAt), r.Recipient, r.Organization, r.ReportID, r.Contact, s.d.ts(r.Start), s.d.ts(r.End),
				r.PolicyIndex, r.PolicyDomain, r.PolicyType, r.PolicyString, r.MXHosts, r.Success, r.Failure, r.Details)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			added += int(n)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sqlstore: add received TLS reports: %w", err)
	}
	return added, nil
}

// ReceivedTLSReports implements store.ReceivedTLSReports.
func (s *Store) ReceivedTLSReports(ctx context.Context, domain string) ([]store.ReceivedTLSReport, error) {
	q := `SELECT id, received_at, recipient, organization, report_id, contact, start_at, end_at, policy_index,
policy_domain, policy_type, policy_string, mx_hosts, success, failure, details FROM tlsrpt_received`
	var args []any
	if domain != "" {
		q += ` WHERE policy_domain = ?`
		args = append(args, domain)
	}
	q += ` ORDER BY start_at DESC, organization, report_id, policy_index`
	return list(ctx, s.readConn(), "received TLS reports", func(sc interface{ Scan(...any) error }) (store.ReceivedTLSReport, error) {
		var r store.ReceivedTLSReport
		err := sc.Scan(&r.ID, scanTime(&r.ReceivedAt), &r.Recipient, &r.Organization, &r.ReportID, &r.Contact,
			scanTime(&r.Start), scanTime(&r.End), &r.PolicyIndex, &r.PolicyDomain, &r.PolicyType, &r.PolicyString,
			&r.MXHosts, &r.Success, &r.Failure, &r.Details)
		return r, err
	}, q, args...)
}
