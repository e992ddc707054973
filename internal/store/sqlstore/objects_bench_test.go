package sqlstore

import (
	"crypto/rand"
	"io"
	"os"
	"strconv"
	"testing"

	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/store/bucket"
	"github.com/petrelmail/petrel/internal/testutil/s3fake"
)

// BenchmarkS3LargeBody measures a 5 MiB body with a (fake, in-process,
// loopback) S3 bucket as inbound stores it and IMAP reads it: write =
// spool to a blob file, CommitMessages naming it (PUT, then the row),
// remove the spool; read = OpenBody and read it whole. The fake keeps
// objects in memory, so this is the client's and the database's share,
// not a real object store's.
func BenchmarkS3LargeBody(b *testing.B) {
	for _, fl := range []string{FlavorSQLite, FlavorPostgreSQL} {
		b.Run(fl, func(b *testing.B) {
			mk := sqliteOptions
			if fl == FlavorPostgreSQL {
				if os.Getenv("PETREL_TEST_PG_DSN") == "" {
					b.Skip("PETREL_TEST_PG_DSN not set")
				}
				mk = pgOptions
			}
			f := s3fake.Start(b)
			bk, err := bucket.New(bucket.Config{Endpoint: f.Endpoint(), Bucket: s3fake.Bucket,
				AccessKey: s3fake.AccessKey, SecretKey: s3fake.SecretKey, Region: "us-east-1"})
			mustB(b, err)
			opt := mk(b)
			opt.Objects = bk
			s, err := Open(b.Context(), opt)
			mustB(b, err)
			defer s.Close()
			ctx := b.Context()
			mustB(b, s.CreateDomain(ctx, &store.Domain{Name: "bench.example"}))
			u := store.NewUser("u", "bench.example", 0, 80)
			mustB(b, s.CreateUser(ctx, &u))
			body := make([]byte, 5<<20)
			rand.Read(body)
			copy(body, "Subject: large\r\n\r\n")
			b.Run("write", func(b *testing.B) {
				for i := range b.N {
					mustB(b, s.Blobs().Remove(commitSpooled(b, s, u.Email, body, "m"+strconv.Itoa(i))))
				}
			})
			l, err := s.ListMessages(ctx, u.Email, "INBOX")
			mustB(b, err)
			b.Run("read", func(b *testing.B) {
				for i := range b.N {
					r, err := s.OpenBody(ctx, l[i%len(l)].BodyID)
					mustB(b, err)
					n, err := io.Copy(io.Discard, r)
					mustB(b, err)
					r.Close()
					if n != int64(len(body)) {
						b.Fatalf("read %d bytes", n)
					}
				}
			})
		})
	}
}
