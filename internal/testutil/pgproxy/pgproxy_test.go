package pgproxy

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"os"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
)

func TestIsCommitSQL(t *testing.T) {
	for q, want := range map[string]bool{
		"COMMIT": true, "commit;": true, " End ": true, "COMMIT WORK": true, "commit transaction;": true,
		"BEGIN": false, "ROLLBACK": false, "SELECT 'COMMIT'": false, "": false, "commit prepared 'x'": false,
	} {
		if got := isCommitSQL(q); got != want {
			t.Errorf("isCommitSQL(%q) = %v, want %v", q, got, want)
		}
	}
}

// FuzzReadTyped: the message reader never panics and never returns more
// than its input.
func FuzzReadTyped(f *testing.F) {
	msg := func(typ byte, body string) []byte {
		b := []byte{typ, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(b[1:], uint32(4+len(body)))
		return append(b, body...)
	}
	f.Add(msg('Q', "COMMIT\x00"))
	f.Add(append(msg('P', "s1\x00COMMIT\x00\x00\x00"), msg('B', "\x00s1\x00")...))
	f.Add([]byte{'Q', 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReader(bytes.NewReader(in))
		total := 0
		for {
			_, m, err := readTyped(r)
			if err != nil {
				break
			}
			total += len(m)
			_ = cstring(m[5:])
		}
		if total > len(in) {
			t.Fatalf("read %d bytes from %d", total, len(in))
		}
	})
}

// TestDropCommitReply: through the proxy, a COMMIT whose reply is dropped
// fails on the client while the server has committed; the pool then
// works on a new connection. Simple and extended protocol.
func TestDropCommitReply(t *testing.T) {
	dsn := os.Getenv("PETREL_TEST_PG_DSN")
	if dsn == "" {
		t.Skip("PETREL_TEST_PG_DSN not set")
	}
	target, err := Target(dsn)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Start(target)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	pdsn, err := p.DSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	direct, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	if _, err := direct.ExecContext(ctx, `CREATE TABLE pgproxy_test (v TEXT)`); err != nil {
		t.Fatal(err)
	}
	defer direct.ExecContext(ctx, `DROP TABLE pgproxy_test`)
	db, err := sql.Open("pgx", pdsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	p.DropNextCommits(1)
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO pgproxy_test VALUES ($1)`, "simple"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err == nil {
		t.Fatal("COMMIT succeeded although its reply was dropped")
	}
	// Extended protocol: a COMMIT prepared and executed with P/B/E.
	p.DropNextCommits(1)
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `BEGIN`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `INSERT INTO pgproxy_test VALUES ($1)`, "extended"); err != nil {
		t.Fatal(err)
	}
	st, err := conn.PrepareContext(ctx, `COMMIT`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.ExecContext(ctx); err == nil {
		t.Fatal("prepared COMMIT succeeded although its reply was dropped")
	}
	conn.Close()
	var n int
	if err := direct.QueryRowContext(ctx, `SELECT COUNT(*) FROM pgproxy_test`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("%d rows committed, want 2 (the server committed both)", n)
	}
	if _, dropped, _ := p.Stats(); dropped != 2 {
		t.Fatalf("dropped %d replies, want 2", dropped)
	}
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("no new connection after the drop: %v", err)
	}
}
