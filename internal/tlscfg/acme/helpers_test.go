package acme

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/mholt/acmez/v3/acme"

	"github.com/petrelmail/petrel/internal/store/sqlstore"
	"github.com/petrelmail/petrel/internal/testutil"
)

func problem(typ string) error { return acme.Problem{Type: typ, Detail: "test"} }

// pgDSN is a fresh schema's DSN, or "" without PETREL_TEST_PG_DSN.
func pgDSN(t *testing.T) string {
	if os.Getenv("PETREL_TEST_PG_DSN") == "" {
		return ""
	}
	return testutil.PGSchemaDSN(t)
}

func openPG(t *testing.T, dsn string) *sqlstore.Store {
	st, err := sqlstore.Open(context.Background(), sqlstore.Options{Flavor: sqlstore.FlavorPostgreSQL, DSN: dsn, BlobDir: filepath.Join(t.TempDir(), "blobs")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
