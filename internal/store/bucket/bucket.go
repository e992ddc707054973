// Package bucket keeps large message bodies in an S3-compatible object
// store (BLOB_S3_*), through github.com/minio/minio-go/v7. Objects are
// named by a random 128-bit name, like blob files, and one object belongs
// to exactly one body row: a body shared by N recipients is one row with
// N references, so deleting the row (its last reference) may delete the
// object without asking anyone else. Content addressing would dedupe
// identical bodies across rows, but then a delete would race a delivery
// that is about to reference the same object; random names cannot.
package bucket

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Prefix is what a body row's blob_name starts with when its bytes are an
// object in the bucket; the rest is the object's name.
const Prefix = "s3:"

// keyPrefix is the folder of body objects inside the bucket.
const keyPrefix = "bodies/"

const nameLen = 32

// ErrNotFound is returned when an object does not exist.
var ErrNotFound = errors.New("bucket: object not found")

// Config is the BLOB_S3_* settings.
type Config struct {
	Endpoint  string // host[:port]; a scheme, if given, decides TLS
	Bucket    string
	AccessKey string
	SecretKey string
	Region    string
	TLS       bool
	// Timeout bounds one request (PUT of a body, GET of a range, DELETE);
	// 0 means 2 minutes.
	Timeout time.Duration
}

// Bucket is an opened bucket. It is safe for concurrent use.
type Bucket struct {
	c       *minio.Client
	bucket  string
	timeout time.Duration
	where   string // endpoint/bucket, for messages (never the keys)
}

// New returns a client for cfg. It does not contact the server.
func New(cfg Config) (*Bucket, error) {
	host, secure := cfg.Endpoint, cfg.TLS
	if i := strings.Index(host, "://"); i >= 0 {
		u, err := url.Parse(host)
		if err != nil {
			return nil, fmt.Errorf("bucket: BLOB_S3_ENDPOINT: %w", err)
		}
		host, secure = u.Host, u.Scheme == "https"
	}
	host = strings.TrimSuffix(host, "/")
	if host == "" || cfg.Bucket == "" {
		return nil, errors.New("bucket: BLOB_S3_ENDPOINT and BLOB_S3_BUCKET are required")
	}
	tr, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, fmt.Errorf("bucket: %w", err)
	}
	tr.ResponseHeaderTimeout = 30 * time.Second
	c, err := minio.New(host, &minio.Options{
		Creds:     credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:    secure,
		Region:    cfg.Region,
		Transport: http.RoundTripper(tr),
		// A delivery waits for the PUT: fail fast and let the client
		// retry (451) rather than hold the session for minutes.
		MaxRetries:   2,
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		return nil, fmt.Errorf("bucket: %w", err)
	}
	t := cfg.Timeout
	if t <= 0 {
		t = 2 * time.Minute
	}
	return &Bucket{c: c, bucket: cfg.Bucket, timeout: t, where: host + "/" + cfg.Bucket}, nil
}

// String names the endpoint and bucket (no credentials).
func (b *Bucket) String() string { return b.where }

// IsName reports whether blobName names an object (has Prefix).
func IsName(blobName string) bool {
	return strings.HasPrefix(blobName, Prefix) && validName(blobName[len(Prefix):])
}

func validName(n string) bool {
	if len(n) != nameLen {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func key(blobName string) (string, error) {
	if !IsName(blobName) {
		return "", fmt.Errorf("bucket: invalid name %q", blobName)
	}
	return keyPrefix + blobName[len(Prefix):], nil
}

// Put stores size bytes from r as a new object and returns its blob name
// (Prefix + random name). It returns only once the server has answered
// the PUT (or the last part of a multipart upload) with success: the
// object is then stored.
func (b *Bucket) Put(ctx context.Context, r io.Reader, size int64) (string, error) {
	var raw [nameLen / 2]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("bucket: %w", err)
	}
	name := Prefix + hex.EncodeToString(raw[:])
	k, _ := key(name)
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	info, err := b.c.PutObject(ctx, b.bucket, k, r, size, minio.PutObjectOptions{
		ContentType: "message/rfc822",
		// One PUT streamed from r (a file or a byte slice, both
		// seekable, so nothing is buffered), up to S3's 5 GiB limit
		// for a single PUT, far above any MESSAGE_SIZE_LIMIT. A
		// multipart upload would buffer a part in memory per thread.
		DisableMultipart: true,
	})
	if err != nil {
		return "", fmt.Errorf("bucket: put %s to %s: %w", k, b.where, err)
	}
	if info.Size != size {
		_ = b.Remove(context.WithoutCancel(ctx), name)
		return "", fmt.Errorf("bucket: put %s to %s: stored %d bytes, want %d", k, b.where, info.Size, size)
	}
	return name, nil
}

// Object is a stored body being read: io.ReadCloser, io.ReaderAt and
// io.Seeker. Reads stream from the server (ranged GETs); nothing is
// buffered whole.
type Object struct {
	*minio.Object
	size int64
}

// Size is the object's length.
func (o *Object) Size() int64 { return o.size }

// Open opens an object for reading; ErrNotFound if it does not exist.
// The reader outlives ctx's cancellation (an IMAP FETCH streams later)
// but keeps its values.
func (b *Bucket) Open(ctx context.Context, blobName string) (*Object, error) {
	k, err := key(blobName)
	if err != nil {
		return nil, err
	}
	obj, err := b.c.GetObject(context.WithoutCancel(ctx), b.bucket, k, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("bucket: get %s: %w", k, err)
	}
	st, err := obj.Stat()
	if err != nil {
		obj.Close()
		if isNotFound(err) {
			return nil, fmt.Errorf("bucket: get %s: %w", k, ErrNotFound)
		}
		return nil, fmt.Errorf("bucket: get %s from %s: %w", k, b.where, err)
	}
	return &Object{Object: obj, size: st.Size}, nil
}

// Remove deletes an object; removing one that does not exist is not an
// error, so removal can be retried.
func (b *Bucket) Remove(ctx context.Context, blobName string) error {
	k, err := key(blobName)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	if err := b.c.RemoveObject(ctx, b.bucket, k, minio.RemoveObjectOptions{}); err != nil && !isNotFound(err) {
		return fmt.Errorf("bucket: remove %s from %s: %w", k, b.where, err)
	}
	return nil
}

// Exists reports whether the object is stored (HEAD).
func (b *Bucket) Exists(ctx context.Context, blobName string) (bool, error) {
	k, err := key(blobName)
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	_, err = b.c.StatObject(ctx, b.bucket, k, minio.StatObjectOptions{})
	if isNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("bucket: stat %s: %w", k, err)
	}
	return true, nil
}

// Names calls fn for every body object with its last-modified time, in
// key order; it stops at fn's first error.
func (b *Bucket) Names(ctx context.Context, fn func(blobName string, mod time.Time) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for o := range b.c.ListObjects(ctx, b.bucket, minio.ListObjectsOptions{Prefix: keyPrefix, Recursive: true}) {
		if o.Err != nil {
			return fmt.Errorf("bucket: list %s: %w", b.where, o.Err)
		}
		n := Prefix + strings.TrimPrefix(o.Key, keyPrefix)
		if !IsName(n) {
			continue
		}
		if err := fn(n, o.LastModified); err != nil {
			return err
		}
	}
	return nil
}

// Probe checks that the bucket exists and that an object can be written,
// read back and deleted, as `petrel doctor` reports it. It leaves nothing
// behind when it succeeds.
func (b *Bucket) Probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ok, err := b.c.BucketExists(ctx, b.bucket)
	if err != nil {
		return fmt.Errorf("HEAD bucket %s: %w", b.where, err)
	}
	if !ok {
		return fmt.Errorf("bucket %s does not exist", b.where)
	}
	payload := "petrel doctor probe\r\n"
	k := "probe/" + fmt.Sprint(time.Now().UnixNano())
	if _, err := b.c.PutObject(ctx, b.bucket, k, strings.NewReader(payload), int64(len(payload)), minio.PutObjectOptions{}); err != nil {
		return fmt.Errorf("PUT probe object in %s: %w", b.where, err)
	}
	if err := b.c.RemoveObject(ctx, b.bucket, k, minio.RemoveObjectOptions{}); err != nil {
		return fmt.Errorf("DELETE probe object %s in %s: %w", k, b.where, err)
	}
	return nil
}

func isNotFound(err error) bool {
	if err == nil {
		return false
	}
	r := minio.ToErrorResponse(err)
	return r.Code == "NoSuchKey" || r.StatusCode == http.StatusNotFound
}
