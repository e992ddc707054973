package imapd

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// TestGoIMAPClient drives the server with go-imap's client, an
// independent implementation of the protocol: login over implicit TLS,
// LIST, STATUS, CREATE, SELECT, APPEND, STORE, COPY, MOVE, EXPUNGE, IDLE,
// quota.
func TestGoIMAPClient(t *testing.T) {
	ts := startServer(t, func(ts *testServer, o *Options) {
		o.NoTLS, o.Implicit, o.TLSConfig = false, true, ts.cert.Server
	})
	var mu sync.Mutex
	var existsSeen []uint32
	var expunged []uint32
	existsCh := make(chan struct{}, 16)
	c, err := imapclient.DialTLS(ts.addr, &imapclient.Options{
		TLSConfig: ts.cert.Client,
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					mu.Lock()
					existsSeen = append(existsSeen, *d.NumMessages)
					mu.Unlock()
					existsCh <- struct{}{}
				}
			},
			Expunge: func(seq uint32) {
				mu.Lock()
				expunged = append(expunged, seq)
				mu.Unlock()
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(alice, alicePass).Wait(); err != nil {
		t.Fatal(err)
	}
	if !c.Caps().Has(imap.CapIdle) || !c.Caps().Has(imap.CapUIDPlus) || !c.Caps().Has(imap.CapMove) {
		t.Fatalf("caps %v", c.Caps())
	}

	list, err := c.List("", "*", &imap.ListOptions{ReturnStatus: &imap.StatusOptions{NumMessages: true}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	uses := map[string]imap.MailboxAttr{}
	for _, l := range list {
		for _, a := range l.Attrs {
			switch a {
			case imap.MailboxAttrDrafts, imap.MailboxAttrSent, imap.MailboxAttrJunk, imap.MailboxAttrTrash:
				uses[l.Mailbox] = a
			}
		}
		if l.Status == nil || l.Status.NumMessages == nil {
			t.Errorf("no LIST-STATUS for %s", l.Mailbox)
		}
	}
	if len(list) != 5 || uses["Sent"] != imap.MailboxAttrSent || uses["Trash"] != imap.MailboxAttrTrash {
		t.Fatalf("LIST: %d mailboxes, special use %v", len(list), uses)
	}
	if err := c.Create("Archive/2024", nil).Wait(); err != nil {
		t.Fatal(err)
	}

	msg := testMessage("via go-imap")
	app := c.Append("INBOX", int64(len(msg)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen}, Time: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)})
	if _, err := app.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	if err := app.Close(); err != nil {
		t.Fatal(err)
	}
	ad, err := app.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if ad.UID != 1 || ad.UIDValidity == 0 {
		t.Fatalf("APPENDUID %+v", ad)
	}

	st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true, NumUnseen: true, UIDNext: true, HighestModSeq: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if *st.NumMessages != 1 || *st.NumUnseen != 0 || st.UIDNext != 2 || st.HighestModSeq == 0 {
		t.Fatalf("STATUS %+v", st)
	}

	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages != 1 || sel.UIDValidity != ad.UIDValidity || sel.UIDNext != 2 {
		t.Fatalf("SELECT %+v", sel)
	}

	// STORE: the FETCH responses come back through the command.
	msgs, err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || !hasFlagIMAP(msgs[0].Flags, imap.FlagFlagged) || !hasFlagIMAP(msgs[0].Flags, imap.FlagSeen) {
		t.Fatalf("STORE %+v", msgs)
	}

	cp, err := c.Copy(imap.SeqSetNum(1), "Archive/2024").Wait()
	if err != nil {
		t.Fatal(err)
	}
	if cp.UIDValidity == 0 || cp.SourceUIDs.String() != "1" || cp.DestUIDs.String() != "1" {
		t.Fatalf("COPYUID %+v", cp)
	}

	// IDLE: a delivery shows up as EXISTS.
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	deliver(t, ts.st, alice, "INBOX", testMessage("during idle"))
	select {
	case <-existsCh:
	case <-time.After(updateWait):
		t.Fatal("no EXISTS during IDLE")
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(existsSeen) == 0 || existsSeen[len(existsSeen)-1] != 2 {
		t.Fatalf("EXISTS %v", existsSeen)
	}
	mu.Unlock()

	mv, err := c.Move(imap.SeqSetNum(1), "Trash").Wait()
	if err != nil {
		t.Fatal(err)
	}
	if mv.UIDValidity == 0 || mv.SourceUIDs.String() != "1" {
		t.Fatalf("MOVE %+v", mv)
	}
	if _, err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Collect(); err != nil {
		t.Fatal(err)
	}
	seqs, err := c.Expunge().Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(seqs) != 1 || seqs[0] != 1 {
		t.Fatalf("EXPUNGE %v", seqs)
	}
	if err := c.Unselect().Wait(); err != nil {
		t.Fatal(err)
	}
	roots, err := c.GetQuotaRoot("INBOX").Wait()
	if err != nil {
		t.Fatal(err)
	}
	if len(roots) != 0 {
		t.Fatalf("quota roots %+v", roots)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Fatal(err)
	}
	if n := len(listOf(t, ts, alice, "Trash")); n != 1 {
		t.Fatalf("Trash has %d", n)
	}
}

// TestGoIMAPStartTLS checks port 143 with STARTTLS through go-imap.
func TestGoIMAPStartTLS(t *testing.T) {
	ts := startServer(t, func(ts *testServer, o *Options) { o.NoTLS, o.TLSConfig = false, ts.cert.Server })
	debug := &logBuffer{} // written by the client's reader and writer
	c, err := imapclient.DialStartTLS(ts.addr, &imapclient.Options{TLSConfig: ts.cert.Client, DebugWriter: debug})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(bob, bobPass).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(debug.String(), "STARTTLS") {
		t.Fatal("no STARTTLS on the wire")
	}
}

func hasFlagIMAP(flags []imap.Flag, f imap.Flag) bool {
	for _, x := range flags {
		if strings.EqualFold(string(x), string(f)) {
			return true
		}
	}
	return false
}
