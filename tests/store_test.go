package tests

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/petrelmail/petrel/internal/store/sqlstore"
)

// openStore opens the server's database directly; only call it while the
// server is not running.
func openStore(t *testing.T, s *server) *sqlstore.Store {
	t.Helper()
	st, err := sqlstore.Open(context.Background(), sqlstore.Options{
		Flavor:  "sqlite",
		Path:    filepath.Join(s.dataDir, "main.db"),
		BlobDir: filepath.Join(s.dataDir, "blobs"),
	})
	if err != nil {
		t.Fatalf("opening the store after the server stopped: %v", err)
	}
	return st
}

// countMessages counts the messages in a user's INBOX.
func countMessages(t *testing.T, s *server, user string) int {
	t.Helper()
	st := openStore(t, s)
	defer st.Close()
	msgs, err := st.ListMessages(context.Background(), user, "INBOX")
	if err != nil {
		t.Fatalf("listing %s INBOX: %v", user, err)
	}
	return len(msgs)
}

// countQueue counts outbound queue entries.
func countQueue(t *testing.T, s *server) int {
	t.Helper()
	st := openStore(t, s)
	defer st.Close()
	items, err := st.ListQueue(context.Background())
	if err != nil {
		t.Fatalf("listing the queue: %v", err)
	}
	return len(items)
}

// stopClean stops the server with SIGTERM and requires exit status 0.
func (s *server) stopClean() {
	s.t.Helper()
	if err := s.stop(); err != nil {
		s.t.Fatalf("petrel exited with %v after SIGTERM\n%s", err, s.logs())
	}
}
