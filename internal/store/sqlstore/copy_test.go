package sqlstore

import (
	"bytes"
	"context"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// TestCopyToPostgres copies a SQLite store with inline and blob bodies,
// a queue entry and a Sieve script into PostgreSQL, and checks the
// counts, the bodies, the sequences and the refusal of a non-empty target.
func TestCopyToPostgres(t *testing.T) {
	skipWithoutPG(t)
	ctx := t.Context()
	src := imapFixture(t, newOpener(sqliteOptions), 0)      // InlineMax 4096
	large := bytes.Repeat([]byte("0123456789abcdef"), 1024) // 16 KiB: a blob file
	deliver(t, src, "m1", []byte("Subject: small\r\n\r\nhello\r\n"), "alice")
	deliver(t, src, "m2", append([]byte("Subject: large\r\n\r\n"), large...), "alice")
	add(t, src, "Sent", []byte("Subject: sent\r\n\r\nx\r\n"))
	must(t, src.CommitMessages(ctx, []*store.NewMessage{{ID: "q1", Sender: imapUser, Body: []byte("Subject: out\r\n\r\ny\r\n"),
		Remote: []string{"bob@remote.example"}}}))
	must(t, src.PutSieveScript(ctx, imapUser, "main", []byte("keep;"), store.SieveLimits{}))
	must(t, src.SetActiveSieveScript(ctx, imapUser, "main"))
	u, err := src.GetUser(ctx, imapUser)
	must(t, err)
	u.ForwardEnabled, u.ForwardDestination, u.ForwardKeep = true, []string{"x@remote.example", "y@remote.example"}, true
	u.ReplyEnabled, u.ReplySubject = true, "away"
	u.ReplyStartDate, u.ReplyEndDate = time.Date(2026, 12, 24, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 2, 0, 0, 0, 0, time.UTC)
	u.DisplayedName, u.QuotaBytes = "Alice Ä", 1<<30
	must(t, src.UpdateUser(ctx, u))
	var blobs int
	must(t, src.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM body WHERE blob_name IS NOT NULL`).Scan(&blobs))
	if blobs != 1 {
		t.Fatalf("fixture has %d blob bodies, want 1", blobs)
	}

	opt := pgOptions(t)
	opt.InlineMax = 1 << 20 // the target keeps every body in the database
	dst, err := Open(ctx, opt)
	must(t, err)
	defer dst.Close()
	var progressed []string
	rep, err := src.CopyTo(ctx, dst, CopyOptions{Progress: func(table string, done, total int64) {
		if done == total {
			progressed = append(progressed, table)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Inlined != 1 || rep.Files != 0 {
		t.Errorf("inlined %d, files %d; want 1, 0", rep.Inlined, rep.Files)
	}
	counts := map[string]TableCount{}
	for _, c := range rep.Tables {
		counts[c.Table] = c
		if c.Source != c.Target {
			t.Errorf("%s: %d rows in the source, %d in the target", c.Table, c.Source, c.Target)
		}
	}
	for table, min := range map[string]int64{"domain": 1, "user": 1, "mailbox": 5, "message": 3, "body": 4, "queue": 1, "sieve_script": 1} {
		if counts[table].Target < min {
			t.Errorf("%s: %d rows copied, want at least %d", table, counts[table].Target, min)
		}
	}
	if len(progressed) != len(rep.Tables) {
		t.Errorf("progress finished %d tables of %d", len(progressed), len(rep.Tables))
	}
	// Parents before children.
	pos := map[string]int{}
	for i, c := range rep.Tables {
		pos[c.Table] = i
	}
	if !(pos["domain"] < pos["user"] && pos["user"] < pos["mailbox"] && pos["mailbox"] < pos["message"] && pos["body"] < pos["message"]) {
		t.Errorf("copy order %v", rep.Tables)
	}

	// Every kind of column (booleans, timestamps, dates, lists) reads
	// back the same through the store.
	su, err := src.GetUser(ctx, imapUser)
	must(t, err)
	du, err := dst.GetUser(ctx, imapUser)
	must(t, err)
	if !reflect.DeepEqual(su, du) {
		t.Errorf("user differs after the copy:\nsource %+v\ntarget %+v", su, du)
	}

	// The large body now lives in its row, and reads back the same.
	must(t, dst.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM body WHERE blob_name IS NOT NULL`).Scan(&blobs))
	if blobs != 0 {
		t.Errorf("%d bodies still name a blob file", blobs)
	}
	in, err := dst.GetMailbox(ctx, imapUser, "INBOX")
	must(t, err)
	msgs, err := dst.ListMessagesByID(ctx, in.ID)
	must(t, err)
	if len(msgs) != 2 {
		t.Fatalf("INBOX has %d messages in the target", len(msgs))
	}
	r, err := dst.OpenBody(ctx, msgs[1].BodyID)
	must(t, err)
	got, _ := io.ReadAll(r)
	r.Close()
	if !bytes.HasSuffix(got, large) {
		t.Errorf("large body reads back %d bytes", len(got))
	}
	// Reference counts came as they were (no trigger counted twice).
	var srcRefs, dstRefs string
	must(t, src.read.QueryRowContext(ctx, `SELECT group_concat(id || ':' || refs, ',') FROM (SELECT id, refs FROM body ORDER BY id)`).Scan(&srcRefs))
	must(t, dst.read.QueryRowContext(ctx, `SELECT string_agg(id || ':' || refs, ',' ORDER BY id) FROM body`).Scan(&dstRefs))
	if srcRefs != dstRefs {
		t.Errorf("body refs: source %s, target %s", srcRefs, dstRefs)
	}
	// Sequences moved past the copied ids: new rows get fresh ones.
	must(t, dst.CommitMessages(ctx, []*store.NewMessage{{ID: "m3", Sender: "s@remote.test", Body: []byte("Subject: new\r\n\r\nz\r\n"),
		Targets: []store.MailboxTarget{{User: imapUser}}}}))
	_, err = dst.CreateMailbox(ctx, imapUser, "New", "")
	must(t, err)
	name, script, err := dst.SieveActiveScript(ctx, imapUser)
	if err != nil || name != "main" || string(script) != "keep;" {
		t.Errorf("active script in the target: %q %q %v", name, script, err)
	}

	// A target holding data is refused, and replaced with Force.
	_, err = src.CopyTo(ctx, dst, CopyOptions{})
	if err == nil || !strings.Contains(err.Error(), "holds data") {
		t.Fatalf("copy into a non-empty target: %v", err)
	}
	rep, err = src.CopyTo(context.WithoutCancel(ctx), dst, CopyOptions{Force: true})
	must(t, err)
	msgs, err = dst.ListMessagesByID(ctx, in.ID)
	must(t, err)
	if len(msgs) != 2 {
		t.Errorf("after --force the target INBOX has %d messages, want the source's 2", len(msgs))
	}
}

// A target at other migrations is refused before anything is copied.
func TestCopyToRefusesOtherMigrations(t *testing.T) {
	skipWithoutPG(t)
	ctx := t.Context()
	src := imapFixture(t, newOpener(sqliteOptions), 0)
	dst, err := Open(ctx, pgOptions(t))
	must(t, err)
	defer dst.Close()
	_, err = dst.write.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future', now())`)
	must(t, err)
	_, err = src.CopyTo(ctx, dst, CopyOptions{})
	if err == nil || !strings.Contains(err.Error(), "migration versions differ") {
		t.Fatalf("copy to a newer schema: %v", err)
	}
}

// TestCopyToPostgresChunks: a blob file larger than the PostgreSQL
// target's InlineMax becomes body_chunk rows (every node reads them), and
// reads back byte for byte.
func TestCopyToPostgresChunks(t *testing.T) {
	skipWithoutPG(t)
	ctx := t.Context()
	src := imapFixture(t, newOpener(sqliteOptions), 0)         // InlineMax 4096
	large := bytes.Repeat([]byte("0123456789abcdef"), 40*1024) // 640 KiB: three chunks
	body := append([]byte("Subject: large\r\n\r\n"), large...)
	deliver(t, src, "m1", body, "alice")
	opt := pgOptions(t)
	opt.InlineMax = 4096
	dst, err := Open(ctx, opt)
	must(t, err)
	defer dst.Close()
	rep, err := src.CopyTo(ctx, dst, CopyOptions{})
	must(t, err)
	if rep.Inlined != 1 || rep.Files != 0 {
		t.Errorf("inlined %d, files %d; want 1, 0", rep.Inlined, rep.Files)
	}
	var chunks, named int
	must(t, dst.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM body_chunk`).Scan(&chunks))
	must(t, dst.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM body WHERE blob_name IS NOT NULL`).Scan(&named))
	if chunks != 3 || named != 0 {
		t.Errorf("%d chunk rows and %d bodies naming a file; want 3 and 0", chunks, named)
	}
	in, err := dst.GetMailbox(ctx, imapUser, "INBOX")
	must(t, err)
	msgs, err := dst.ListMessagesByID(ctx, in.ID)
	must(t, err)
	if len(msgs) != 1 {
		t.Fatalf("INBOX has %d messages in the target", len(msgs))
	}
	r, err := dst.OpenBody(ctx, msgs[0].BodyID)
	must(t, err)
	got, _ := io.ReadAll(r)
	r.Close()
	if !bytes.Equal(got, body) {
		t.Errorf("chunked body reads back %d bytes, want %d", len(got), len(body))
	}
}
