package mailuimport

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/store/sqlstore"
)

func TestReadUIDList(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "dovecot-uidlist"), "3 V1796456682 N1 G019d8136e8c0136b767d000083ecc375\n"+
		"1 G1796456680.M969097P32118.vm :1796456680.M969097P32118.vm,S=28,W=32\n"+
		"4 :1796456690.M1P1.vm,S=30\n"+
		"7 W120 :1796456699.M2P1.vm:2,S\n")
	l, err := readUIDList(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint32{"1796456680.M969097P32118.vm,S=28,W=32": 1, "1796456690.M1P1.vm,S=30": 4, "1796456699.M2P1.vm": 7}
	if l.Validity != 1796456682 || l.Next != 8 || fmt.Sprint(l.UIDs) != fmt.Sprint(want) {
		t.Errorf("got V%d N%d %v", l.Validity, l.Next, l.UIDs)
	}
	write(t, filepath.Join(dir, "dovecot-uidlist"), "1 1000 5\n3 old.file\n")
	l, err = readUIDList(dir)
	if err != nil || l.Validity != 1000 || l.Next != 5 || l.UIDs["old.file"] != 3 {
		t.Errorf("version 1: %v %+v", err, l)
	}
	for _, bad := range []string{"9 V1\n", "3 V1 N2\nx :a\n", "3 V1 N2\n1 noname\n"} {
		write(t, filepath.Join(dir, "dovecot-uidlist"), bad)
		if _, err := readUIDList(dir); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestFlagsAndNames(t *testing.T) {
	kw := map[byte]string{'a': "$Label1", 'b': "Important"}
	flags, unknown := flagsOf("DFPRSTabz", kw)
	want := []string{`\Draft`, `\Flagged`, "$Forwarded", `\Answered`, `\Seen`, `\Deleted`, "$Label1", "Important"}
	if !slices.Equal(flags, want) || unknown != "z" {
		t.Errorf("flags %v unknown %q", flags, unknown)
	}
	for in, want := range map[string]string{"Work": "Work", "Work.Projects.2024": "Work/Projects/2024",
		"Caf&AOk-": "Café", "inbox.x": "INBOX/x", "a&-b": "a&b"} {
		got, err := folderName(in)
		if err != nil || got != want {
			t.Errorf("folderName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"a..b", "&Jjo", "x&AOk"} {
		if _, err := folderName(bad); err == nil {
			t.Errorf("folderName(%q): no error", bad)
		}
	}
	if got := string(toCRLF([]byte("a\nb\r\nc\n"))); got != "a\r\nb\r\nc\r\n" {
		t.Errorf("toCRLF: %q", got)
	}
}

func TestSubscriptions(t *testing.T) {
	dir := t.TempDir()
	if _, ok, _ := readSubscriptions(dir); ok {
		t.Error("no file, but ok")
	}
	write(t, filepath.Join(dir, "subscriptions"), "V\t2\n\nWork\nWork\tProjects\nCaf&AOk-\n")
	got, ok, err := readSubscriptions(dir)
	if err != nil || !ok || len(got) != 3 || !got["Work/Projects"] || !got["Café"] {
		t.Errorf("v2: %v %v", got, err)
	}
	write(t, filepath.Join(dir, "subscriptions"), "INBOX\nWork.Projects\nCaf&AOk-\n")
	got, _, _ = readSubscriptions(dir)
	if len(got) != 3 || !got["Work/Projects"] || !got["Café"] || !got["INBOX"] {
		t.Errorf("v1: %v", got)
	}
}

func TestDecode(t *testing.T) {
	msg := []byte("Subject: x\r\n\r\nbody\r\n")
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write(msg)
	w.Close()
	enc, _ := zstd.NewWriter(nil)
	zs := enc.EncodeAll(msg, nil)
	d, err := newDecoder()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, c := range []struct {
		in     []byte
		method string
		err    bool
	}{
		{msg, "", false},
		{gz.Bytes(), "gz", false},
		{zs, "zstd", false},
		{[]byte("BZh9 is a header\r\n\r\n"), "", false},
		{append([]byte{0xfd, '7', 'z', 'X', 'Z', 0}, msg...), "xz", true},
		{gz.Bytes()[:10], "gz", true},
	} {
		out, m, err := d.decode(c.in)
		if m != c.method || (err != nil) != c.err || (!c.err && !bytes.Equal(out, msg) && m != "") {
			t.Errorf("decode(%q...) = %q, %q, %v", c.in[:4], out, m, err)
		}
	}
}

func FuzzReadUIDList(f *testing.F) {
	f.Add("3 V1 N5 G00\n1 :a\n2 W3 :b:2,S\n")
	f.Add("1 10 20\n5 x\n")
	f.Fuzz(func(t *testing.T, s string) {
		dir := t.TempDir()
		write(t, filepath.Join(dir, "dovecot-uidlist"), s)
		l, err := readUIDList(dir)
		if err != nil {
			return
		}
		for _, u := range l.UIDs {
			if u == 0 || u >= l.Next {
				t.Fatalf("UID %d with next %d", u, l.Next)
			}
		}
	})
}

func write(t testing.TB, path, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func openStore(t testing.TB) *sqlstore.Store {
	t.Helper()
	// The store's import methods are tested on both databases in
	// sqlstore; here SQLite stands for either.
	opt := sqlstore.Options{Path: filepath.Join(t.TempDir(), "main.db")}
	st, err := sqlstore.Open(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// maildir writes a user's Maildir as Dovecot leaves it: INBOX with a
// dovecot-uidlist that misses the newest file, a nested folder, a gzip
// and a zstd file, keywords, subscriptions.
func maildir(t testing.TB, root string, n int) {
	t.Helper()
	var uidl strings.Builder
	uidl.WriteString("3 V1700000000 N1 G0\n")
	enc, _ := zstd.NewWriter(nil)
	for i := 1; i <= n; i++ {
		base := fmt.Sprintf("17000%05d.M%dP1.host,S=100", i, i)
		body := fmt.Sprintf("From: a@b\nSubject: %d\n\nline one\nline two %d\n", i, i)
		data := []byte(body)
		switch i % 10 {
		case 3:
			var gz bytes.Buffer
			w := gzip.NewWriter(&gz)
			w.Write(data)
			w.Close()
			data = gz.Bytes()
		case 7:
			data = enc.EncodeAll(data, nil)
		}
		name := filepath.Join(root, "cur", base+":2,S"+map[bool]string{true: "a"}[i%4 == 0])
		if i == n {
			name = filepath.Join(root, "new", base) // not seen by Dovecot yet
		} else {
			// UIDs with gaps: 2, 4, 6, ...
			fmt.Fprintf(&uidl, "%d :%s\n", 2*i, base)
		}
		write(t, name, string(data))
		tm := time.Date(2020, 1, 1, 0, 0, i, 0, time.UTC)
		os.Chtimes(name, tm, tm)
	}
	write(t, filepath.Join(root, "dovecot-uidlist"), uidl.String())
	write(t, filepath.Join(root, "dovecot-keywords"), "0 $Label1\n")
	write(t, filepath.Join(root, "subscriptions"), "V\t2\n\nWork\tDeep\n")
	write(t, filepath.Join(root, ".Work.Deep", "dovecot-uidlist"), "3 V1700000005 N10 G0\n9 :x\n")
	write(t, filepath.Join(root, ".Work.Deep", "cur", "x:2,RF"), "Subject: deep\r\n\r\nhi\r\n")
	os.MkdirAll(filepath.Join(root, "tmp"), 0o755)
	os.MkdirAll(filepath.Join(root, "new"), 0o755)
}

// TestImportMaildir: UIDs from dovecot-uidlist (with gaps), the next UID
// for a file Dovecot had not numbered, UIDVALIDITY, flags and keywords,
// INTERNALDATE from mtime, decompression, CRLF, subscriptions; a second
// run stores nothing.
func TestImportMaildir(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	u := store.NewUser("anna", "one.test", 100, 80) // less than the mail: imported anyway, and said
	if err := st.CreateDomain(ctx, &store.Domain{Name: "one.test", MaxUsers: -1, MaxAliases: -1}); err != nil {
		t.Fatal(err)
	}
	u.Password = "x"
	if err := st.CreateUser(ctx, &u); err != nil {
		t.Fatal(err)
	}
	mail := t.TempDir()
	maildir(t, filepath.Join(mail, "anna@one.test"), 12)
	write(t, filepath.Join(mail, "ghost@one.test", "cur", "1:2,"), "x")
	rep, err := Run(ctx, st, Options{MailDir: mail})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Messages != 13 || rep.Already != 0 || rep.Failed() == false || !strings.Contains(rep.Skips[0].What, "ghost") {
		t.Fatalf("report %+v", rep)
	}
	if !strings.Contains(strings.Join(rep.Notes, "\n"), "anna@one.test is over quota") {
		t.Errorf("no over-quota note: %v", rep.Notes)
	}
	inbox, err := st.GetMailbox(ctx, "anna@one.test", "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if inbox.UIDValidity != 1700000000 || inbox.UIDNext != 24 || inbox.Subscribed { // not in the subscriptions file
		t.Errorf("INBOX %+v", inbox)
	}
	msgs, err := st.ListMessages(ctx, "anna@one.test", "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	var uids []uint32
	for _, m := range msgs {
		uids = append(uids, m.UID)
	}
	if fmt.Sprint(uids) != "[2 4 6 8 10 12 14 16 18 20 22 23]" {
		t.Errorf("UIDs %v", uids)
	}
	for _, m := range msgs {
		i := int(m.UID / 2)
		if m.UID == 23 {
			i = 12
		}
		r, err := st.OpenBody(ctx, m.BodyID)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		b.ReadFrom(r)
		r.Close()
		want := fmt.Sprintf("From: a@b\r\nSubject: %d\r\n\r\nline one\r\nline two %d\r\n", i, i)
		if b.String() != want {
			t.Errorf("UID %d body %q", m.UID, b.String())
		}
		wantFlags := `\Seen`
		if i%4 == 0 {
			wantFlags += " $Label1"
		}
		if i == 12 {
			wantFlags = "" // in new/
		}
		if strings.Join(m.Flags, " ") != wantFlags {
			t.Errorf("UID %d flags %v, want %s", m.UID, m.Flags, wantFlags)
		}
		if !m.InternalDate.Equal(time.Date(2020, 1, 1, 0, 0, i, 0, time.UTC)) {
			t.Errorf("UID %d date %v", m.UID, m.InternalDate)
		}
	}
	deep, err := st.GetMailbox(ctx, "anna@one.test", "Work/Deep")
	if err != nil || deep.UIDValidity != 1700000005 || deep.UIDNext != 10 || !deep.Subscribed {
		t.Errorf("Work/Deep %+v %v", deep, err)
	}
	if work, err := st.GetMailbox(ctx, "anna@one.test", "Work"); err != nil || work.Messages != 0 {
		t.Errorf("parent Work: %+v %v", work, err)
	}
	used, _, _ := st.Quota(ctx, "anna@one.test")
	if used == 0 {
		t.Error("quota_bytes_used not raised")
	}

	rep, err = Run(ctx, st, Options{MailDir: mail})
	if err != nil || rep.Messages != 0 || rep.Already != 13 {
		t.Fatalf("second run: %v %+v", err, rep)
	}
	if used2, _, _ := st.Quota(ctx, "anna@one.test"); used2 != used {
		t.Errorf("second run changed quota use %d -> %d", used, used2)
	}
}

// TestUIDValidityMismatch: a folder that holds other messages under
// another UIDVALIDITY is left alone and reported.
func TestUIDValidityMismatch(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	st.CreateDomain(ctx, &store.Domain{Name: "one.test", MaxUsers: -1, MaxAliases: -1})
	u := store.NewUser("anna", "one.test", 0, 80)
	u.Password = "x"
	st.CreateUser(ctx, &u)
	if _, _, err := st.AppendMessage(ctx, &store.NewAppend{User: u.Email, Mailbox: "INBOX", Body: []byte("Subject: mine\r\n\r\n")}); err != nil {
		// AppendMessage needs the mailbox: make the defaults first.
		st.EnsureMailboxes(ctx, u.Email, store.DefaultMailboxes)
		if _, _, err := st.AppendMessage(ctx, &store.NewAppend{User: u.Email, Mailbox: "INBOX", Body: []byte("Subject: mine\r\n\r\n")}); err != nil {
			t.Fatal(err)
		}
	}
	mail := t.TempDir()
	maildir(t, filepath.Join(mail, "anna@one.test"), 3)
	rep, err := Run(ctx, st, Options{MailDir: mail})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Failed() || !strings.Contains(fmt.Sprint(rep.Skips), "UIDVALIDITY") {
		t.Errorf("report %+v", rep)
	}
	if msgs, _ := st.ListMessages(ctx, u.Email, "INBOX"); len(msgs) != 1 {
		t.Errorf("INBOX has %d messages", len(msgs))
	}
}

// BenchmarkImport measures the message path: read, decompress, store.
func BenchmarkImport(b *testing.B) {
	mail := b.TempDir()
	const n = 2000
	maildir(b, filepath.Join(mail, "anna@one.test"), n)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		st := openStore(b)
		ctx := context.Background()
		st.CreateDomain(ctx, &store.Domain{Name: "one.test", MaxUsers: -1, MaxAliases: -1})
		u := store.NewUser("anna", "one.test", 0, 80)
		u.Password = "x"
		st.CreateUser(ctx, &u)
		b.StartTimer()
		rep, err := Run(ctx, st, Options{MailDir: mail})
		if err != nil || rep.Messages != n+1 {
			b.Fatal(err, rep)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "msgs/s")
}
