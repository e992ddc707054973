package bucket_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"testing"

	"github.com/petrelmail/petrel/internal/store/bucket"
	"github.com/petrelmail/petrel/internal/testutil/s3fake"
)

func open(t *testing.T, f *s3fake.Server) *bucket.Bucket {
	t.Helper()
	b, err := bucket.New(bucket.Config{Endpoint: f.Endpoint(), Bucket: s3fake.Bucket,
		AccessKey: s3fake.AccessKey, SecretKey: s3fake.SecretKey, Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPutOpenRemove(t *testing.T) {
	f := s3fake.Start(t)
	b := open(t, f)
	ctx := context.Background()
	if err := b.Probe(ctx); err != nil {
		t.Fatalf("probe: %v", err)
	}
	body := make([]byte, 3<<20+17)
	rand.Read(body)
	name, err := b.Put(ctx, bytes.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	if !bucket.IsName(name) {
		t.Fatalf("name %q", name)
	}
	if keys := f.Keys(); len(keys) != 1 || keys[0] != "bodies/"+name[len(bucket.Prefix):] {
		t.Fatalf("keys %v", keys)
	}
	o, err := b.Open(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(o)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("read back: %v, equal %v", err, bytes.Equal(got, body))
	}
	p := make([]byte, 100)
	if _, err := o.ReadAt(p, 2<<20); err != nil || !bytes.Equal(p, body[2<<20:2<<20+100]) {
		t.Fatalf("ReadAt: %v", err)
	}
	o.Close()
	if err := b.Remove(ctx, name); err != nil {
		t.Fatal(err)
	}
	if err := b.Remove(ctx, name); err != nil {
		t.Fatalf("second remove: %v", err)
	}
	if _, err := b.Open(ctx, name); err == nil {
		t.Fatal("open after remove succeeded")
	}
	if keys := f.Keys(); len(keys) != 0 {
		t.Fatalf("keys left %v", keys)
	}
}

func TestDown(t *testing.T) {
	f := s3fake.Start(t)
	b := open(t, f)
	f.Stop()
	if _, err := b.Put(context.Background(), bytes.NewReader([]byte("x")), 1); err == nil {
		t.Fatal("put to a stopped server succeeded")
	}
	if err := b.Probe(context.Background()); err == nil {
		t.Fatal("probe of a stopped server succeeded")
	}
	f.Restart()
	if _, err := b.Put(context.Background(), bytes.NewReader([]byte("x")), 1); err != nil {
		t.Fatalf("after restart: %v", err)
	}
}

// TestLargePut: a body over minio-go's default 16 MiB part size still goes
// up (as one PUT) and reads back whole.
func TestLargePut(t *testing.T) {
	f := s3fake.Start(t)
	b := open(t, f)
	ctx := context.Background()
	body := make([]byte, 17<<20+5)
	rand.Read(body)
	name, err := b.Put(ctx, bytes.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	o, err := b.Open(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	got, err := io.ReadAll(o)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("read back: %v, %d bytes of %d", err, len(got), len(body))
	}
}
