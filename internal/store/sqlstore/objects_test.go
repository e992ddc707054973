package sqlstore

import (
	"bytes"
	"crypto/rand"
	"database/sql"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/store/bucket"
	"github.com/petrelmail/petrel/internal/testutil/s3fake"
)

// s3Flavors runs fn on SQLite and (with PETREL_TEST_PG_DSN) PostgreSQL,
// each store with a fake S3 bucket for its large bodies.
func s3Flavors(t *testing.T, fn func(t *testing.T, s *Store, f *s3fake.Server)) {
	run := func(t *testing.T, mk func(testing.TB) Options) {
		f := s3fake.Start(t)
		b, err := bucket.New(bucket.Config{Endpoint: f.Endpoint(), Bucket: s3fake.Bucket,
			AccessKey: s3fake.AccessKey, SecretKey: s3fake.SecretKey, Region: "us-east-1"})
		must(t, err)
		opt := mk(t)
		opt.Objects = b
		s, err := Open(t.Context(), opt)
		must(t, err)
		t.Cleanup(func() { s.Close() })
		fn(t, s, f)
	}
	t.Run("sqlite", func(t *testing.T) { run(t, sqliteOptions) })
	t.Run("postgresql", func(t *testing.T) {
		skipWithoutPG(t)
		run(t, pgOptions)
	})
}

func randomBody(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return append([]byte("Subject: big\r\n\r\n"), b...)
}

// TestS3LargeBody: a large body (in memory and spooled) goes to the
// bucket, reads back byte-identical, is in no database column, and its
// object goes with the last reference.
func TestS3LargeBody(t *testing.T) {
	s3Flavors(t, func(t *testing.T, s *Store, f *s3fake.Server) {
		ctx := t.Context()
		expungeFixture(t, s, "alice", "bob")
		if !s.BodiesInDatabase() {
			t.Fatal("BodiesInDatabase is false with a bucket")
		}
		big := randomBody(5 << 20)
		small := []byte("Subject: small\r\n\r\nhi\r\n")
		deliver(t, s, "m1", big, "alice", "bob")
		deliver(t, s, "m2", small, "alice")

		// A spooled body (inbound's path): the file stays the caller's.
		spooled := randomBody(300 << 10)
		w, err := s.Blobs().Create()
		must(t, err)
		_, err = w.Write(spooled)
		must(t, err)
		spool, err := w.Commit()
		must(t, err)
		must(t, s.CommitMessages(ctx, []*store.NewMessage{{ID: "m3", Sender: "s@remote.test", BlobName: spool,
			Targets: []store.MailboxTarget{{User: "alice@example.test"}}}}))
		if _, err := s.Blobs().Stat(spool); err != nil {
			t.Fatalf("spool removed by the store: %v", err)
		}
		if keys := f.Keys(); len(keys) != 2 {
			t.Fatalf("bucket holds %v, want 2 objects", keys)
		}
		if n := blobCount(t, s); n != 1 { // the spool only
			t.Fatalf("%d blob files, want 1 (the spool)", n)
		}
		if s.Flavor() == FlavorPostgreSQL {
			var n int
			must(t, s.readConn().queryRow(ctx, `SELECT COUNT(*) FROM body_chunk`).Scan(&n))
			if n != 0 {
				t.Fatalf("%d body_chunk rows", n)
			}
		}
		var inDB int64
		must(t, s.readConn().queryRow(ctx, `SELECT COALESCE(SUM(LENGTH(data)), 0) FROM body`).Scan(&inDB))
		if inDB > int64(len(small)) {
			t.Fatalf("database holds %d body bytes", inDB)
		}

		l, err := s.ListMessages(ctx, "alice@example.test", "INBOX")
		must(t, err)
		if len(l) != 3 {
			t.Fatalf("%d messages", len(l))
		}
		for i, want := range [][]byte{big, small, spooled} {
			r, err := s.OpenBody(ctx, l[i].BodyID)
			must(t, err)
			got, err := io.ReadAll(r)
			must(t, err)
			if !bytes.Equal(got, want) {
				t.Fatalf("body %d differs (%d bytes, want %d)", i, len(got), len(want))
			}
			if ra, ok := r.(io.ReaderAt); ok && len(want) > 1<<20 {
				p := make([]byte, 64)
				if _, err := ra.ReadAt(p, 1<<20); err != nil || !bytes.Equal(p, want[1<<20:1<<20+64]) {
					t.Fatalf("ReadAt: %v", err)
				}
			} else if !ok {
				t.Fatal("body reader is no io.ReaderAt")
			}
			r.Close()
		}
		seen := 0
		must(t, s.ReadBodies(ctx, []int64{l[0].BodyID, l[2].BodyID}, func(id int64, r io.ReaderAt, size int64) error {
			seen++
			if id == l[0].BodyID && size != int64(len(big)) {
				t.Errorf("ReadBodies size %d", size)
			}
			return nil
		}))
		if seen != 2 {
			t.Fatalf("ReadBodies saw %d", seen)
		}

		// alice's copy goes: bob still references the object.
		must(t, s.ExpungeMessages(ctx, "alice@example.test", "INBOX", []uint32{l[0].UID, l[2].UID}))
		s.releaseNow(ctx)
		if keys := f.Keys(); len(keys) != 1 {
			t.Fatalf("after alice's expunge the bucket holds %v, want bob's object", keys)
		}
		lb, err := s.ListMessages(ctx, "bob@example.test", "INBOX")
		must(t, err)
		must(t, s.ExpungeMessages(ctx, "bob@example.test", "INBOX", []uint32{lb[0].UID}))
		s.releaseNow(ctx)
		if keys := f.Keys(); len(keys) != 0 {
			t.Fatalf("after the last reference the bucket holds %v", keys)
		}
	})
}

// TestS3Down: with the bucket unreachable a large delivery fails whole
// (nothing stored, ErrBodyStore), a small one still goes inline; after a
// restart the large one is stored.
func TestS3Down(t *testing.T) {
	s3Flavors(t, func(t *testing.T, s *Store, f *s3fake.Server) {
		ctx := t.Context()
		expungeFixture(t, s, "alice")
		f.Stop()
		big := randomBody(1 << 20)
		err := s.CommitMessages(ctx, []*store.NewMessage{{ID: "m1", Sender: "s@remote.test", Body: big,
			Targets: []store.MailboxTarget{{User: "alice@example.test"}}}})
		if !errors.Is(err, ErrBodyStore) {
			t.Fatalf("delivery with S3 down: %v, want ErrBodyStore", err)
		}
		deliver(t, s, "m2", []byte("Subject: s\r\n\r\nx\r\n"), "alice")
		if l, _ := s.ListMessages(ctx, "alice@example.test", "INBOX"); len(l) != 1 {
			t.Fatalf("%d messages stored, want the small one", len(l))
		}
		f.Restart()
		deliver(t, s, "m1", big, "alice")
		if keys := f.Keys(); len(keys) != 1 {
			t.Fatalf("bucket %v", keys)
		}
	})
}

// TestS3Orphans: CollectGarbage deletes old objects no row names and
// leaves young ones and referenced ones.
func TestS3Orphans(t *testing.T) {
	s3Flavors(t, func(t *testing.T, s *Store, f *s3fake.Server) {
		ctx := t.Context()
		expungeFixture(t, s, "alice")
		deliver(t, s, "m1", randomBody(10<<10), "alice")
		orphan, err := s.objs.Put(ctx, bytes.NewReader([]byte("x")), 1)
		must(t, err)
		must(t, s.CollectGarbage(ctx))
		if keys := f.Keys(); len(keys) != 2 {
			t.Fatalf("young orphan removed: %v", keys)
		}
		n, err := s.sweepObjects(ctx, time.Now().Add(time.Minute))
		must(t, err)
		if n != 1 {
			t.Fatalf("swept %d, want 1", n)
		}
		if ok, _ := s.objs.Exists(ctx, orphan); ok {
			t.Fatal("orphan still there")
		}
		if keys := f.Keys(); len(keys) != 1 {
			t.Fatalf("referenced object removed: %v", keys)
		}
		var name sql.NullString
		must(t, s.readConn().queryRow(ctx, `SELECT blob_name FROM body WHERE blob_name IS NOT NULL`).Scan(&name))
		if !bucket.IsName(name.String) {
			t.Fatalf("blob_name %q", name.String)
		}
	})
}
