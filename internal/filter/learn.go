package filter

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// Learner defaults.
const (
	DefaultLearnQueue = 1024             // pending copy events
	maxLearnBody      = 10 << 20         // bigger messages are not learnt (rspamd's default max_size is similar)
	learnTimeout      = 30 * time.Second // one message, classifier and rspamd together
)

// LearnStore is what the Learner reads and writes.
type LearnStore interface {
	GetMailbox(ctx context.Context, user, name string) (*store.Mailbox, error)
	OpenBody(ctx context.Context, bodyID int64) (io.ReadCloser, error)
	JunkTrain(ctx context.Context, user string, tokens []string, spam bool) error
}

// LearnerOptions configures a Learner.
type LearnerOptions struct {
	Store LearnStore
	// Classifier trains the users' own classifiers (the built-in path).
	Classifier bool
	// Rspamd, when set, learns through its controller (Mailu:
	// imapsieve report-spam/report-ham → rspamc learn_spam/learn_ham).
	Rspamd *RspamdClient
	// Totals, when set, forgets a user's cached classifier totals
	// after training them (Builtin.Totals).
	Totals    *TotalsCache
	QueueSize int // 0: DefaultLearnQueue
	Logger    *slog.Logger
}

// learnEvent is one COPY or MOVE, or one APPEND into Junk.
type learnEvent struct {
	user, from string
	appended   bool // an APPEND into Junk: spam, no source mailbox
	to         store.Mailbox
	bodies     []int64
}

// Learner turns IMAP moves into training (Mailu's imapsieve rules):
// a message copied or moved into Junk is spam; one copied or moved out of
// Junk into anything but Trash is ham. It works in the background: Copied
// never blocks, and when the queue is full the event is dropped with a
// log line.
type Learner struct {
	opts      LearnerOptions
	log       *slog.Logger
	queue     chan learnEvent
	once      sync.Once
	closeOnce sync.Once
	started   bool // set inside once
	done      chan struct{}
	stop      chan struct{}

	mu      sync.Mutex
	learned int64 // messages trained, for tests and logs
}

// NewLearner returns a Learner; Start runs it.
func NewLearner(opts LearnerOptions) *Learner {
	n := opts.QueueSize
	if n <= 0 {
		n = DefaultLearnQueue
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Learner{opts: opts, log: log, queue: make(chan learnEvent, n), done: make(chan struct{}), stop: make(chan struct{})}
}

// Enabled reports whether anything would learn.
func (l *Learner) Enabled() bool { return l.opts.Classifier || l.opts.Rspamd != nil }

// Start runs the worker until ctx ends or Close; pending events are
// dropped at shutdown (training is an opinion, not mail).
func (l *Learner) Start(ctx context.Context) {
	l.once.Do(func() {
		l.started = true
		go l.run(ctx)
	})
}

// Close stops the worker and waits for the message it is on. It is safe
// to call more than once, and without Start.
func (l *Learner) Close() {
	l.once.Do(func() {}) // no Start after Close
	l.closeOnce.Do(func() { close(l.stop) })
	if l.started {
		<-l.done
	}
}

// Copied implements imapd's CopyObserver: a COPY or MOVE of bodies from
// the mailbox named from to the mailbox to, by user.
func (l *Learner) Copied(user, from string, to *store.Mailbox, bodies []int64) {
	if !l.Enabled() || to == nil || len(bodies) == 0 {
		return
	}
	if isTrash(to) {
		// Into Trash never teaches anything; out of Junk into Trash
		// is not ham (docker-mailserver #3333). Nothing to look up.
		return
	}
	l.enqueue(learnEvent{user: user, from: from, to: *to, bodies: append([]int64(nil), bodies...)})
}

// Appended implements imapd's CopyObserver: an APPEND into Junk is spam
// (Mailu: imapsieve_mailbox1_causes = COPY APPEND); an APPEND anywhere
// else teaches nothing.
func (l *Learner) Appended(user string, to *store.Mailbox, bodyID int64) {
	if !l.Enabled() || to == nil || !isJunk(to) {
		return
	}
	l.enqueue(learnEvent{user: user, appended: true, to: *to, bodies: []int64{bodyID}})
}

func (l *Learner) enqueue(ev learnEvent) {
	select {
	case l.queue <- ev:
	default:
		l.log.Warn("spam learning queue full, event dropped", "user", ev.user, "messages", len(ev.bodies), "to", ev.to.Name)
	}
}

func isJunk(mb *store.Mailbox) bool {
	return mb.SpecialUse == `\Junk` || (mb.SpecialUse == "" && strings.EqualFold(mb.Name, "Junk"))
}

func isTrash(mb *store.Mailbox) bool {
	return mb.SpecialUse == `\Trash` || (mb.SpecialUse == "" && strings.EqualFold(mb.Name, "Trash"))
}

func (l *Learner) run(ctx context.Context) {
	defer close(l.done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.stop:
			return
		case ev := <-l.queue:
			l.handle(ctx, ev)
		}
	}
}

func (l *Learner) handle(ctx context.Context, ev learnEvent) {
	var from *store.Mailbox
	if !ev.appended {
		var err error
		from, err = l.opts.Store.GetMailbox(ctx, ev.user, ev.from)
		if err != nil {
			l.log.Info("spam learning skipped: source mailbox unknown", "user", ev.user, "mailbox", ev.from, "err", err)
			return
		}
	}
	var spam bool
	switch {
	case ev.appended:
		spam = true // Appended let only Junk through
	case isJunk(&ev.to) && !isJunk(from):
		spam = true
	case isJunk(from) && !isJunk(&ev.to) && !isTrash(&ev.to):
		spam = false
	default:
		return
	}
	kind := "ham"
	if spam {
		kind = "spam"
	}
	ok := 0
	for _, id := range ev.bodies {
		if l.learnOne(ctx, ev.user, id, spam) {
			ok++
		}
	}
	l.log.Info("learned", "user", ev.user, "as", kind, "messages", ok, "of", len(ev.bodies))
}

func (l *Learner) learnOne(ctx context.Context, user string, id int64, spam bool) bool {
	ctx, cancel := context.WithTimeout(ctx, learnTimeout)
	defer cancel()
	rc, err := l.opts.Store.OpenBody(ctx, id)
	if err != nil {
		l.log.Info("spam learning: cannot open message", "user", user, "body", id, "err", err)
		return false
	}
	data, err := io.ReadAll(io.LimitReader(rc, maxLearnBody+1))
	rc.Close()
	if err != nil || len(data) > maxLearnBody {
		return false
	}
	good := true
	if l.opts.Classifier {
		if err := l.opts.Store.JunkTrain(ctx, user, Tokens(bytes.NewReader(data)), spam); err != nil {
			l.log.Warn("classifier training failed", "user", user, "err", err)
			good = false
		}
		if l.opts.Totals != nil {
			l.opts.Totals.Forget(user)
		}
	}
	if l.opts.Rspamd != nil {
		if err := l.opts.Rspamd.Learn(ctx, spam, bytes.NewReader(data)); err != nil {
			l.log.Warn("rspamd learning failed", "user", user, "err", err)
			good = false
		}
	}
	if good {
		l.mu.Lock()
		l.learned++
		l.mu.Unlock()
	}
	return good
}

// Learned is how many messages were trained so far.
func (l *Learner) Learned() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.learned
}
