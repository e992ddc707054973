package tests

import (
	"fmt"
	"testing"

	"github.com/petrelmail/petrel/internal/relay/sinktest"
)

// TestRemoteLocalPartKeepsCase: a remote recipient submitted on 465 is
// queued and relayed with its local part exactly as given (RFC 5321 2.4:
// only the receiving host may interpret its case); the domain is
// normalised (issue 17).
func TestRemoteLocalPartKeepsCase(t *testing.T) {
	sink := sinktest.Start(t, sinktest.Options{})
	s := withUsers(t, map[string]string{"RELAYHOST": fmt.Sprintf("[127.0.0.1]:%d", sink.Port())})
	submit(t, s, "alice@example.test", "Secret-Alice-1", "alice@example.test",
		[]string{"CaseCheck.MiXeD@Remote.Example", "Bob@Example.Test"},
		"From: alice@example.test\r\nTo: CaseCheck.MiXeD@Remote.Example\r\nSubject: case\r\n\r\nhi\r\n")
	got := waitSink(t, sink, 1, s)[0]
	if len(got.To) != 1 || got.To[0] != "CaseCheck.MiXeD@remote.example" {
		t.Fatalf("relayed to %q, want [CaseCheck.MiXeD@remote.example]\n%s", got.To, s.logs())
	}
	if !s.waitLog("mailboxes=[bob@example.test]") {
		t.Errorf("the local recipient Bob@Example.Test was not delivered to bob@example.test:\n%s", s.logs())
	}
}
