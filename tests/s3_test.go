package tests

// Message bodies in an S3-compatible object store (issue 16, BLOB_S3_*),
// against the in-process fake of internal/testutil/s3fake on a real
// socket (Debian ships no light S3 server).

import (
	"bytes"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/testutil"
	"github.com/petrelmail/petrel/internal/testutil/s3fake"
)

func s3Server(t *testing.T, f *s3fake.Server, extra ...string) *server {
	t.Helper()
	env := map[string]string{
		"BLOB_S3_ENDPOINT":   f.Endpoint(),
		"BLOB_S3_BUCKET":     s3fake.Bucket,
		"BLOB_S3_ACCESS_KEY": s3fake.AccessKey,
		"BLOB_S3_SECRET_KEY": s3fake.SecretKey,
		"BLOB_S3_REGION":     "us-east-1",
		"BLOB_S3_TLS":        "false",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		env[extra[i]] = extra[i+1]
	}
	s := newServer(t, env)
	s.mustCLI("", "domain", "example.test")
	s.mustCLI("Secret-Alice-1\n", "user", "alice", "example.test", "-")
	s.start()
	return s
}

// bigMessage is a message of about size bytes of base64 lines.
func bigMessage(subject string, size int) string {
	raw := make([]byte, size*3/4)
	rand.Read(raw)
	enc := base64.StdEncoding.EncodeToString(raw)
	var b strings.Builder
	b.WriteString("From: <sender@remote.test>\r\nTo: <alice@example.test>\r\nSubject: " + subject +
		"\r\nDate: Sat, 05 Dec 2026 23:00:00 +0000\r\nMessage-ID: <" + subject + "@remote.test>\r\n" +
		"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	for len(enc) > 0 {
		n := min(76, len(enc))
		b.WriteString(enc[:n] + "\r\n")
		enc = enc[n:]
	}
	return b.String()
}

// TestS3LargeMessage: a 5 MiB message over SMTP is stored in the bucket
// (one object), IMAP returns it byte for byte, and neither the database
// nor DATA_DIR/blobs keeps a copy. On SQLite, and on PostgreSQL when
// PETREL_TEST_PG_DSN is set.
func TestS3LargeMessage(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { s3LargeMessage(t, "") })
	t.Run("postgresql", func(t *testing.T) { s3LargeMessage(t, testutil.PGSchemaDSN(t)) })
}

func s3LargeMessage(t *testing.T, pgDSN string) {
	f := s3fake.Start(t)
	var extra []string
	if pgDSN != "" {
		extra = []string{"SQLALCHEMY_DATABASE_URI", pgDSN}
	}
	s := s3Server(t, f, extra...)
	msg := bigMessage("s3-large", 5<<20)
	if r := send25(t, s, "sender@remote.test", []string{"alice@example.test"}, msg); !strings.HasPrefix(r, "250") {
		t.Fatalf("DATA: %s", r)
	}
	got := fetchInbox(t, s)
	if !strings.HasSuffix(got, msg) {
		t.Fatalf("IMAP body (%d bytes) does not end with the message sent (%d bytes)", len(got), len(msg))
	}
	keys := f.Keys()
	if len(keys) != 1 || !strings.HasPrefix(keys[0], "bodies/") {
		t.Fatalf("bucket holds %v, want one body object", keys)
	}
	obj, err := f.Object(keys[0])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(obj, []byte(got)) {
		t.Fatalf("object (%d bytes) differs from what IMAP returned (%d bytes)", len(obj), len(got))
	}
	if strings.Contains(s.logs(), s3fake.SecretKey) {
		t.Fatal("the log shows BLOB_S3_SECRET_KEY")
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	u := url.URL{Scheme: "file", Path: filepath.Join(s.dataDir, "main.db")}
	driver, dsn := "sqlite", u.String()+"?mode=ro"
	if pgDSN != "" {
		driver, dsn = "pgx", pgDSN
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var maxInline, named int64
	var name string
	if err := db.QueryRow(`SELECT COALESCE(MAX(LENGTH(data)), 0), COUNT(blob_name), COALESCE(MAX(blob_name), '') FROM body`).Scan(&maxInline, &named, &name); err != nil {
		t.Fatal(err)
	}
	if maxInline > 128<<10 || named != 1 || "bodies/"+strings.TrimPrefix(name, "s3:") != keys[0] {
		t.Fatalf("body rows: largest inline %d bytes, %d named (%q); want the object's name only", maxInline, named, name)
	}
	if pgDSN != "" {
		var chunks int
		if err := db.QueryRow(`SELECT COUNT(*) FROM body_chunk`).Scan(&chunks); err != nil || chunks != 0 {
			t.Fatalf("body_chunk rows: %d, %v", chunks, err)
		}
	}
	var files []string
	filepath.WalkDir(filepath.Join(s.dataDir, "blobs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if len(files) != 0 {
		t.Fatalf("DATA_DIR/blobs keeps %v", files)
	}
}

// TestS3DownAtDelivery: with the object store stopped a large message is
// refused with 451 4.3.0 and a log line, a small one is still accepted;
// once the store is back the large one is accepted.
func TestS3DownAtDelivery(t *testing.T) {
	f := s3fake.Start(t)
	s := s3Server(t, f)
	f.Stop()
	msg := bigMessage("s3-down", 1<<20)
	start := time.Now()
	r := send25(t, s, "sender@remote.test", []string{"alice@example.test"}, msg)
	if !strings.HasPrefix(r, "451 4.3.0") {
		t.Fatalf("large message with the store down: %q, want 451 4.3.0", r)
	}
	t.Logf("451 after %v", time.Since(start).Round(time.Millisecond))
	if !s.waitLog("body store: PUT failed") {
		t.Fatalf("no log line for the failed PUT:\n%s", s.logs())
	}
	small := "From: <sender@remote.test>\r\nTo: <alice@example.test>\r\nSubject: small\r\n\r\nhello\r\n"
	if r := send25(t, s, "sender@remote.test", []string{"alice@example.test"}, small); !strings.HasPrefix(r, "250") {
		t.Fatalf("small message with the store down: %s", r)
	}
	f.Restart()
	if r := send25(t, s, "sender@remote.test", []string{"alice@example.test"}, msg); !strings.HasPrefix(r, "250") {
		t.Fatalf("large message after the store came back: %s", r)
	}
	if got := fetchInbox(t, s); !strings.HasSuffix(got, msg) {
		t.Fatalf("IMAP body (%d bytes) is not the message sent", len(got))
	}
	if keys := f.Keys(); len(keys) != 1 {
		t.Fatalf("bucket holds %v, want the one accepted body", keys)
	}
	if strings.Contains(s.logs(), s3fake.SecretKey) {
		t.Fatal("the log shows BLOB_S3_SECRET_KEY")
	}
}
