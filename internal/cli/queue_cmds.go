package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// queueCommands are `petrel queue ...` (the outbound issue): Postfix's
// mailq, postqueue -f and postsuper -d/-h/-H in one command. They work
// on the store while serve runs (SQLite WAL lets both in).
func queueCommands() []*command {
	return []*command{
		{name: "queue", args: "[flush | delete ID... | hold ID... | release ID...]", min: 0, max: -1, store: true,
			summary: "List the outbound queue, or flush, delete, hold or release entries.",
			help: `Without arguments, lists every entry: one per message and remote
recipient, with its id, message id, sender, recipient, attempts, next
attempt, status (queued, deferred, sending, held) and last error.
  flush          make every entry that is not held due now (a running
                 server picks them up within a second)
  delete ID...   remove entries without telling the sender
  hold ID...     keep entries from being sent until released
  release ID...  let held entries go again, on their schedule`,
			opts: []opt{{short: "-j", long: "--json", help: "List the entries as JSON."}},
			run:  runQueue},
	}
}

func runQueue(c *call) error {
	qs, ok := c.st.(store.QueueStore)
	if !ok {
		return errors.New("this store has no outbound queue")
	}
	if len(c.pos) == 0 {
		return listQueue(c, qs)
	}
	action, args := c.pos[0], c.pos[1:]
	switch action {
	case "flush":
		if len(args) > 0 {
			return usagef("flush takes no argument")
		}
		n, err := qs.FlushQueue(c.ctx, time.Now())
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "%s due now\n", entries(n))
		return nil
	case "delete", "hold", "release":
	default:
		return usagef("unknown action %q (want flush, delete, hold or release)", action)
	}
	if len(args) == 0 {
		return usagef("%s needs at least one queue entry ID", action)
	}
	ids := make([]int64, len(args))
	for i, a := range args {
		id, err := strconv.ParseInt(a, 10, 64)
		if err != nil || id <= 0 {
			return usagef("a queue entry ID is a positive number, not %q", a)
		}
		ids[i] = id
	}
	var missing []string
	for _, id := range ids {
		var err error
		switch action {
		case "delete":
			err = qs.DeleteQueueItem(c.ctx, id)
		case "hold":
			err = qs.SetQueueHeld(c.ctx, id, true)
		case "release":
			err = qs.SetQueueHeld(c.ctx, id, false)
		}
		if errors.Is(err, store.ErrNotFound) {
			missing = append(missing, strconv.FormatInt(id, 10))
			continue
		}
		if err != nil {
			return err
		}
		past := map[string]string{"delete": "deleted", "hold": "held", "release": "released"}[action]
		fmt.Fprintf(c.stdout, "%s entry %d\n", past, id)
	}
	if len(missing) > 0 {
		return fmt.Errorf("no queue entry %s (it may have been delivered; see 'petrel queue')", strings.Join(missing, ", "))
	}
	return nil
}

// entryStatus says where an entry stands.
func entryStatus(q store.QueueItem, now time.Time) string {
	switch {
	case q.Held:
		return "held"
	case !q.LeaseUntil.IsZero() && q.LeaseUntil.After(now):
		return "sending"
	case q.Attempts > 0:
		return "deferred"
	}
	return "queued"
}

// queueJSON is one entry of `petrel queue --json`.
type queueJSON struct {
	ID          int64     `json:"id"`
	MessageID   string    `json:"message_id"`
	Sender      string    `json:"sender"`
	Recipient   string    `json:"recipient"`
	Size        int64     `json:"size"`
	Attempts    int       `json:"attempts"`
	NextAttempt time.Time `json:"next_attempt"`
	Status      string    `json:"status"`
	LastError   string    `json:"last_error"`
	Held        bool      `json:"held"`
	CreatedAt   time.Time `json:"created_at"`
	RequireTLS  bool      `json:"require_tls"` // RFC 8689 MAIL FROM REQUIRETLS
}

func listQueue(c *call, qs store.QueueStore) error {
	items, err := qs.ListQueueEntries(c.ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	if c.flag("--json") {
		out := make([]queueJSON, 0, len(items))
		for _, q := range items {
			out = append(out, queueJSON{ID: q.ID, MessageID: q.MessageID, Sender: q.Sender, Recipient: q.Recipient,
				Size: q.Size, Attempts: q.Attempts, NextAttempt: q.NextAttempt, Status: entryStatus(q, now),
				LastError: q.LastError, Held: q.Held, CreatedAt: q.CreatedAt, RequireTLS: q.RequireTLS})
		}
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	if len(items) == 0 {
		fmt.Fprintln(c.stdout, "queue is empty")
		return nil
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tMESSAGE-ID\tSENDER\tRECIPIENT\tATTEMPTS\tNEXT ATTEMPT\tSTATUS\tLAST ERROR")
	held := 0
	for _, q := range items {
		sender := q.Sender
		if sender == "" {
			sender = "<>"
		}
		next := q.NextAttempt.UTC().Format("2006-01-02 15:04:05Z")
		if !q.NextAttempt.After(now) && !q.Held {
			next = "now"
		}
		st := entryStatus(q, now)
		if q.Held {
			held++
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", q.ID, oneLine(q.MessageID), oneLine(sender),
			oneLine(q.Recipient), q.Attempts, next, st, oneLine(q.LastError))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "-- %s, %d held\n", entries(len(items)), held)
	return nil
}

// oneLine keeps a value on its table row (and a terminal safe from
// control characters a remote reply may carry).
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

func entries(n int) string {
	if n == 1 {
		return "1 entry"
	}
	return strconv.Itoa(n) + " entries"
}
