package sqlstore

import (
	"path/filepath"
	"strings"
	"testing"
)

// ChangesPage's first page goes through the modseq index (a poll after
// one change must not read a 100,000-message mailbox), later pages
// walk the primary key from the last UID without a sort.
func TestChangesPagePlan(t *testing.T) {
	s, err := Open(t.Context(), Options{Path: filepath.Join(t.TempDir(), "main.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	plan := func(q string, args ...any) string {
		rows, err := s.read.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+q, args...)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			out = append(out, detail)
		}
		return strings.Join(out, "; ")
	}
	if p := plan(sqlChangesFirstPage, 1, 5, 1000); !strings.Contains(p, "USING INDEX message_modseq") {
		t.Errorf("first page: %s", p)
	}
	if p := plan(sqlChangesNextPage, 1, 500, 5, 1000); !strings.Contains(p, "PRIMARY KEY (mailbox_id=? AND uid>?)") || strings.Contains(p, "TEMP B-TREE") {
		t.Errorf("later page: %s", p)
	}
}
