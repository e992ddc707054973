package imapd

import (
	"math"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/petrelmail/petrel/internal/store"
)

// viewMsg is one message of a view or of the mailbox listing cache: 40
// bytes, where a store.MessageInfo is 88 plus a flag slice of its own.
// At 100,000 messages per mailbox and a copy per session, that is most
// of what a large mailbox costs in memory.
type viewMsg struct {
	uid uint32
	// size beside uid fills the word: RFC822.SIZE beyond 4 GiB - 1 is
	// shown as that (no server takes such a message; RFC 3501's number
	// cannot say more either).
	size   uint32
	flags  *[]string // interned by flagSets, never modified; nil: no flags
	modSeq uint64
	date   int64 // internal date, Unix microseconds (the store's precision), UTC
	body   int64
}

// size32 is a message size as viewMsg keeps it.
func size32(n int64) uint32 { return uint32(min(max(n, 0), math.MaxUint32)) }

// flagList returns the message's flags (shared: not to be modified).
func (m *viewMsg) flagList() []string {
	if m.flags == nil {
		return nil
	}
	return *m.flags
}

// info expands the message for the code that works on store.MessageInfo.
func (m *viewMsg) info(mailbox int64) store.MessageInfo {
	var date time.Time
	if m.date != zeroDate {
		date = time.UnixMicro(m.date).UTC()
	}
	return store.MessageInfo{MailboxID: mailbox, UID: m.uid, ModSeq: m.modSeq, Flags: m.flagList(),
		InternalDate: date, Size: int64(m.size), BodyID: m.body}
}

// zeroDate stands for the zero time.Time.
var zeroDate = time.Time{}.UnixMicro()

// maxFlagSets bounds the interned flag lists; beyond it a list is kept
// per message, as before (a mailbox would need thousands of distinct
// keyword combinations).
const maxFlagSets = 4096

// flagSets interns flag lists: the messages of a mailbox share a handful
// of combinations (none, \Seen, \Seen \Answered, ...), so a view keeps a
// pointer per message instead of a slice and strings. The lists are
// never modified (clipped, so an append copies). Shared by the sessions
// of a Server.
type flagSets struct {
	mu sync.Mutex
	m  map[string]*[]string
}

func newFlagSets() *flagSets { return &flagSets{m: make(map[string]*[]string)} }

// intern returns the shared list equal to flags (nil for none).
func (fs *flagSets) intern(flags []string) *[]string {
	if len(flags) == 0 {
		return nil
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.internLocked(flags)
}

func (fs *flagSets) internLocked(flags []string) *[]string {
	if len(flags) == 0 {
		return nil
	}
	key := flags[0]
	if len(flags) > 1 {
		key = strings.Join(flags, " ")
	}
	if p, ok := fs.m[key]; ok {
		return p
	}
	l := slices.Clip(slices.Clone(flags))
	if len(fs.m) < maxFlagSets {
		fs.m[strings.Clone(key)] = &l
	}
	return &l
}

// compact converts one message.
func (fs *flagSets) compact(m *store.MessageInfo) viewMsg {
	return viewMsg{uid: m.UID, flags: fs.intern(m.Flags), modSeq: m.ModSeq, date: m.InternalDate.UnixMicro(),
		size: size32(m.Size), body: m.BodyID}
}

// compactAll converts a listing, taking the lock once.
func (fs *flagSets) compactAll(list []store.MessageInfo) []viewMsg {
	out := make([]viewMsg, len(list))
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for i := range list {
		m := &list[i]
		out[i] = viewMsg{uid: m.UID, flags: fs.internLocked(m.Flags), modSeq: m.ModSeq,
			date: m.InternalDate.UnixMicro(), size: size32(m.Size), body: m.BodyID}
	}
	return out
}

// viewMsgBytes must be the size of a viewMsg (the listing cache charges it).
var _ = [1]struct{}{}[unsafe.Sizeof(viewMsg{})-viewMsgBytes]
