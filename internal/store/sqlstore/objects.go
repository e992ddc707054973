package sqlstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/store/bucket"
)

// Bodies in an S3-compatible bucket (BLOB_S3_*, Options.Objects): a body
// over InlineMax is PUT to the bucket before the transaction that inserts
// its row, under a random name, and the row's blob_name is bucket.Prefix
// plus that name (data is NULL, as for a blob file). So the object exists
// before any row names it, and a failed PUT fails the delivery before
// anything is stored. The row's delete trigger lists the name in
// blob_trash like a file's, and emptyTrash deletes the object; an object
// no row names (a crash between PUT and COMMIT) is deleted by
// CollectGarbage once older than OrphanAge.

// ErrBodyStore is store.ErrBodyStore.
var ErrBodyStore = store.ErrBodyStore

// putObject stores size bytes from r in the bucket and returns the body's
// blob name.
func (s *Store) putObject(ctx context.Context, r io.Reader, size int64) (string, error) {
	name, err := s.objs.Put(ctx, r, size)
	if err != nil {
		s.log.Warn("body store: PUT failed, delivery refused for now", "bucket", s.objs.String(), "size", size, "err", err)
		return "", fmt.Errorf("%w: %w", ErrBodyStore, err)
	}
	return name, nil
}

// putObjectFromFile copies a spooled blob file into the bucket; the file
// stays its owner's.
func (s *Store) putObjectFromFile(ctx context.Context, file string, size int64) (string, error) {
	f, err := s.blobs.Open(file)
	if err != nil {
		return "", fmt.Errorf("store body: %w", err)
	}
	defer f.Close()
	return s.putObject(ctx, f, size)
}

// readSmallFile reads a spooled blob of at most InlineMax bytes.
func (s *Store) readSmallFile(file string) ([]byte, error) {
	f, err := s.blobs.Open(file)
	if err != nil {
		return nil, fmt.Errorf("store body: %w", err)
	}
	defer f.Close()
	var b bytes.Buffer
	if _, err := io.Copy(&b, io.LimitReader(f, s.inline+1)); err != nil {
		return nil, fmt.Errorf("store body: %w", err)
	}
	return b.Bytes(), nil
}

// removeBlob deletes a body's blob file or object; a missing one is not
// an error.
func (s *Store) removeBlob(ctx context.Context, name string) error {
	if bucket.IsName(name) {
		if s.objs == nil {
			return fmt.Errorf("sqlstore: body %s is in an S3 bucket but BLOB_S3_* is not set", name)
		}
		return s.objs.Remove(context.WithoutCancel(ctx), name)
	}
	return s.blobs.Remove(name)
}

// blobReader is what openBlob returns: a file or an object.
type blobReader interface {
	io.ReadCloser
	io.ReaderAt
	io.Seeker
}

// openBlob opens a body's blob file or object and returns its size. A
// missing one is store.ErrNotFound.
func (s *Store) openBlob(ctx context.Context, name string) (blobReader, int64, error) {
	if bucket.IsName(name) {
		if s.objs == nil {
			return nil, 0, fmt.Errorf("body %s is in an S3 bucket but BLOB_S3_* is not set", name)
		}
		o, err := s.objs.Open(ctx, name)
		if errors.Is(err, bucket.ErrNotFound) {
			return nil, 0, fmt.Errorf("%w: %w", store.ErrNotFound, err)
		}
		if err != nil {
			return nil, 0, fmt.Errorf("%w: %w", ErrBodyStore, err)
		}
		return o, o.Size(), nil
	}
	f, err := s.blobs.Open(name)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, 0, fmt.Errorf("%w: %w", store.ErrNotFound, err)
		}
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

// ObjectStore returns the bucket large bodies go to, or nil.
func (s *Store) ObjectStore() *bucket.Bucket { return s.objs }

// sweepObjects deletes the body objects no body row names that were last
// modified before cutoff (a crash between the PUT and the COMMIT, a group
// that failed with its outcome unknown), and returns how many.
func (s *Store) sweepObjects(ctx context.Context, cutoff time.Time) (int, error) {
	return s.sweepUnreferenced(ctx, cutoff, s.objs.Names, func(name string) error { return s.objs.Remove(ctx, name) })
}

// copyFileToBucket PUTs one of s's blob files into dst's bucket (petrel
// migrate-store) and returns the new blob name.
func (s *Store) copyFileToBucket(ctx context.Context, dst *Store, file string) (string, error) {
	f, err := s.blobs.Open(file)
	if err != nil {
		return "", fmt.Errorf("sqlstore: copy: body file %s: %w", file, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("sqlstore: copy: body file %s: %w", file, err)
	}
	n, err := dst.putObject(ctx, f, fi.Size())
	if err != nil {
		return "", fmt.Errorf("sqlstore: copy: body file %s: %w", file, err)
	}
	return n, nil
}
