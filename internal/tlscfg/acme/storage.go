package acme

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/petrelmail/petrel/internal/store"
)

// Lease timing: a lease is held for leaseTTL and extended every
// leaseRefresh while its holder lives, so a node that dies mid-issuance
// blocks the others for at most leaseTTL. lockPoll is how often a waiting
// node tries again.
const (
	leaseTTL     = 2 * time.Minute
	leaseRefresh = 30 * time.Second
	lockPoll     = time.Second
)

// storage is certmagic.Storage over the store's certificate tree. Keys
// live under prefix, so the ECDSA and RSA managers, which certmagic would
// otherwise file under the same names, keep apart.
type storage struct {
	kv     store.CertStorage
	prefix string
	node   string // this process; lease owners are node + a counter
	now    func() time.Time

	mu    sync.Mutex
	held  map[string]heldLease // lock name -> this process's lease
	count uint64
}

type heldLease struct {
	owner string
	stop  context.CancelFunc
	done  chan struct{}
}

var (
	_ certmagic.Storage   = (*storage)(nil)
	_ certmagic.TryLocker = (*storage)(nil)
)

func newStorage(kv store.CertStorage, prefix, node string) *storage {
	return &storage{kv: kv, prefix: prefix, node: node, now: time.Now, held: map[string]heldLease{}}
}

// newNodeID names this process in lease rows (for people reading them, and
// unique so two nodes never share a lease).
func newNodeID(host string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return host + "-" + hex.EncodeToString(b[:])
}

func (s *storage) key(k string) string {
	if k == "" {
		return s.prefix
	}
	return path.Join(s.prefix, k)
}

func (s *storage) unkey(k string) string {
	if len(k) > len(s.prefix) {
		return k[len(s.prefix)+1:]
	}
	return ""
}

// notExist makes the store's ErrNotFound the fs.ErrNotExist certmagic tests for.
func notExist(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: %w", fs.ErrNotExist, err)
	}
	return err
}

func (s *storage) Store(ctx context.Context, key string, value []byte) error {
	return s.kv.PutCert(ctx, s.key(key), value)
}

func (s *storage) Load(ctx context.Context, key string) ([]byte, error) {
	v, err := s.kv.GetCert(ctx, s.key(key))
	return v, notExist(err)
}

func (s *storage) Delete(ctx context.Context, key string) error {
	return notExist(s.kv.DeleteCert(ctx, s.key(key)))
}

func (s *storage) Exists(ctx context.Context, key string) bool {
	_, err := s.kv.StatCert(ctx, s.key(key))
	return err == nil
}

func (s *storage) List(ctx context.Context, dir string, recursive bool) ([]string, error) {
	keys, err := s.kv.ListCerts(ctx, s.key(dir), recursive)
	if err != nil {
		return nil, notExist(err)
	}
	for i, k := range keys {
		keys[i] = s.unkey(k)
	}
	return keys, nil
}

func (s *storage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	e, err := s.kv.StatCert(ctx, s.key(key))
	if err != nil {
		return certmagic.KeyInfo{}, notExist(err)
	}
	return certmagic.KeyInfo{Key: key, Modified: e.Modified, Size: e.Size, IsTerminal: e.Terminal}, nil
}

// Lock waits until this process holds the lease name (every node's lease
// on the same name is one row) or ctx ends.
func (s *storage) Lock(ctx context.Context, name string) error {
	for {
		ok, err := s.TryLock(ctx, name)
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for certificate lock %q: %w", name, ctx.Err())
		case <-time.After(lockPoll):
		}
	}
}

// TryLock takes the lease name if no one holds it. Each call has its own
// owner, so two goroutines of one process exclude each other too.
func (s *storage) TryLock(ctx context.Context, name string) (bool, error) {
	s.mu.Lock()
	if _, mine := s.held[name]; mine {
		s.mu.Unlock()
		return false, nil
	}
	s.count++
	owner := fmt.Sprintf("%s/%d", s.node, s.count)
	s.mu.Unlock()

	ok, err := s.kv.TryCertLock(ctx, s.key(name), owner, s.now().Add(leaseTTL))
	if err != nil || !ok {
		return false, err
	}
	lctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	h := heldLease{owner: owner, stop: stop, done: make(chan struct{})}
	s.mu.Lock()
	s.held[name] = h
	s.mu.Unlock()
	go s.keepLease(lctx, name, h)
	return true, nil
}

// keepLease extends a held lease until it is given up.
func (s *storage) keepLease(ctx context.Context, name string, h heldLease) {
	defer close(h.done)
	t := time.NewTicker(leaseRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, _ = s.kv.TryCertLock(ctx, s.key(name), h.owner, s.now().Add(leaseTTL))
		}
	}
}

func (s *storage) Unlock(ctx context.Context, name string) error {
	s.mu.Lock()
	h, ok := s.held[name]
	delete(s.held, name)
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("certificate lock %q is not held by this node", name)
	}
	h.stop()
	<-h.done
	return s.kv.UnlockCert(context.WithoutCancel(ctx), s.key(name), h.owner)
}

func (s *storage) String() string { return "petrel store:" + s.prefix }
