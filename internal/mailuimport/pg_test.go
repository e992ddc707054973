package mailuimport

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"
)

// TestMailuOnPostgreSQL: Mailu's database on PostgreSQL (booleans, dates
// and "user" as PostgreSQL has them) is read from a postgresql:// URL.
// Runs with PETREL_TEST_PG_DSN.
func TestMailuOnPostgreSQL(t *testing.T) {
	base := os.Getenv("PETREL_TEST_PG_DSN")
	if base == "" {
		t.Skip("PETREL_TEST_PG_DSN not set")
	}
	var b [6]byte
	rand.Read(b[:])
	schema := "mailu_" + hex.EncodeToString(b[:])
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx := context.Background()
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE") })
	u, err := url.Parse(base)
	if err != nil {
		t.Skip("PETREL_TEST_PG_DSN is not a URL")
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	dsn := u.String()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range []string{
		`CREATE TABLE domain (created_at DATE NOT NULL, updated_at DATE, comment VARCHAR(255), name VARCHAR(80) PRIMARY KEY,
  max_users INTEGER NOT NULL, max_aliases INTEGER NOT NULL, max_quota_bytes BIGINT NOT NULL, signup_enabled BOOLEAN NOT NULL)`,
		`CREATE TABLE "user" (created_at DATE NOT NULL, updated_at DATE, comment VARCHAR(255), localpart VARCHAR(80) NOT NULL,
  domain_name VARCHAR(80) NOT NULL REFERENCES domain(name), email VARCHAR(255) PRIMARY KEY, password VARCHAR(255) NOT NULL,
  quota_bytes BIGINT NOT NULL, quota_bytes_used BIGINT NOT NULL, global_admin BOOLEAN NOT NULL, enabled BOOLEAN NOT NULL,
  enable_imap BOOLEAN NOT NULL, enable_pop BOOLEAN NOT NULL, forward_enabled BOOLEAN NOT NULL, forward_destination VARCHAR(255),
  forward_keep BOOLEAN NOT NULL, reply_enabled BOOLEAN NOT NULL, reply_subject VARCHAR(255), reply_body TEXT,
  reply_startdate DATE, reply_enddate DATE, displayed_name VARCHAR(160) NOT NULL, spam_enabled BOOLEAN NOT NULL,
  spam_mark_as_read BOOLEAN NOT NULL, spam_threshold INTEGER NOT NULL, allow_spoofing BOOLEAN NOT NULL, change_pw_next_login BOOLEAN NOT NULL)`,
		`CREATE TABLE token (created_at DATE NOT NULL, updated_at DATE, comment VARCHAR(255), id SERIAL PRIMARY KEY,
  user_email VARCHAR(255) NOT NULL REFERENCES "user"(email), password VARCHAR(255) NOT NULL, ip VARCHAR(255))`,
		`INSERT INTO domain VALUES ('2020-01-02', NULL, 'pg', 'pg.test', 5, -1, 0, true)`,
		`INSERT INTO "user" VALUES ('2020-01-02', '2021-02-03', NULL, 'zoe', 'pg.test', 'zoe@pg.test', '$1$mDnrIp96$dOSoBLFTnH5OtOieBrHE9.',
  7000000, 0, true, true, false, true, true, 'a@x.test, b@y.test', false, true, 'Off', 'Gone', '2024-02-01', '2024-03-01',
  'Zoe', false, false, 42, true, false)`,
		`INSERT INTO token (created_at, user_email, password, ip) VALUES ('2020-01-02', 'zoe@pg.test', '$5$x', '10.0.0.0/8,::1')`,
	} {
		if _, err := db.ExecContext(ctx, s); err != nil {
			t.Fatalf("%v\n%s", err, s)
		}
	}
	st := openStore(t)
	rep, err := Run(ctx, st, Options{DB: dsn})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Created["domain"] != 1 || rep.Created["user"] != 1 || rep.Created["token"] != 1 || rep.Failed() {
		t.Fatalf("report %+v", rep)
	}
	d, err := st.GetDomain(ctx, "pg.test")
	if err != nil || d.MaxUsers != 5 || !d.SignupEnabled || d.Comment != "pg" {
		t.Errorf("domain %+v %v", d, err)
	}
	z, err := st.GetUser(ctx, "zoe@pg.test")
	if err != nil {
		t.Fatal(err)
	}
	if !z.GlobalAdmin || z.EnableIMAP || !z.ForwardEnabled || z.ForwardKeep || len(z.ForwardDestination) != 2 ||
		!z.ReplyEnabled || z.ReplySubject != "Off" || !z.ReplyStartDate.Equal(time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC)) ||
		z.SpamEnabled || z.SpamThreshold != 42 || !z.AllowSpoofing || z.QuotaBytes != 7000000 || z.DisplayedName != "Zoe" ||
		z.Password != "$1$mDnrIp96$dOSoBLFTnH5OtOieBrHE9." {
		t.Errorf("user %+v", z)
	}
	toks, _ := st.ListTokens(ctx, "zoe@pg.test")
	if len(toks) != 1 || len(toks[0].IP) != 2 || toks[0].Password != "$5$x" {
		t.Errorf("tokens %+v", toks)
	}
	// A second run finds everything there.
	rep, err = Run(ctx, st, Options{DB: dsn})
	if err != nil || rep.Present["user"] != 1 || rep.Present["token"] != 1 || len(rep.Created) != 0 {
		t.Errorf("second run %+v %v", rep, err)
	}
}
