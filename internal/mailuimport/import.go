// Package mailuimport moves a Mailu install into Petrel (petrel
// import-mailu): the admin database (main.db or PostgreSQL), every
// user's Maildir and Sieve scripts as Mailu's Dovecot wrote them, the
// fetched accounts and the DKIM keys. Password
// and token hashes are kept as they are, and messages keep their UIDs and
// UIDVALIDITY, so neither users nor their mail clients notice the move.
//
// An import can be interrupted and run again: objects Petrel already has
// are left alone and messages whose UID a mailbox already holds are
// skipped, so nothing is stored twice.
package mailuimport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/petrelmail/petrel/internal/msgauth"
	"github.com/petrelmail/petrel/internal/store"
)

// Store is what the import writes to.
type Store interface {
	store.Accounts
	store.Importer
	store.SieveScripts
	store.Fetches
	GetMailbox(ctx context.Context, user, name string) (*store.Mailbox, error)
	Quota(ctx context.Context, user string) (used, limit int64, err error)
}

// Options says what to import and how.
type Options struct {
	DB      string // Mailu's main.db path, or a postgresql:// URL
	MailDir string // Mailu's /mail: one Maildir per user, named by address
	DKIMDir string // Mailu's /dkim; "" skips the keys
	// MailuSelector is Mailu's DKIM_SELECTOR ("dkim" when empty).
	MailuSelector string
	// DKIMPath and Selector are Petrel's DKIM_PATH and DKIM_SELECTOR.
	DKIMPath, Selector string
	// DKIMKeys, when set, receives the keys (the store, as serve keeps
	// them); otherwise they are copied to DKIMPath, which serve imports
	// into the store at its next start.
	DKIMKeys *msgauth.Keys
	DryRun   bool
	// SealPassword seals a fetched account's remote password for the
	// store (fetch.NewSealerFor(SECRET_KEY).Seal, as serve opens it);
	// nil leaves fetched accounts out.
	SealPassword func(password string) (string, error)

	// Progress gets the progress display (nil: none); TTY redraws one
	// line in place instead of printing a line every few seconds.
	Progress io.Writer
	TTY      bool
	// BatchMessages and BatchBytes bound one transaction (defaults 1000
	// messages, 32 MiB).
	BatchMessages int
	BatchBytes    int64
	Log           *slog.Logger
	Now           func() time.Time
}

type importer struct {
	st    Store
	opt   Options
	rep   *Report
	users []string // the users of Mailu's database
}

// Run imports and returns the report. An error means the import could
// not go on (no database, a store that fails); what was done until then
// stays done and a rerun continues.
func Run(ctx context.Context, st Store, opt Options) (*Report, error) {
	if opt.MailuSelector == "" {
		opt.MailuSelector = "dkim"
	}
	if opt.BatchMessages <= 0 {
		opt.BatchMessages = 1000
	}
	if opt.BatchBytes <= 0 {
		opt.BatchBytes = 32 << 20
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	im := &importer{st: st, opt: opt, rep: newReport(opt.DryRun)}
	if opt.DB != "" {
		db, err := openMailuDB(ctx, opt.DB)
		if err != nil {
			return im.rep, err
		}
		err = im.importAccounts(ctx, db)
		db.Close()
		if err != nil {
			return im.rep, err
		}
	}
	if opt.MailDir != "" {
		if err := im.importMail(ctx); err != nil {
			return im.rep, err
		}
	}
	return im.rep, nil
}

// folderPlan is one folder to import, with a UID for every file.
type folderPlan struct {
	user     string
	f        folder
	uidl     *uidList
	keywords map[byte]string
	files    []mailFile
	uids     []uint32 // uids[i] is files[i]'s
	subs     bool     // subscribed
}

func (im *importer) importMail(ctx context.Context) error {
	ents, err := os.ReadDir(im.opt.MailDir)
	if err != nil {
		return fmt.Errorf("mail directory: %w", err)
	}
	known := map[string]bool{}
	for _, u := range im.users {
		known[u] = true
	}
	var plans []*folderPlan
	var total int64
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		user := strings.ToLower(e.Name())
		if !strings.Contains(user, "@") {
			continue // not a mailbox (lost+found and the like)
		}
		if !known[user] {
			if _, err := im.st.GetUser(ctx, user); err != nil {
				im.rep.skip("Maildir "+e.Name(), "no such user in Mailu's database or in Petrel")
				continue
			}
		}
		im.importSieve(ctx, user, filepath.Join(im.opt.MailDir, e.Name()))
		ps, err := im.planUser(user, filepath.Join(im.opt.MailDir, e.Name()))
		if err != nil {
			im.rep.skip("Maildir of "+user, err.Error())
			continue
		}
		for _, p := range ps {
			total += int64(len(p.files))
		}
		plans = append(plans, ps...)
	}
	im.rep.Folders = len(plans)
	if im.opt.DryRun {
		for _, p := range plans {
			im.rep.Messages += int64(len(p.files))
			for _, f := range p.files {
				im.rep.Bytes += f.Size
			}
		}
		return nil
	}
	prog := newProgress(im.opt.Progress, im.opt.TTY, total, im.opt.Now)
	dec, err := newDecoder()
	if err != nil {
		return err
	}
	defer dec.Close()
	start := im.opt.Now()
	for _, p := range plans {
		if err := im.importFolder(ctx, p, dec, prog); err != nil {
			prog.finish()
			return err
		}
	}
	prog.finish()
	// The import does not refuse mail over quota (Mailu held it); say
	// whose mailbox is now full, since deliveries to it will fail.
	seen := map[string]bool{}
	for _, p := range plans {
		if seen[p.user] {
			continue
		}
		seen[p.user] = true
		if used, limit, err := im.st.Quota(ctx, p.user); err == nil && limit > 0 && used > limit {
			im.rep.note(fmt.Sprintf("%s is over quota (%s of %s): new mail will be refused until the quota is raised", p.user, humanBytes(used), humanBytes(limit)))
		}
	}
	if secs := im.opt.Now().Sub(start).Seconds(); im.rep.Messages > 0 && secs > 0 {
		im.rep.note(fmt.Sprintf("stored %d messages in %.1f s: %.0f messages/s", im.rep.Messages, secs, float64(im.rep.Messages)/secs))
	}
	return nil
}

// planUser finds a user's folders and gives every message file its UID:
// the one dovecot-uidlist records, or for files Dovecot had not seen
// yet the next ones from its N<nextuid>, in file name order as Dovecot
// would give them.
func (im *importer) planUser(user, root string) ([]*folderPlan, error) {
	folders, bad, err := findFolders(root)
	if err != nil {
		return nil, err
	}
	for _, b := range bad {
		im.rep.skip("folder "+b+" of "+user, "name is not valid modified UTF-7")
	}
	subs, haveSubs, err := readSubscriptions(root)
	if err != nil {
		return nil, err
	}
	var out []*folderPlan
	for _, f := range folders {
		files, tmp, err := listMail(f.Dir)
		if err != nil {
			im.rep.skip("folder "+f.Name+" of "+user, err.Error())
			continue
		}
		if tmp > 0 {
			im.rep.note(fmt.Sprintf("%s of %s: %d files in tmp/ (deliveries that never finished) left out", f.Name, user, tmp))
		}
		l, err := readUIDList(f.Dir)
		if err != nil {
			im.rep.skip("folder "+f.Name+" of "+user, err.Error())
			continue
		}
		kw, err := readKeywords(f.Dir)
		if err != nil {
			im.rep.skip("folder "+f.Name+" of "+user, err.Error())
			continue
		}
		// Mailu's Dovecot auto-subscribes the special-use folders
		// (dovecot.conf: auto = subscribe), whatever the file says.
		subscribed := !haveSubs || subs[f.Name] || specialUse(f.Name) != ""
		p := &folderPlan{user: user, f: f, uidl: l, keywords: kw, files: files, subs: subscribed}
		next := max(l.Next, 1)
		used := map[uint32]bool{}
		p.uids = make([]uint32, len(files))
		for i, mf := range files {
			if u, ok := l.UIDs[mf.Base]; ok && !used[u] {
				p.uids[i] = u
				used[u] = true
			}
		}
		for i := range files {
			if p.uids[i] == 0 {
				for used[next] {
					next++
				}
				p.uids[i] = next
				used[next] = true
				next++
			}
		}
		l.Next = max(l.Next, next)
		out = append(out, p)
	}
	return out, nil
}

func specialUse(name string) string {
	for _, d := range store.DefaultMailboxes {
		if d.Name == name {
			return d.SpecialUse
		}
	}
	return ""
}

// importFolder stores one folder's messages in batches; UIDs already in
// the mailbox (an earlier, interrupted run) are skipped before any file
// is read. Files are read and decompressed by every core while the
// previous batch commits.
func (im *importer) importFolder(ctx context.Context, p *folderPlan, dec *decoder, prog *progress) error {
	uv := p.uidl.Validity
	if uv == 0 {
		// Dovecot never indexed this folder: keep the UIDVALIDITY an
		// earlier run gave it, else take the time.
		if mb, err := im.st.GetMailbox(ctx, p.user, p.f.Name); err == nil {
			uv = mb.UIDValidity
		} else {
			uv = uint32(im.opt.Now().Unix())
		}
	}
	mb, err := im.st.PrepareImportMailbox(ctx, store.ImportMailbox{
		User: p.user, Name: p.f.Name, SpecialUse: specialUse(p.f.Name),
		Subscribed: p.subs, UIDValidity: uv, UIDNext: p.uidl.Next,
	})
	if err != nil {
		if errors.Is(err, store.ErrUIDValidityMismatch) || errors.Is(err, store.ErrMailboxInvalid) {
			im.rep.skip(fmt.Sprintf("folder %s of %s (%d messages)", p.f.Name, p.user, len(p.files)), err.Error())
			prog.add(int64(len(p.files)), 0)
			return nil
		}
		return err
	}
	have, err := im.st.MailboxUIDs(ctx, mb.ID)
	if err != nil {
		return err
	}
	var todo []int // indexes into p.files
	for i := range p.files {
		if _, found := slices.BinarySearch(have, p.uids[i]); found {
			im.rep.Already++
			prog.add(1, 0)
			continue
		}
		todo = append(todo, i)
	}

	commits := make(chan error, 1)
	commits <- nil // no batch in flight yet
	commit := func(batch []store.ImportedMessage, size int64) {
		n, err := im.st.ImportMessages(ctx, mb.ID, batch)
		if err == nil {
			im.rep.Messages += int64(n)
			im.rep.Already += int64(len(batch) - n)
			im.rep.Bytes += size
			prog.add(int64(len(batch)), size)
		}
		commits <- err
	}
	unknownKW := ""
	for len(todo) > 0 {
		n := chunkLen(p.files, todo, im.opt.BatchMessages, im.opt.BatchBytes)
		chunk := todo[:n]
		todo = todo[n:]
		res := im.readAll(ctx, p, chunk, dec)
		batch := make([]store.ImportedMessage, 0, len(res))
		var size int64
		for _, r := range res {
			if r.err != "" {
				im.rep.skip(r.what, r.err)
				prog.add(1, 0)
				continue
			}
			unknownKW += r.unknown
			batch = append(batch, r.msg)
			size += int64(len(r.msg.Body))
		}
		if err := <-commits; err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		go commit(batch, size)
	}
	if err := <-commits; err != nil {
		return err
	}
	prog.folderDone(p.f.Name, p.user, len(p.files))
	if unknownKW != "" {
		im.rep.skip(fmt.Sprintf("keywords of %s of %s", p.f.Name, p.user),
			fmt.Sprintf("letters %q are not in dovecot-keywords", dedupLetters(unknownKW)))
	}
	return nil
}

// chunkLen is how many of todo go into the next batch: at most max
// messages and about maxBytes (by the size on disk).
func chunkLen(files []mailFile, todo []int, maxN int, maxBytes int64) int {
	var size int64
	for n, i := range todo {
		size += files[i].Size
		if n+1 >= maxN || size >= maxBytes {
			return n + 1
		}
	}
	return len(todo)
}

// readResult is one file read: a message, or why it was left out.
type readResult struct {
	msg     store.ImportedMessage
	unknown string // keyword letters dovecot-keywords does not name
	what    string
	err     string
}

// readAll reads and decodes files in parallel, one worker per core, and
// returns the results in file order.
func (im *importer) readAll(ctx context.Context, p *folderPlan, idx []int, dec *decoder) []readResult {
	out := make([]readResult, len(idx))
	workers := min(runtime.GOMAXPROCS(0), len(idx))
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range next {
				out[k] = im.readOne(p, idx[k], dec)
			}
		}()
	}
	for k := range idx {
		if ctx.Err() != nil {
			break
		}
		next <- k
	}
	close(next)
	wg.Wait()
	return out
}

func (im *importer) readOne(p *folderPlan, i int, dec *decoder) readResult {
	mf := p.files[i]
	uid := p.uids[i]
	raw, err := readFile(mf.Path, mf.Size)
	if errors.Is(err, os.ErrNotExist) {
		// Dovecot renames files when flags change; the current name is
		// the same base with other flags.
		if alt := findRenamed(mf); alt != "" {
			raw, err = readFile(alt, mf.Size)
		}
	}
	if err != nil {
		return readResult{what: fmt.Sprintf("message UID %d in %s of %s", uid, p.f.Name, p.user), err: err.Error()}
	}
	body, _, err := dec.decode(raw)
	if err != nil {
		return readResult{what: fmt.Sprintf("message UID %d in %s of %s (%s)", uid, p.f.Name, p.user, filepath.Base(mf.Path)), err: err.Error()}
	}
	// Dovecot stores lines with LF alone and sends CRLF (RFC 9051
	// 2.3.4 sizes and bytes are of the CRLF form).
	body = toCRLF(body)
	flags, unknown := flagsOf(mf.Info, p.keywords)
	return readResult{
		msg:     store.ImportedMessage{UID: uid, Flags: validFlags(flags), InternalDate: mf.MTime, Body: body},
		unknown: unknown,
	}
}

// findRenamed looks for a file that Dovecot renamed (new/ to cur/, other
// flags) since the folder was listed.
func findRenamed(mf mailFile) string {
	dir := filepath.Dir(filepath.Dir(mf.Path))
	for _, sub := range []string{"cur", "new"} {
		m, _ := filepath.Glob(filepath.Join(dir, sub, globEscape(mf.Base)+"*"))
		if len(m) > 0 {
			return m[0]
		}
	}
	return ""
}

func globEscape(s string) string {
	r := strings.NewReplacer(`*`, `\*`, `?`, `\?`, `[`, `\[`, `\`, `\\`)
	return r.Replace(s)
}

// validFlags drops keywords IMAP cannot carry (RFC 9051 flag-keyword is
// an atom).
func validFlags(flags []string) []string {
	out := flags[:0]
	for _, f := range flags {
		ok := f != ""
		body := strings.TrimPrefix(f, `\`)
		for i := 0; i < len(body) && ok; i++ {
			if c := body[i]; c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
				ok = false
			}
		}
		if ok {
			out = append(out, f)
		}
	}
	return out
}

func dedupLetters(s string) string {
	b := []byte(s)
	sort.Slice(b, func(i, j int) bool { return b[i] < b[j] })
	return string(slices.Compact(b))
}

// toCRLF turns every bare LF into CRLF; a message that has none is
// returned as it is.
func toCRLF(b []byte) []byte {
	bare := 0
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			bare++
		}
	}
	if bare == 0 {
		return b
	}
	out := make([]byte, 0, len(b)+bare)
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}
