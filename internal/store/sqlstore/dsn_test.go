package sqlstore

import (
	"path/filepath"
	"testing"

	"github.com/petrelmail/petrel/internal/config"
)

func TestPostgresDSN(t *testing.T) {
	for _, tc := range []struct {
		cfg  config.Config
		want string
	}{
		{config.Config{DBHost: "db", DBUser: "mailu", DBPw: "p@ss:/word", DBName: "mailu"},
			"postgresql://mailu:p%40ss%3A%2Fword@db:5432/mailu"},
		{config.Config{DBHost: "::1", DBPort: 6543, DBName: "x"}, "postgresql://[::1]:6543/x"},
		{config.Config{DBURL: "postgresql+psycopg2://u:p@h/db", DBHost: "ignored"}, "postgresql://u:p@h/db"},
		{config.Config{DBURL: "postgres://u@h:1/db?sslmode=require"}, "postgres://u@h:1/db?sslmode=require"},
	} {
		if got := postgresDSN(&tc.cfg); got != tc.want {
			t.Errorf("postgresDSN(%+v) = %q, want %q", tc.cfg, got, tc.want)
		}
	}
}

func TestOpenConfigSQLite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s, err := OpenConfig(t.Context(), &config.Config{DataDir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Flavor() != FlavorSQLite || s.Blobs().Path() != filepath.Join(dir, "blobs") {
		t.Fatalf("flavor %s, blobs %s", s.Flavor(), s.Blobs().Path())
	}
}
