package tlsrptin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// Defaults for Options.
const (
	DefaultQueueLen        = 64
	DefaultMaxMessageBytes = 64 << 20
)

// Store is where reports go.
type Store interface {
	AddReceivedTLSReports(ctx context.Context, rows []store.ReceivedTLSReport) (int, error)
}

// Options configure a Receiver.
type Options struct {
	Store           Store // required
	Logger          *slog.Logger
	Now             func() time.Time
	QueueLen        int   // messages waiting to be parsed; default DefaultQueueLen
	MaxMessageBytes int64 // bytes of a message read at most; default DefaultMaxMessageBytes
}

// Receiver parses delivered messages in the background. Delivery hands it
// messages with Offer, which never blocks, so a slow or failing parse can
// neither delay the 250 reply nor fail the delivery: the message is in the
// mailbox either way.
type Receiver struct {
	store    Store
	log      *slog.Logger
	now      func() time.Time
	maxBytes int64
	jobs     chan job
}

type job struct {
	msgID, rcpt string
	open        func() (io.ReadCloser, error)
}

// New builds a Receiver; Run starts its worker.
func New(o Options) *Receiver {
	r := &Receiver{store: o.Store, log: o.Logger, now: o.Now, maxBytes: o.MaxMessageBytes}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.maxBytes <= 0 {
		r.maxBytes = DefaultMaxMessageBytes
	}
	n := o.QueueLen
	if n <= 0 {
		n = DefaultQueueLen
	}
	r.jobs = make(chan job, n)
	return r
}

// Offer queues a message delivered to rcpt (the reporting address) for
// parsing; open reads the stored message. It returns false, and logs,
// when the queue is full: the message then stays unparsed in the mailbox.
func (r *Receiver) Offer(msgID, rcpt string, open func() (io.ReadCloser, error)) bool {
	select {
	case r.jobs <- job{msgID: msgID, rcpt: rcpt, open: open}:
		return true
	default:
		r.log.Warn("TLS-RPT: too many messages waiting to be parsed; this one stays in the mailbox unparsed",
			"msgid", msgID, "rcpt", rcpt)
		return false
	}
}

// drainTime bounds the parsing of what is still queued at shutdown.
const drainTime = 10 * time.Second

// Run parses offered messages until ctx ends, then what is already queued
// (for at most drainTime), so that a report delivered just before a
// shutdown is not left unparsed.
func (r *Receiver) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drainTime)
			defer cancel()
			for dctx.Err() == nil {
				select {
				case j := <-r.jobs:
					r.handleJob(dctx, j)
				default:
					return
				}
			}
			return
		case j := <-r.jobs:
			r.handleJob(ctx, j)
		}
	}
}

func (r *Receiver) handleJob(ctx context.Context, j job) {
	rc, err := j.open()
	if err != nil {
		r.log.Warn("TLS-RPT: cannot read the delivered message", "msgid", j.msgID, "rcpt", j.rcpt, "err", err)
		return
	}
	defer rc.Close()
	_, _ = r.Handle(ctx, j.msgID, j.rcpt, rc)
}

// Handle parses one message and stores the reports it carries, logging
// the outcome: a stored report at INFO, a malformed one refused at WARN,
// mail that is no report at DEBUG. It returns the rows newly stored.
func (r *Receiver) Handle(ctx context.Context, msgID, rcpt string, msg io.Reader) (stored int, err error) {
	log := r.log.With("msgid", msgID, "rcpt", rcpt)
	reports, err := Parse(io.LimitReader(msg, r.maxBytes))
	switch {
	case errors.Is(err, ErrNotReport):
		log.Debug("TLS-RPT: message to the reporting address carries no report")
		return 0, err
	case err != nil:
		log.Warn("TLS-RPT: report refused", "err", err)
		return 0, err
	}
	for _, rep := range reports {
		rows, err := Rows(rep, rcpt, r.now())
		if err != nil {
			log.Warn("TLS-RPT: report refused", "org", rep.OrganizationName, "report_id", rep.ReportID, "err", err)
			return stored, err
		}
		n, err := r.store.AddReceivedTLSReports(ctx, rows)
		if err != nil {
			log.Error("TLS-RPT: could not store the report", "org", rep.OrganizationName, "report_id", rep.ReportID, "err", err)
			return stored, err
		}
		stored += n
		var ok, failed int64
		var domains []string
		for _, row := range rows {
			ok, failed = ok+row.Success, failed+row.Failure
			domains = append(domains, row.PolicyDomain)
		}
		log.Info("TLS-RPT: report received", "org", rep.OrganizationName, "report_id", rep.ReportID,
			"domains", strings.Join(domains, ","), "start", rep.DateRange.Start.UTC().Format(time.RFC3339),
			"end", rep.DateRange.End.UTC().Format(time.RFC3339), "successful", ok, "failed", failed, "new", n > 0)
	}
	return stored, nil
}

// Rows turns a checked report into store rows, one per policy.
func Rows(rep Report, rcpt string, now time.Time) ([]store.ReceivedTLSReport, error) {
	var rows []store.ReceivedTLSReport
	for i, p := range rep.Policies {
		details := ""
		if len(p.FailureDetails) > 0 {
			b, err := json.Marshal(p.FailureDetails)
			if err != nil {
				return nil, fmt.Errorf("failure-details: %w", err)
			}
			details = string(b)
		}
		rows = append(rows, store.ReceivedTLSReport{
			ReceivedAt:   now.UTC(),
			Recipient:    rcpt,
			Organization: rep.OrganizationName,
			ReportID:     rep.ReportID,
			Contact:      rep.ContactInfo,
			Start:        rep.DateRange.Start.UTC(),
			End:          rep.DateRange.End.UTC(),
			PolicyIndex:  i,
			PolicyDomain: strings.TrimSuffix(strings.ToLower(p.Policy.Domain), "."),
			PolicyType:   p.Policy.Type,
			PolicyString: strings.Join(p.Policy.String, "\n"),
			MXHosts:      strings.Join(p.Policy.MXHost, ","),
			Success:      p.Summary.Success,
			Failure:      p.Summary.Failure,
			Details:      details,
		})
	}
	return rows, nil
}
