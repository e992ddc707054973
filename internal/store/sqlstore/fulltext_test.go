package sqlstore

import (
	"slices"
	"testing"

	"github.com/petrelmail/petrel/internal/store"
)

// bodyOf is the body id of message uid in mailbox.
func bodyOf(t *testing.T, s *Store, mailbox string, uid uint32) int64 {
	t.Helper()
	for _, m := range listMsgs(t, s, box(t, s, mailbox).ID) {
		if m.UID == uid {
			return m.BodyID
		}
	}
	t.Fatalf("%s has no UID %d", mailbox, uid)
	return 0
}

// TestFullTextIndex: the store side of the index on both dialects:
// what is pending (\Junk left out), queries with whole words, prefixes
// and OR groups, the vocabulary, the rows going with their body, and
// dropping the index for a rebuild.
func TestFullTextIndex(t *testing.T) {
	flavors(t, func(t *testing.T, o *opener) {
		s := imapFixture(t, o, 0)
		ctx := t.Context()
		add(t, s, "INBOX", []byte("Subject: a\r\n\r\nzebrafish\r\n"))
		add(t, s, "INBOX", []byte("Subject: b\r\n\r\nquokka\r\n"))
		add(t, s, "INBOX", []byte("Subject: c\r\n\r\nnot yet\r\n"))
		add(t, s, "Junk", []byte("Subject: j\r\n\r\nspam\r\n"))
		b1, b2, b3 := bodyOf(t, s, "INBOX", 1), bodyOf(t, s, "INBOX", 2), bodyOf(t, s, "INBOX", 3)
		inbox := box(t, s, "INBOX").ID

		pending, err := s.PendingFullText(ctx, "", false, 0, 10)
		must(t, err)
		if !slices.Equal(pending, []int64{b1, b2, b3}) {
			t.Fatalf("pending %v, want %v (Junk left out)", pending, []int64{b1, b2, b3})
		}
		if p, _ := s.PendingFullText(ctx, "nobody@example.test", false, 0, 10); len(p) != 0 {
			t.Errorf("another user's pending: %v", p)
		}
		must(t, s.PutFullText(ctx, []store.FullTextDoc{
			{BodyID: b1, Terms: []string{"subject", "a", "zebrafish", "tuna"}, Bytes: 20},
			{BodyID: b2, Terms: []string{"subject", "b", "quokka"}, Bytes: 16},
		}, []string{"subject", "a", "zebrafish", "tuna", "b", "quokka"}))
		// A second write of the same body is skipped.
		must(t, s.PutFullText(ctx, []store.FullTextDoc{{BodyID: b1, Terms: []string{"other"}}}, nil))

		match := func(q store.FullTextQuery) []int64 {
			t.Helper()
			ids, err := s.FullTextMatch(ctx, inbox, q)
			must(t, err)
			slices.Sort(ids)
			return ids
		}
		w := func(s string) store.FullTextTerm { return store.FullTextTerm{Text: s} }
		p := func(s string) store.FullTextTerm { return store.FullTextTerm{Text: s, Prefix: true} }
		for _, c := range []struct {
			q    store.FullTextQuery
			want []int64
		}{
			{store.FullTextQuery{{w("zebrafish")}}, []int64{b1}},
			{store.FullTextQuery{{p("zeb")}}, []int64{b1}},
			{store.FullTextQuery{{w("zeb")}}, nil},
			{store.FullTextQuery{{w("subject")}, {w("quokka")}}, []int64{b2}},
			{store.FullTextQuery{{w("zebrafish"), w("quokka")}}, []int64{b1, b2}},
			{store.FullTextQuery{{w("subject")}, {}}, nil},
			{store.FullTextQuery{{w("other")}}, nil},
			{store.FullTextQuery{{w(`qu"o'ka\`)}}, nil},
		} {
			if got := match(c.q); !slices.Equal(got, c.want) {
				t.Errorf("match %v = %v, want %v", c.q, got, c.want)
			}
		}
		terms, err := s.FullTextTerms(ctx, "ebra", 100, 10)
		must(t, err)
		if !slices.Equal(terms, []string{"zebrafish"}) {
			t.Errorf("terms with ebra: %v", terms)
		}
		unindexed := func(att bool, from uint32) []int64 {
			t.Helper()
			var ids []int64
			must(t, s.FullTextUnindexed(ctx, inbox, att, from, func(_ uint32, id int64) { ids = append(ids, id) }))
			return ids
		}
		if un := unindexed(false, 1); !slices.Equal(un, []int64{b3}) {
			t.Errorf("unindexed %v, want [%d]", un, b3)
		}
		if un := unindexed(false, 3); !slices.Equal(un, []int64{b3}) || len(unindexed(false, 4)) != 0 {
			t.Errorf("unindexed from UID 2: %v", un)
		}
		// With attachments wanted, rows made without them count as missing
		// until a doc with them replaces them.
		if p, _ := s.PendingFullText(ctx, "", true, 0, 10); !slices.Equal(p, []int64{b1, b2, b3}) {
			t.Errorf("pending with attachments: %v", p)
		}
		must(t, s.PutFullText(ctx, []store.FullTextDoc{{BodyID: b2, Terms: []string{"subject", "b", "quokka", "narwhal"}, Bytes: 16, Attachments: true}}, []string{"narwhal"}))
		if p, _ := s.PendingFullText(ctx, "", true, 0, 10); !slices.Equal(p, []int64{b1, b3}) {
			t.Errorf("pending with attachments after b2: %v", p)
		}
		if un := unindexed(true, 1); !slices.Equal(un, []int64{b1, b3}) {
			t.Errorf("unindexed with attachments: %v", un)
		}
		if got := match(store.FullTextQuery{{w("narwhal")}}); !slices.Equal(got, []int64{b2}) {
			t.Errorf("narwhal after the upgrade: %v", got)
		}
		// A doc without attachments never replaces one with them.
		must(t, s.PutFullText(ctx, []store.FullTextDoc{{BodyID: b2, Terms: []string{"other"}}}, nil))
		if got := match(store.FullTextQuery{{w("narwhal")}}); !slices.Equal(got, []int64{b2}) {
			t.Errorf("narwhal after a doc without attachments: %v", got)
		}
		st, err := s.FullTextStatus(ctx)
		must(t, err)
		if st.Indexed != 2 || st.Pending != 1 || st.Excluded != 1 || st.TextBytes != 36 {
			t.Errorf("status %+v", st)
		}

		// Expunged and released: the row goes with the body.
		_, err = s.ExpungeByID(ctx, inbox, []uint32{1})
		must(t, err)
		s.releaseNow(ctx)
		st, err = s.FullTextStatus(ctx)
		must(t, err)
		if st.Indexed != 1 {
			t.Errorf("after expunge: %+v", st)
		}
		if s.d.name() == FlavorSQLite {
			var n int
			must(t, s.read.QueryRowContext(ctx, `SELECT count(*) FROM body_fts WHERE rowid = ?`, b1).Scan(&n))
			if n != 0 {
				t.Errorf("FTS5 row of a deleted body: %d", n)
			}
		}
		if got := match(store.FullTextQuery{{w("zebrafish")}}); got != nil {
			t.Errorf("after expunge: %v", got)
		}

		e0, err := s.FullTextEpoch(ctx)
		must(t, err)
		n, err := s.DropFullText(ctx, imapUser)
		must(t, err)
		if e1, err := s.FullTextEpoch(ctx); err != nil || e1 != e0+1 {
			t.Errorf("epoch %d after drop, was %d (%v)", e1, e0, err)
		}
		if n != 1 {
			t.Errorf("dropped %d rows, want 1", n)
		}
		if got := match(store.FullTextQuery{{w("quokka")}}); got != nil {
			t.Errorf("after drop: %v", got)
		}
		pending, err = s.PendingFullText(ctx, imapUser, false, 0, 10)
		must(t, err)
		if !slices.Equal(pending, []int64{b2, b3}) {
			t.Errorf("pending after drop %v", pending)
		}
	})
}
