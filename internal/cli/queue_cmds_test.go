package cli_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/store/sqlstore"
)

// queueSome queues two messages (three entries, one with the null
// sender) and returns the entries by recipient.
func queueSome(t *testing.T, e *env) map[string]store.QueueItem {
	t.Helper()
	st := e.store()
	defer st.Close()
	ctx := context.Background()
	msgs := []*store.NewMessage{
		{ID: "msg-one", Sender: "alice@example.com", Body: []byte("Subject: one\r\n\r\nhi\r\n"),
			Remote: []string{"bob@remote.example", "carol@other.example"}},
		{ID: "msg-dsn", Sender: "", Body: []byte("Subject: bounce\r\n\r\nx\r\n"), Remote: []string{"dan@remote.example"}, RequireTLS: true},
	}
	if err := st.CommitMessages(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	return entriesOf(t, st)
}

func entriesOf(t *testing.T, st *sqlstore.Store) map[string]store.QueueItem {
	t.Helper()
	l, err := st.ListQueueEntries(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]store.QueueItem{}
	for _, q := range l {
		out[q.Recipient] = q
	}
	return out
}

func (e *env) entries() map[string]store.QueueItem {
	e.t.Helper()
	st := e.store()
	defer st.Close()
	return entriesOf(e.t, st)
}

func TestQueueList(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if r := e.ok("", "queue"); r.stdout != "queue is empty\n" {
		t.Fatalf("empty queue: %q", r.stdout)
	}
	q := queueSome(t, e)
	// Defer bob's entry as a worker would after a 4xx.
	st := e.store()
	ctx := context.Background()
	now := time.Now().Add(time.Second)
	if _, err := st.ClaimQueue(ctx, "w", now, time.Minute, 10); err != nil {
		t.Fatal(err)
	}
	next := now.Add(time.Hour)
	err := st.UpdateQueue(ctx, "w", []store.QueueUpdate{
		{ID: q["bob@remote.example"].ID, NextAttempt: next, LastAttempt: now, LastCode: 451,
			LastError: "temporary failure from mx.remote.example: 451 4.7.1 greylisted\r\ntry later"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.ReleaseQueueLeases(ctx, "w", nil); err != nil {
		t.Fatal(err)
	}
	st.Close()

	r := e.ok("", "queue")
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("queue listing has %d lines, want a header, 3 entries and a total:\n%s", len(lines), r.stdout)
	}
	for _, col := range []string{"ID", "MESSAGE-ID", "SENDER", "RECIPIENT", "ATTEMPTS", "NEXT ATTEMPT", "STATUS", "LAST ERROR"} {
		if !strings.Contains(lines[0], col) {
			t.Errorf("header %q lacks %s", lines[0], col)
		}
	}
	row := func(rcpt string) []string {
		for _, l := range lines[1:] {
			if strings.Contains(l, rcpt) {
				return strings.Fields(l)
			}
		}
		t.Fatalf("no row for %s:\n%s", rcpt, r.stdout)
		return nil
	}
	bob := row("bob@remote.example")
	if bob[0] != fmt.Sprint(q["bob@remote.example"].ID) || bob[1] != "msg-one" || bob[2] != "alice@example.com" ||
		bob[4] != "1" || bob[5] != next.UTC().Format("2006-01-02") || bob[7] != "deferred" ||
		!strings.Contains(strings.Join(bob, " "), "451 4.7.1 greylisted try later") {
		t.Errorf("bob's row: %q", bob)
	}
	if dan := row("dan@remote.example"); dan[2] != "<>" || dan[1] != "msg-dsn" || dan[5] != "now" || dan[6] != "queued" {
		t.Errorf("null-sender row: %q", dan)
	}
	if lines[4] != "-- 3 entries, 0 held" {
		t.Errorf("total line %q", lines[4])
	}

	r = e.ok("", "queue", "--json")
	var js []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &js); err != nil {
		t.Fatalf("--json: %v\n%s", err, r.stdout)
	}
	if len(js) != 3 {
		t.Fatalf("--json lists %d entries", len(js))
	}
	for _, j := range js {
		if j["recipient"] == "bob@remote.example" && (j["attempts"] != 1.0 || j["status"] != "deferred" || j["held"] != false || j["require_tls"] != false) {
			t.Errorf("bob in JSON: %v", j)
		}
		if j["recipient"] == "dan@remote.example" && j["require_tls"] != true {
			t.Errorf("dan in JSON: %v; want require_tls (REQUIRETLS)", j)
		}
	}
}

func TestQueueActions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	q := queueSome(t, e)
	bob, carol, dan := q["bob@remote.example"].ID, q["carol@other.example"].ID, q["dan@remote.example"].ID

	r := e.ok("", "queue", "hold", fmt.Sprint(bob), fmt.Sprint(carol))
	if r.stdout != fmt.Sprintf("held entry %d\nheld entry %d\n", bob, carol) {
		t.Errorf("hold: %q", r.stdout)
	}
	got := e.entries()
	if !got["bob@remote.example"].Held || !got["carol@other.example"].Held || got["dan@remote.example"].Held {
		t.Fatalf("after hold: %+v", got)
	}
	if r := e.ok("", "queue"); !strings.Contains(r.stdout, "-- 3 entries, 2 held") {
		t.Errorf("listing after hold:\n%s", r.stdout)
	}
	e.ok("", "queue", "release", fmt.Sprint(carol))
	if got := e.entries(); !got["bob@remote.example"].Held || got["carol@other.example"].Held {
		t.Fatalf("after release: %+v", got)
	}

	// Defer dan's and carol's entries an hour, then flush: the non-held
	// ones are due now, the held one keeps its schedule.
	st := e.store()
	ctx := context.Background()
	now := time.Now().Add(time.Second)
	if _, err := st.ClaimQueue(ctx, "w", now, time.Minute, 10); err != nil {
		t.Fatal(err)
	}
	later := now.Add(time.Hour)
	if err := st.UpdateQueue(ctx, "w", []store.QueueUpdate{{ID: dan, NextAttempt: later}, {ID: carol, NextAttempt: later}}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	before := time.Now()
	if r := e.ok("", "queue", "flush"); r.stdout != "2 entries due now\n" {
		t.Errorf("flush: %q", r.stdout)
	}
	got = e.entries()
	for _, rcpt := range []string{"carol@other.example", "dan@remote.example"} {
		if n := got[rcpt].NextAttempt; n.After(time.Now()) || n.Before(before.Add(-time.Second)) {
			t.Errorf("%s after flush: next attempt %v, want now", rcpt, n)
		}
	}
	if got["bob@remote.example"].NextAttempt.After(before) {
		t.Errorf("held entry was rescheduled: %+v", got["bob@remote.example"])
	}

	r = e.ok("", "queue", "delete", fmt.Sprint(dan))
	if r.stdout != fmt.Sprintf("deleted entry %d\n", dan) {
		t.Errorf("delete: %q", r.stdout)
	}
	if _, ok := e.entries()["dan@remote.example"]; ok {
		t.Fatal("deleted entry still queued")
	}
	e.fails(1, fmt.Sprintf("no queue entry %d", dan), "queue", "delete", fmt.Sprint(dan))
	// The known ID is still acted on when another is unknown.
	r = e.run("", "queue", "hold", fmt.Sprint(carol), "999999")
	if r.code != 1 || !strings.Contains(r.stdout, fmt.Sprintf("held entry %d", carol)) || !strings.Contains(r.stderr, "no queue entry 999999") {
		t.Errorf("hold with one unknown ID: %+v", r)
	}

	e.fails(2, `unknown action "frobnicate"`, "queue", "frobnicate")
	e.fails(2, "hold needs at least one queue entry ID", "queue", "hold")
	e.fails(2, `not "abc"`, "queue", "delete", "abc")
	e.fails(2, `not "-3"`, "queue", "release", "-3")
	e.fails(2, "flush takes no argument", "queue", "flush", "3")
	e.fails(2, "no such option: --bogus", "queue", "--bogus")
}

// TestQueueWhileServing: the commands work on the database of a running
// server.
func TestQueueWhileServing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	q := queueSome(t, e)
	// Held, so that a server with a queue worker leaves them alone.
	st := e.store()
	for _, it := range q {
		if err := st.SetQueueHeld(context.Background(), it.ID, true); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()

	e.vars["PORTS"] = "25"
	e.vars["TLS"] = ""
	e.vars["TLS_FLAVOR"] = "notls"
	e.vars["LISTEN_25"] = "127.0.0.1:0"
	cmd := exec.Command(binary, "serve")
	for k, v := range e.vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var errb syncBuffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v\n%s", err, errb.String())
			}
		case <-time.After(time.Minute):
			cmd.Process.Kill()
			t.Errorf("serve did not stop\n%s", errb.String())
		}
	}()
	deadline := time.Now().Add(time.Minute)
	for errb.Len() == 0 && time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("serve exited early: %v\n%s", err, errb.String())
		case <-time.After(50 * time.Millisecond):
		}
	}

	r := e.ok("", "queue")
	if !strings.Contains(r.stdout, "-- 3 entries, 3 held") {
		t.Errorf("listing while serving:\n%s", r.stdout)
	}
	e.ok("", "queue", "delete", fmt.Sprint(q["carol@other.example"].ID))
	e.ok("", "queue", "flush")
	got := e.entries()
	if _, ok := got["carol@other.example"]; ok || len(got) != 2 {
		t.Errorf("after delete while serving: %+v", got)
	}
	for _, it := range got {
		if !it.Held {
			t.Errorf("entry released by flush: %+v", it)
		}
	}
	if _, err := e.store().GetQueueItem(context.Background(), q["carol@other.example"].ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted entry: %v", err)
	}
}
