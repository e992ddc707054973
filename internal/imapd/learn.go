package imapd

import "github.com/petrelmail/petrel/internal/store"

// CopyObserver hears about every successful COPY, MOVE and APPEND, so
// that putting a message into or out of Junk can teach the spam filters
// (Mailu: imapsieve report-spam on COPY and APPEND into Junk, report-ham
// on COPY out of it). Its methods must not block: they run before the
// tagged reply. *filter.Learner implements it.
type CopyObserver interface {
	// Copied reports that user copied or moved the messages with these
	// stored bodies from the mailbox named from into to.
	Copied(user, from string, to *store.Mailbox, bodyIDs []int64)
	// Appended reports that user appended the stored body to the mailbox.
	Appended(user string, to *store.Mailbox, bodyID int64)
}

// observeCopy tells Options.CopyObserver about a COPY or MOVE of the
// messages at seqs (still in the session's view).
func (s *session) observeCopy(to *store.Mailbox, seqs []uint32) {
	obs := s.srv.opts.CopyObserver
	if obs == nil || len(seqs) == 0 {
		return
	}
	ids := make([]int64, 0, len(seqs))
	for _, q := range seqs {
		ids = append(ids, s.sel.msg(q).BodyID)
	}
	obs.Copied(s.user, s.sel.name, to, ids)
}
