package imapd

import (
	"bufio"
	"strconv"
	"strings"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// NOTIFY (RFC 5465): the client names mailboxes and the events it wants
// to hear about, and hears them at any time, between commands too. The
// events come from the store's change notification (Watch: in-process
// on SQLite, LISTEN/NOTIFY from other nodes on PostgreSQL): after a
// wake-up the session reads the user's mailbox list once and compares
// it with what it last told the client, instead of polling mailboxes.

// notifyEvents is a set of RFC 5465 5 events.
type notifyEvents uint8

const (
	evMessageNew notifyEvents = 1 << iota
	evMessageExpunge
	evFlagChange
	evMailboxName
	evSubscriptionChange

	evMessage = evMessageNew | evMessageExpunge | evFlagChange
)

// supportedEvents is BADEVENT's list (RFC 5465 3.1): AnnotationChange
// and the METADATA events need extensions Petrel does not have.
const supportedEvents = "(MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange)"

// defaultNotifyMax bounds the notifications one change may produce; past
// it the session sends NOTIFICATIONOVERFLOW and turns NOTIFY off (RFC
// 5465 5.8) rather than flood a client that asked for too much.
const defaultNotifyMax = 1000

// notifyGroup is one event group for mailboxes other than the selected
// one: INBOXES, PERSONAL, SUBSCRIBED, SUBTREE or MAILBOXES.
type notifyGroup struct {
	filter string
	names  []string // SUBTREE and MAILBOXES
	events notifyEvents
}

// notifyState is a session's NOTIFY SET and what it last told the
// client about the other mailboxes.
type notifyState struct {
	selected notifyEvents // events for the selected mailbox (none: SELECTED NONE)
	delayed  bool         // SELECTED-DELAYED: expunges wait for a command that allows them
	// fetch is MessageNew's fetch-att list for the selected mailbox as
	// the client wrote it ("(UID FLAGS)"), "" for none.
	fetch  string
	groups []notifyGroup

	watch <-chan struct{}
	stop  func()
	poll  idlePoll

	boxes    map[int64]store.Mailbox
	subs     map[string]bool // nil unless a group needs them
	needSubs bool
	ver      uint64 // the store's change counter at the last look
	looked   bool
}

// cmdNotify is NOTIFY SET [STATUS] event-groups / NOTIFY NONE (RFC 5465
// 3.1).
func cmdNotify(s *session, c *command) error {
	d := c.args
	d.SP()
	switch upperASCII(d.Atom()) {
	case "NONE":
		if err := d.End(); err != nil {
			return err
		}
		s.notifyOff()
		return nil
	case "SET":
	default:
		if err := d.Err(); err != nil {
			return err
		}
		return bad("Expected SET or NONE")
	}
	n := &notifyState{}
	status := false
	unsupported := false
	selectedSeen := false
	d.SP()
	if !d.Is('(') {
		if upperASCII(d.Atom()) != "STATUS" {
			d.fail("Expected STATUS or an event group")
		}
		status = true
		d.SP()
	}
	for d.Err() == nil {
		g, fetch, unknown := s.notifyGroupArg(d)
		unsupported = unsupported || unknown
		if d.Err() != nil {
			break
		}
		if g.filter == "SELECTED" || g.filter == "SELECTED-DELAYED" {
			if selectedSeen {
				return bad("SELECTED or SELECTED-DELAYED given twice") // RFC 5465 6.1
			}
			selectedSeen = true
			if g.events&^evMessage != 0 {
				return bad("Only message events with SELECTED") // RFC 5465 6.1
			}
			if (g.events&evMessageNew != 0) != (g.events&evMessageExpunge != 0) {
				return bad("MessageNew and MessageExpunge go together") // RFC 5465 5
			}
			if g.events&evFlagChange != 0 && g.events&evMessageNew == 0 {
				return bad("FlagChange needs MessageNew and MessageExpunge") // RFC 5465 5
			}
			n.selected, n.delayed, n.fetch = g.events, g.filter == "SELECTED-DELAYED", fetch
		} else {
			if fetch != "" {
				return bad("MessageNew fetch attributes only with SELECTED")
			}
			// Unlike the selected mailbox, where message numbers must
			// stay in step, a lone MessageNew or FlagChange elsewhere
			// only chooses STATUS items; accepted as Dovecot does.
			n.groups = append(n.groups, g)
		}
		if !d.Accept(' ') {
			break
		}
	}
	if err := d.End(); err != nil {
		return err
	}
	if unsupported {
		return no("BADEVENT "+supportedEvents, "Unsupported event")
	}
	for _, g := range n.groups {
		if g.filter == "SUBSCRIBED" || g.events&evSubscriptionChange != 0 {
			n.needSubs = true
		}
	}
	s.notifyOff()
	n.watch, n.stop = s.srv.opts.Store.Watch(s.user)
	s.notify = n
	if err := s.notifyLook(status); err != nil {
		s.notifyOff()
		return err
	}
	// The implicit NOOP (RFC 5465 3.1) is finish's sync of the selected
	// mailbox.
	return nil
}

// notifyGroupArg reads one event group: "(" filter-mailboxes SP
// ("(" event *(SP event) ")" / "NONE") ")". fetch is MessageNew's
// fetch-att list as written; unknown reports events Petrel does not
// support (BADEVENT once the line is read).
func (s *session) notifyGroupArg(d *decoder) (g notifyGroup, fetch string, unknown bool) {
	d.Expect('(', "an event group")
	g.filter = upperASCII(d.Atom())
	switch g.filter {
	case "SELECTED", "SELECTED-DELAYED", "INBOXES", "PERSONAL", "SUBSCRIBED":
	case "SUBTREE", "MAILBOXES":
		d.SP()
		if d.Is('(') {
			d.List(func() bool {
				g.names = append(g.names, s.mailboxArg(d))
				return d.Err() == nil
			})
		} else {
			g.names = append(g.names, s.mailboxArg(d))
		}
	default:
		if d.Err() == nil {
			d.fail("Unknown mailbox filter")
		}
	}
	d.SP()
	if !d.Is('(') {
		if upperASCII(d.Atom()) != "NONE" && d.Err() == nil {
			d.fail("Expected events or NONE")
		}
		d.Expect(')', "the end of the event group")
		return g, "", false
	}
	d.List(func() bool {
		switch strings.ToUpper(d.Atom()) {
		case "MESSAGENEW":
			g.events |= evMessageNew
			// "MessageNew (fetch-att ...)", or a space before the next event.
			if b, _ := d.r.Peek(2); d.Err() == nil && len(b) == 2 && b[0] == ' ' && b[1] == '(' {
				d.SP()
				fetch = s.notifyFetchAtts(d)
			}
		case "MESSAGEEXPUNGE":
			g.events |= evMessageExpunge
		case "FLAGCHANGE":
			g.events |= evFlagChange
		case "MAILBOXNAME":
			g.events |= evMailboxName
		case "SUBSCRIPTIONCHANGE":
			g.events |= evSubscriptionChange
		case "":
			d.fail("Expected an event")
			return false
		default:
			unknown = true // AnnotationChange, the METADATA events, extensions
		}
		return d.Err() == nil
	})
	d.Expect(')', "the end of the event group")
	return g, fetch, unknown
}

// notifyFetchAtts reads MessageNew's "(" fetch-att *(SP fetch-att) ")"
// with FETCH's own parser and returns it as written, for replaying
// through UID FETCH when a message arrives.
func (s *session) notifyFetchAtts(d *decoder) string {
	buf, _ := d.r.Peek(d.r.Buffered())
	buf = append([]byte(nil), buf...)
	before := d.lineLeft
	req := &fetchRequest{}
	d.List(func() bool { return req.item(d) })
	used := before - d.lineLeft
	if d.Err() != nil {
		return ""
	}
	if used > len(buf) {
		// A literal inside the list: not kept.
		d.fail("Literals in MessageNew fetch attributes are not supported")
		return ""
	}
	return string(buf[:used])
}

// RFC 5465 5: the server SHOULD NOT tell a client about its own
// CREATE, DELETE, RENAME and SUBSCRIBE. The notifyOwn methods record
// them as already told; other clients' changes still show at the next
// look.

// notifyOwnMailbox records a mailbox this session created.
func (s *session) notifyOwnMailbox(_ string, mb *store.Mailbox) {
	if n := s.notify; n != nil && n.boxes != nil && mb != nil {
		n.boxes[mb.ID] = *mb
	}
}

// notifyOwnRename records this session's RENAME from to (its inferiors
// too), or its DELETE of from when to is "". RENAME of INBOX moves
// its messages into a new mailbox, which the next look reports.
func (s *session) notifyOwnRename(from, to string) {
	n := s.notify
	if n == nil || n.boxes == nil || from == "INBOX" {
		return
	}
	for id, b := range n.boxes {
		switch {
		case b.Name == from && to == "":
			delete(n.boxes, id)
		case b.Name == from:
			b.Name = to
			n.boxes[id] = b
		case strings.HasPrefix(b.Name, from+delimiter) && to != "":
			b.Name = to + strings.TrimPrefix(b.Name, from)
			n.boxes[id] = b
		}
	}
}

// notifyOwnSubscription records this session's SUBSCRIBE or UNSUBSCRIBE.
func (s *session) notifyOwnSubscription(name string, sub bool) {
	if n := s.notify; n != nil && n.subs != nil {
		if sub {
			n.subs[name] = true
		} else {
			delete(n.subs, name)
		}
	}
}

// notifyOff is NOTIFY NONE.
func (s *session) notifyOff() {
	if s.notify != nil {
		s.notify.stop()
		s.notify.poll.stop()
		s.notify = nil
	}
}

// matches reports the events the groups ask for on mailbox name.
func (n *notifyState) matches(name string) notifyEvents {
	var ev notifyEvents
	for _, g := range n.groups {
		hit := false
		switch g.filter {
		case "INBOXES", "PERSONAL":
			// RFC 5465 6.3: Sieve may file mail into any mailbox, so
			// the inboxes are every personal mailbox.
			hit = true
		case "SUBSCRIBED":
			hit = n.subs[name]
		case "SUBTREE":
			for _, x := range g.names {
				if name == x || strings.HasPrefix(name, x+delimiter) {
					hit = true
				}
			}
		case "MAILBOXES":
			for _, x := range g.names {
				if name == x {
					hit = true
				}
			}
		}
		if hit {
			ev |= g.events
		}
	}
	return ev
}

// notifyStatusItems are the STATUS items events ask for (RFC 5465 5.1 -
// 5.3), in STATUS's usual order.
func (s *session) notifyStatusItems(ev notifyEvents) []string {
	var items []string
	if ev&(evMessageNew|evMessageExpunge) != 0 {
		items = append(items, "MESSAGES")
	}
	if ev&evMessageNew != 0 {
		items = append(items, "UIDNEXT")
	}
	if ev&(evMessageNew|evFlagChange) != 0 {
		items = append(items, "UIDVALIDITY")
	}
	if ev&evFlagChange != 0 || (s.condstore && ev&(evMessageNew|evMessageExpunge) != 0) {
		items = append(items, "HIGHESTMODSEQ")
	}
	return items
}

// notifyLook reads the user's mailboxes (and subscriptions when needed)
// and, unless first, tells the client what changed in them since the
// last look. With status (NOTIFY SET STATUS) the first look sends a
// STATUS for each watched mailbox (RFC 5465 3.1).
func (s *session) notifyLook(status bool) error {
	n := s.notify
	first := !n.looked
	ver := s.changeVersion()
	if len(n.groups) == 0 {
		n.looked, n.ver = true, ver
		return nil
	}
	boxes, err := s.srv.opts.Store.ListMailboxes(s.ctx, s.user)
	if err != nil {
		return err
	}
	var subs map[string]bool
	if n.needSubs {
		names, err := s.srv.opts.Store.Subscriptions(s.ctx, s.user)
		if err != nil {
			return err
		}
		subs = make(map[string]bool, len(names))
		for _, x := range names {
			subs[x] = true
		}
	}
	oldBoxes, oldSubs := n.boxes, n.subs
	n.boxes = make(map[int64]store.Mailbox, len(boxes))
	for _, b := range boxes {
		n.boxes[b.ID] = b
	}
	n.subs, n.ver, n.looked = subs, ver, true

	var out []func()
	selected := func(id int64) bool { return s.sel != nil && s.sel.id == id }
	if first {
		if status {
			for _, b := range boxes {
				if ev := n.matches(b.Name) & evMessage; ev != 0 && !selected(b.ID) {
					out = append(out, s.statusNote(b, ev))
				}
			}
		}
		return s.notifyWrite(out)
	}
	byName := make(map[string]bool, len(boxes))
	for _, b := range boxes {
		byName[b.Name] = true
		old, had := oldBoxes[b.ID]
		switch {
		case !had:
			if n.matches(b.Name)&evMailboxName != 0 {
				out = append(out, s.listNote(b.Name, "", childAttr(boxes, b.Name)))
			}
			continue
		case old.Name != b.Name:
			if (n.matches(b.Name)|n.matches(old.Name))&evMailboxName != 0 {
				out = append(out, s.listNote(b.Name, old.Name, ""))
			}
		}
		if selected(b.ID) {
			continue // the selected mailbox's events are its own
		}
		ev := n.matches(b.Name) & evMessage
		moved := b.UIDNext != old.UIDNext || b.Messages != old.Messages || b.UIDValidity != old.UIDValidity
		flags := !moved && b.HighestModSeq != old.HighestModSeq
		if (moved && ev&(evMessageNew|evMessageExpunge) != 0) || (flags && ev&evFlagChange != 0) {
			out = append(out, s.statusNote(b, ev))
		}
	}
	for id, old := range oldBoxes {
		if _, ok := n.boxes[id]; !ok && !byName[old.Name] && n.matches(old.Name)&evMailboxName != 0 {
			out = append(out, s.listNote(old.Name, "", `\NonExistent`))
		}
	}
	if n.needSubs {
		for name := range union(oldSubs, subs) {
			if oldSubs[name] == subs[name] || n.matches(name)&evSubscriptionChange == 0 {
				continue
			}
			attrs := ""
			if !byName[name] {
				attrs = `\NonExistent`
			}
			if subs[name] {
				attrs = strings.TrimSpace(attrs + ` \Subscribed`)
			}
			out = append(out, s.listNote(name, "", attrs))
		}
	}
	return s.notifyWrite(out)
}

// childAttr is CHILDREN's attribute (RFC 3348) for name among boxes.
func childAttr(boxes []store.Mailbox, name string) string {
	for _, b := range boxes {
		if strings.HasPrefix(b.Name, name+delimiter) {
			return `\HasChildren`
		}
	}
	return `\HasNoChildren`
}

func union(a, b map[string]bool) map[string]bool {
	u := make(map[string]bool, len(a)+len(b))
	for k := range a {
		u[k] = true
	}
	for k := range b {
		u[k] = true
	}
	return u
}

// statusNote writes "* STATUS" for a mailbox other than the selected one.
func (s *session) statusNote(b store.Mailbox, ev notifyEvents) func() {
	return func() { _ = s.writeStatus(&b, s.notifyStatusItems(ev)) }
}

// listNote writes an unsolicited LIST (RFC 5465 5.4, 5.5): OLDNAME for
// a rename (RFC 5258 extended data).
func (s *session) listNote(name, oldName, attrs string) func() {
	return func() {
		s.w.Untagged()
		s.w.Raw("LIST (" + attrs + `) "/" `)
		s.writeMailbox(name)
		if oldName != "" {
			s.w.Raw(` ("OLDNAME" (`)
			s.writeMailbox(oldName)
			s.w.Raw("))")
		}
		s.w.CRLF()
	}
}

// notifyWrite writes the notifications of one look, or, when there are
// too many, NOTIFICATIONOVERFLOW and turns NOTIFY off (RFC 5465 5.8).
func (s *session) notifyWrite(out []func()) error {
	if len(out) > s.srv.notifyMax {
		s.w.Status("*", "OK", "NOTIFICATIONOVERFLOW", "Too many changes at once; NOTIFY is off")
		s.notifyOff()
		return nil
	}
	for _, f := range out {
		f()
	}
	return nil
}

// notifyCheck sends what changed since the last look: the selected
// mailbox's events as its filter asks (inIdle: IDLE allows expunges
// even with SELECTED-DELAYED), then the other mailboxes'. force reads
// the store even when the change counter has not moved (the poll of a
// store that is not Realtime).
func (s *session) notifyCheck(inIdle, force bool) error {
	n := s.notify
	if n == nil {
		return nil
	}
	if s.sel != nil && n.selected != 0 {
		v := s.sel
		before := v.count()
		s.quietFlags = n.selected&evFlagChange == 0
		err := s.syncChanges(inIdle || !n.delayed, force)
		s.quietFlags = false
		if err != nil {
			return err
		}
		if n.fetch != "" && s.sel == v && v.count() > before {
			s.notifyFetch(v, before)
		}
	}
	if s.notify == nil || (!force && n.looked && s.changeVersion() == n.ver && s.srv.realtime()) {
		return nil
	}
	return s.notifyLook(false)
}

// notifyFetch sends MessageNew's FETCH for the messages after the first
// before of v (RFC 5465 5.2), through UID FETCH so that every item
// FETCH knows works the same here.
func (s *session) notifyFetch(v *view, before uint32) {
	spec, ok := s.srv.commands["UID FETCH"]
	if !ok {
		return
	}
	first, last := v.msgs[before].uid, v.msgs[v.count()-1].uid
	line := " " + strconv.FormatUint(uint64(first), 10) + ":" + strconv.FormatUint(uint64(last), 10) + " " + s.notify.fetch + "\r\n"
	d := newDecoder(bufio.NewReader(strings.NewReader(line)), s.srv.opts.MaxLineLength, int64(s.srv.opts.MaxLineLength))
	c := &command{name: "UID FETCH", uid: true, args: d}
	if err := spec.run(s, c); err != nil {
		s.log.Warn("NOTIFY MessageNew fetch failed", "err", err)
	}
}

// notifyWait waits for the client's next command while NOTIFY is on,
// sending notifications as changes come; false ends the session.
func (s *session) notifyWait() bool {
	ready := make(chan struct{})
	s.readers.Go(func() {
		// The only reader of s.r until it closes ready; the session
		// reads again only after that, or ends.
		_, _ = s.r.Peek(1)
		close(ready)
	})
	for {
		// NOTIFICATIONOVERFLOW may turn NOTIFY off on the way: then
		// only the client or the end of the session is waited for.
		var watch <-chan struct{}
		var tick <-chan time.Time
		if n := s.notify; n != nil {
			watch, tick = n.watch, n.poll.tick(s.srv.realtime, s.srv.opts.PollInterval)
		}
		select {
		case <-ready:
			return true
		case <-watch:
			s.notifyAndFlush(false)
		case <-tick:
			s.notifyAndFlush(true)
		case <-s.ctx.Done():
			s.closing = true
			s.logout = "closed"
			return false
		}
		if s.w.Err() != nil {
			s.closing = true
			s.logout = "write failed"
			return false
		}
	}
}

func (s *session) notifyAndFlush(force bool) {
	if err := s.notifyCheck(false, force); err != nil {
		if s.ctx.Err() == nil {
			s.log.Warn("NOTIFY check failed", "err", err)
		}
	}
	_ = s.w.Flush()
}
