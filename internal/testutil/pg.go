package testutil

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
)

// PGSchemaDSN returns a DSN for a fresh, empty schema in the PostgreSQL
// database named by PETREL_TEST_PG_DSN (a postgres:// URL; see
// internal/store/sqlstore/testdata/pg-start.sh), dropped when the test
// ends. It skips the test when the variable is unset.
func PGSchemaDSN(t testing.TB) string {
	t.Helper()
	base := os.Getenv("PETREL_TEST_PG_DSN")
	if base == "" {
		t.Skip("PETREL_TEST_PG_DSN not set (start a server with internal/store/sqlstore/testdata/pg-start.sh)")
	}
	var b [6]byte
	rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.ExecContext(context.Background(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer db.Close()
		db.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
	})
	if !strings.HasPrefix(base, "postgres://") && !strings.HasPrefix(base, "postgresql://") {
		return base + " search_path=" + schema
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
