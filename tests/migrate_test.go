package tests

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/petrelmail/petrel/internal/testutil"
)

// TestMigrateStoreToPostgres moves a SQLite install with `petrel
// migrate-store` and serves its mail from PostgreSQL afterwards.
func TestMigrateStoreToPostgres(t *testing.T) {
	if os.Getenv("PETREL_TEST_PG_DSN") == "" {
		t.Skip("migrate-store test skipped: PETREL_TEST_PG_DSN not set (start PostgreSQL with internal/store/sqlstore/testdata/pg-start.sh)")
	}
	old := withUsers(t, map[string]string{"LOG_LEVEL": "WARNING"})
	if r := deliver25(t, old, "sender@example.org", authMsg("sender@example.org", "small-one")); !strings.HasPrefix(r, "250") {
		t.Fatalf("delivery: %s", r)
	}
	// Over the 128 KiB inline limit: a blob file in SQLite, body_chunk
	// rows in PostgreSQL (every node reads them).
	big := authMsg("sender@example.org", "large-one") + strings.Repeat("0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstu\r\n", 3000)
	if r := deliver25(t, old, "sender@example.org", big); !strings.HasPrefix(r, "250") {
		t.Fatalf("delivery: %s", r)
	}
	if err := old.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}

	dsn := testutil.PGSchemaDSN(t)
	node := newServer(t, map[string]string{"SQLALCHEMY_DATABASE_URI": dsn, "LOG_LEVEL": "WARNING"})
	out := node.mustCLI("", "migrate-store", "--from", "sqlite:"+old.dataDir, "--to", dsn)
	t.Logf("petrel migrate-store:\n%s", out)
	for _, want := range []string{"message ", "body ", "user ", "copied ", "1 body files moved into the database, 0 kept as files"} {
		if !strings.Contains(out, want) {
			t.Errorf("migrate-store output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "DIFFERS") {
		t.Errorf("counts differ:\n%s", out)
	}
	// Again: the target now holds data.
	if out, err := node.cli("", "migrate-store", "--from", "sqlite:"+old.dataDir, "--to", dsn); err == nil || !strings.Contains(out, "holds data") {
		t.Errorf("second migrate-store without --force: %v\n%s", err, out)
	}
	node.mustCLI("", "migrate-store", "-q", "--force", "--from", "sqlite:"+old.dataDir, "--to", dsn)

	node.start()
	ic := imapOpen(t, node.addr[993])
	if r := ic.cmd("a1", `LOGIN alice@example.test "Secret-Alice-1"`); !strings.HasPrefix(r, "a1 OK") {
		t.Fatalf("LOGIN on the migrated node: %s", r)
	}
	if _, err := fmt.Fprintf(ic.conn, "a2 SELECT INBOX\r\n"); err != nil {
		t.Fatal(err)
	}
	exists := ""
	for {
		l := ic.line()
		if strings.HasSuffix(l, " EXISTS") {
			exists = l
		}
		if strings.HasPrefix(l, "a2 ") {
			break
		}
	}
	if exists != "* 2 EXISTS" {
		t.Fatalf("INBOX after migration: %q", exists)
	}
	// Both bodies read back, the large one from its chunk rows.
	if _, err := fmt.Fprintf(ic.conn, "a3 FETCH 1:2 (RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n"); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for {
		l := ic.line()
		lines = append(lines, l)
		if strings.HasPrefix(l, "a3 ") {
			break
		}
	}
	all := strings.Join(lines, "\n")
	if !strings.Contains(all, "a3 OK") || !strings.Contains(all, "Subject: small-one") || !strings.Contains(all, "Subject: large-one") {
		t.Errorf("FETCH after migration:\n%s", all)
	}
}
