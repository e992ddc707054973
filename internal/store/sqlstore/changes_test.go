package sqlstore

import (
	"context"
	"strings"
	"testing"
)

// ChangesPage's pages are ranges of the (mailbox_id, modseq, uid) index
// read in its order: a poll after one change reads one row, and each
// page of a STORE 1:* (every row at one modseq) starts where the last
// one stopped, without a sort.
func TestChangesPagePlan(t *testing.T) {
	flavors(t, func(t *testing.T, o *opener) {
		s := o.openStore(t)
		defer s.Close()
		ctx := t.Context()
		// One connection, for PostgreSQL's session setting.
		sc, err := s.read.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		c := conn{q: sc, d: s.d}
		explain, want := "EXPLAIN QUERY PLAN ", "message_modseq"
		if s.Flavor() == FlavorPostgreSQL {
			explain, want = "EXPLAIN ", "message_modseq_uid"
			// The planner would scan the tiny test table instead.
			if _, err := sc.ExecContext(ctx, "SET enable_seqscan = off"); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range []struct {
			q    string
			args []any
		}{
			{sqlChangesFirstPage(c.d, 1000), []any{1, 5}},
			{sqlChangesNextPage(c.d, 1000), []any{1, 7, 500}},
			{sqlPoll(c.d, 1000), pollArgs(1, 5)},
		} {
			p := plan(ctx, t, c, explain+tc.q, tc.args...)
			t.Log(p)
			if !strings.Contains(p, want) || strings.Contains(p, "TEMP B-TREE") || strings.Contains(p, "Sort") {
				t.Errorf("%s:\n%s", tc.q, p)
			}
		}
	})
}

func plan(ctx context.Context, t *testing.T, c conn, q string, args ...any) string {
	t.Helper()
	rows, err := c.query(ctx, q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		out = append(out, toString(vals[len(vals)-1]))
	}
	return strings.Join(out, "\n")
}

func toString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	}
	return ""
}
