package fetch

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// imapSession is one poll of an IMAP account over go-imap's client.
type imapSession struct {
	c *imapclient.Client
}

func dialIMAP(ctx context.Context, addr string, tc *tls.Config, timeout time.Duration) (*imapSession, error) {
	d := &net.Dialer{Timeout: timeout}
	var conn net.Conn
	var err error
	if tc != nil {
		conn, err = (&tls.Dialer{NetDialer: d, Config: tc}).DialContext(ctx, "tcp", addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	c := imapclient.New(conn, nil)
	if err := c.WaitGreeting(); err != nil {
		c.Close()
		return nil, fmt.Errorf("IMAP greeting: %w", err)
	}
	s := &imapSession{c: c}
	// A stuck server must not hold the poller: the connection closes at
	// ctx's end.
	go func() {
		select {
		case <-ctx.Done():
			c.Close()
		case <-c.Closed():
		}
	}()
	return s, nil
}

func (s *imapSession) Close() error { return s.c.Close() }

func (s *imapSession) login(user, pass string) error {
	if err := s.c.Login(user, pass).Wait(); err != nil {
		return fmt.Errorf("IMAP LOGIN: %w", err)
	}
	return nil
}

// imapMsg is one message of a folder.
type imapMsg struct {
	uid  imap.UID
	size int64
}

// open selects folder and lists its messages with UIDVALIDITY.
func (s *imapSession) open(folder string) (uint32, []imapMsg, error) {
	sel, err := s.c.Select(folder, nil).Wait()
	if err != nil {
		return 0, nil, fmt.Errorf("IMAP SELECT %s: %w", folder, err)
	}
	if sel.NumMessages == 0 {
		return sel.UIDValidity, nil, nil
	}
	var all imap.SeqSet
	all.AddRange(1, 0) // 1:*
	bufs, err := s.c.Fetch(all, &imap.FetchOptions{UID: true, RFC822Size: true}).Collect()
	if err != nil {
		return 0, nil, fmt.Errorf("IMAP FETCH %s: %w", folder, err)
	}
	out := make([]imapMsg, 0, len(bufs))
	for _, b := range bufs {
		if b.UID != 0 {
			out = append(out, imapMsg{uid: b.UID, size: b.RFC822Size})
		}
	}
	return sel.UIDValidity, out, nil
}

// body fetches one message without setting \Seen.
func (s *imapSession) body(uid imap.UID) ([]byte, error) {
	sec := &imap.FetchItemBodySection{Peek: true}
	bufs, err := s.c.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{sec}}).Collect()
	if err != nil {
		return nil, fmt.Errorf("IMAP UID FETCH %d: %w", uid, err)
	}
	if len(bufs) != 1 {
		return nil, errGone
	}
	b := bufs[0].FindBodySection(sec)
	if b == nil {
		return nil, fmt.Errorf("IMAP UID FETCH %d: no body in the answer", uid)
	}
	return b, nil
}

// errGone: the message went away between listing and fetching.
var errGone = errors.New("message gone")

// remove flags uids \Deleted and expunges them (UID EXPUNGE where the
// server has UIDPLUS, so nothing another client flagged goes too).
func (s *imapSession) remove(uids []imap.UID) error {
	if len(uids) == 0 {
		return nil
	}
	set := imap.UIDSetNum(uids...)
	if err := s.c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		return fmt.Errorf("IMAP STORE \\Deleted: %w", err)
	}
	var err error
	if s.c.Caps().Has(imap.CapUIDPlus) {
		err = s.c.UIDExpunge(set).Close()
	} else {
		err = s.c.Expunge().Close()
	}
	if err != nil {
		return fmt.Errorf("IMAP EXPUNGE: %w", err)
	}
	return nil
}

func (s *imapSession) logout() { _ = s.c.Logout().Wait() }

// imapKey names one remote message for the seen table.
func imapKey(folder string, validity uint32, uid imap.UID) string {
	return folder + "/" + strconv.FormatUint(uint64(validity), 10) + "/" + strconv.FormatUint(uint64(uid), 10)
}
