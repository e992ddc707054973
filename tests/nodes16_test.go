package tests

// Two `petrel serve` nodes on one PostgreSQL, for what issue 16 moved from
// a node's DATA_DIR into the store: DKIM keys, large bodies and the
// failed-login limits. Skipped without PETREL_TEST_PG_DSN
// (internal/store/sqlstore/testdata/pg-start.sh).

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/petrelmail/petrel/internal/relay/sinktest"
	"github.com/petrelmail/petrel/internal/testutil"
)

// twoNodes prepares two servers on one fresh PostgreSQL schema, each with
// its own DATA_DIR (nothing shared on disk), with example.test and alice
// created through node A. They are not started.
func twoNodes(t *testing.T, settings map[string]string) (a, b *server) {
	t.Helper()
	env := map[string]string{"SQLALCHEMY_DATABASE_URI": testutil.PGSchemaDSN(t)}
	for k, v := range settings {
		env[k] = v
	}
	a, b = newServer(t, env), newServer(t, env)
	a.mustCLI("", "domain", "example.test")
	a.mustCLI("Secret-Alice-1\n", "user", "alice", "example.test", "-")
	return a, b
}

// A key generated through node A signs mail submitted on node B, and no
// node keeps a key file of its own.
func TestNodesShareDKIMKey(t *testing.T) {
	sink := sinktest.Start(t, sinktest.Options{})
	a, b := twoNodes(t, map[string]string{"RELAYHOST": fmt.Sprintf("[127.0.0.1]:%d", sink.Port())})
	a.mustCLI("", "dkim", "example.test") // a fresh key, replacing the one the domain got
	a.start()
	b.start()

	msg := "From: Alice <alice@example.test>\r\nTo: friend@remote.example\r\nSubject: from node B\r\n\r\nSigned on B.\r\n"
	submit(t, b, "alice@example.test", "Secret-Alice-1", "alice@example.test", []string{"friend@remote.example"}, msg)
	got := waitSink(t, sink, 1, b)[0]
	if !bytes.Contains(got.Data, []byte("d=example.test")) {
		t.Fatalf("node B sent the message unsigned:\n%s\n%s", got.Data, b.logs())
	}
	// The record node A publishes verifies what node B signed.
	verifs, err := dkim.VerifyWithOptions(bytes.NewReader(got.Data), &dkim.VerifyOptions{LookupTXT: dkimLookup(t, a, "example.test")})
	if err != nil || len(verifs) != 1 || verifs[0].Err != nil {
		t.Fatalf("DKIM verification against node A's record: err=%v verifs=%+v\n%s", err, verifs, got.Data)
	}
	for _, n := range []*server{a, b} {
		if keys, _ := filepath.Glob(filepath.Join(n.dataDir, "dkim", "*")); len(keys) != 0 {
			t.Errorf("a node keeps DKIM key files although DKIM_PATH is unset: %v", keys)
		}
	}
}

// A Mailu key file at node B's DKIM_PATH that the store lacks is imported
// when B starts, and then signs on node A too.
func TestNodesImportDKIMFile(t *testing.T) {
	sink := sinktest.Start(t, sinktest.Options{})
	a, b := twoNodes(t, map[string]string{"RELAYHOST": fmt.Sprintf("[127.0.0.1]:%d", sink.Port())})
	// mailu.test comes without a key; node B alone gets Mailu's key file.
	conf := filepath.Join(t.TempDir(), "conf.yaml")
	if err := os.WriteFile(conf, []byte("domain:\n  - name: mailu.test\n    dkim_key: ''\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a.mustCLI("", "config-import", conf)
	a.mustCLI("Secret-Carol-3\n", "user", "carol", "mailu.test", "-")
	if rec := a.mustCLI("", "dns", "mailu.test"); strings.Contains(rec, "v=DKIM1") {
		t.Fatalf("mailu.test has a key before the import:\n%s", rec)
	}
	key := writeDKIM(t, filepath.Join(b.dataDir, "dkim"), "mailu.test")
	b.start()
	if !b.waitLog("DKIM keys imported from DKIM_PATH into the store") {
		t.Fatalf("node B did not import the key file:\n%s", b.logs())
	}
	a.start()
	msg := "From: carol@mailu.test\r\nTo: friend@remote.example\r\nSubject: imported key\r\n\r\nHi.\r\n"
	submit(t, a, "carol@mailu.test", "Secret-Carol-3", "carol@mailu.test", []string{"friend@remote.example"}, msg)
	got := waitSink(t, sink, 1, a)[0]
	verifs, err := dkim.VerifyWithOptions(bytes.NewReader(got.Data), &dkim.VerifyOptions{LookupTXT: dkimLookup(t, b, "mailu.test")})
	if err != nil || len(verifs) != 1 || verifs[0].Err != nil {
		t.Fatalf("DKIM verification: err=%v verifs=%+v\n%s", err, verifs, got.Data)
	}
	exported := a.mustCLI("", "config-export", "--secrets")
	if !strings.Contains(exported, strings.SplitN(strings.TrimSpace(string(key)), "\n", 3)[1]) {
		t.Errorf("config-export on node A does not carry the imported key")
	}
	if _, err := os.Stat(filepath.Join(a.dataDir, "dkim")); !os.IsNotExist(err) {
		t.Errorf("node A wrote a DKIM directory: %v", err)
	}
}
