package sqlstore

import (
	"strings"
	"testing"
)

// TestDeletedUIDsUseIndex checks that EXPUNGE's search for \Deleted
// messages reads the partial index message_deleted (migration 0200), not
// every message of the mailbox: a store uses a partial index only for a
// query that names its predicate, so a change to either breaks this. It
// explains the very statement deletedUIDs runs.
func TestDeletedUIDsUseIndex(t *testing.T) {
	flavors(t, func(t *testing.T, o *opener) {
		s := imapFixture(t, o, 0)
		ctx := t.Context()
		for range 20 {
			add(t, s, "INBOX", []byte("Subject: x\r\n\r\ny\r\n"))
		}
		id := box(t, s, "INBOX").ID
		tx, err := s.write.BeginTx(ctx, nil)
		must(t, err)
		defer tx.Rollback()
		explain := `EXPLAIN QUERY PLAN ` + deletedUIDsQuery // SQLite
		if s.Flavor() == "postgresql" {
			// Twenty rows: PostgreSQL would rather read the table.
			_, err := tx.ExecContext(ctx, `SET LOCAL enable_seqscan = off`)
			must(t, err)
			explain = s.d.rebind(`EXPLAIN ` + deletedUIDsQuery)
		}
		rows, err := tx.QueryContext(ctx, explain, id)
		must(t, err)
		defer rows.Close()
		cols, err := rows.Columns()
		must(t, err)
		var plan strings.Builder
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			must(t, rows.Scan(ptrs...))
			for _, v := range vals {
				switch v := v.(type) {
				case string:
					plan.WriteString(v + " ")
				case []byte:
					plan.WriteString(string(v) + " ")
				}
			}
			plan.WriteString("\n")
		}
		must(t, rows.Err())
		if !strings.Contains(plan.String(), "message_deleted") {
			t.Fatalf("the search for \\Deleted messages does not use message_deleted:\n%s", plan.String())
		}
	})
}
