package imapd

import (
	"slices"
	"strconv"
	"strings"

	"github.com/petrelmail/petrel/internal/imapd/imapmsg"
)

// sort is SORT and UID SORT (RFC 5256), with SORT=DISPLAY (RFC 5957),
// ESORT's RETURN options and CONTEXT=SORT (RFC 5267), and SAVE (RFC
// 5182):
//
//	SORT [RETURN (options)] (criteria) charset search-key...
func (m *msgCommands) sort(s *session, c *command) (err error) {
	d := c.args
	d.SP()
	var ret searchReturn
	if !d.Is('(') {
		if !strings.EqualFold(searchWord(d), "RETURN") {
			return bad("Expected RETURN or a sort criteria list")
		}
		d.SP()
		readReturnOptions(d, &ret)
		d.SP()
	}
	var words []string
	d.List(func() bool {
		words = append(words, d.Atom())
		return d.Err() == nil
	})
	d.SP()
	charset := d.AString()
	d.SP()
	toks := searchTokens(d)
	if err := d.End(); err != nil {
		return err
	}
	keys, err := imapmsg.ParseSortCriteria(words)
	if err != nil {
		return bad("Bad sort criteria: " + err.Error())
	}
	if charset == "" {
		return bad("Missing charset")
	}
	if ret.update && s.sel.hasUpdate(c.tag) {
		return bad("Tag reuse: " + c.tag + " already has an UPDATE context") // RFC 5267 4.3
	}
	if ret.save {
		defer func() { // RFC 5182 2.1, as in search
			if err != nil && !isBad(err) {
				s.sel.saved = nil
			}
		}()
	}
	key, err := parseCriteria(charset, toks)
	if err != nil {
		return err
	}
	s.sel.fillSaved(key)
	found, err := m.matchAll(s, key)
	if err != nil {
		return err
	}
	msgs, err := m.sortMessages(s, found, c.uid, sortReadsHeader(keys))
	if err != nil {
		return err
	}
	slices.SortFunc(msgs, func(a, b *imapmsg.SortMessage) int { return imapmsg.CompareSort(keys, a, b) })
	nums := make([]uint32, len(msgs))
	for i, msg := range msgs {
		nums[i] = msg.Num
	}
	if ret.save || ret.update {
		ordered := make([]uint32, len(msgs))
		for i, msg := range msgs {
			ordered[i] = msg.Seq
		}
		if ret.save {
			s.sel.saveResult(ret, sortUnique(slices.Clone(ordered)), ordered)
		}
		if ret.update {
			// After the response: NOUPDATE, if any, follows it.
			defer func() {
				if u := s.addUpdate(c, m, key, sortUnique(slices.Clone(ordered))); u != nil {
					u.sort, u.order = keys, s.sel.uidsOf(ordered)
				}
			}()
		}
	}
	if ret.esearch {
		if !ret.quiet() {
			s.writeESort(c, ret, nums)
		}
		return nil
	}
	w := s.w
	w.Untagged()
	w.Raw("SORT")
	for _, n := range nums {
		w.Byte(' ')
		w.Uint(uint64(n))
	}
	w.CRLF()
	return nil
}

// writeESort answers SORT RETURN with ESEARCH (RFC 5267 3.2): MIN and MAX
// are the first and last in sort order, ALL and PARTIAL list the
// messages in sort order (ascending runs written as ranges).
func (s *session) writeESort(c *command, ret searchReturn, nums []uint32) {
	w := s.w
	w.Untagged()
	w.Raw("ESEARCH (TAG ")
	w.String(c.tag)
	w.Raw(")")
	if c.uid {
		w.Raw(" UID")
	}
	if len(nums) > 0 {
		if ret.min {
			w.Raw(" MIN ")
			w.Uint(uint64(nums[0]))
		}
		if ret.max {
			w.Raw(" MAX ")
			w.Uint(uint64(nums[len(nums)-1]))
		}
		if ret.all {
			w.Raw(" ALL ")
			w.Raw(orderedSet(nums))
		}
	}
	if ret.partial {
		s.writePartial(ret, orderedSet(partialOf(ret, nums)))
	}
	if ret.count {
		w.Raw(" COUNT ")
		w.Uint(uint64(len(nums)))
	}
	w.CRLF()
}

// orderedSet writes numbers in their order as a sequence-set, joining
// runs of consecutive ascending numbers into ranges.
func orderedSet(nums []uint32) string {
	var b []byte
	for i := 0; i < len(nums); {
		j := i
		for j+1 < len(nums) && nums[j+1] == nums[j]+1 {
			j++
		}
		if len(b) > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, uint64(nums[i]), 10)
		if j > i {
			b = append(b, ':')
			b = strconv.AppendUint(b, uint64(nums[j]), 10)
		}
		i = j + 1
	}
	return string(b)
}

// thread is THREAD and UID THREAD (RFC 5256) with the ORDEREDSUBJECT and
// REFERENCES algorithms:
//
//	THREAD algorithm charset search-key...
func (m *msgCommands) thread(s *session, c *command) error {
	d := c.args
	d.SP()
	algorithm := upperASCII(d.Atom())
	d.SP()
	charset := d.AString()
	d.SP()
	toks := searchTokens(d)
	if err := d.End(); err != nil {
		return err
	}
	var build func([]*imapmsg.SortMessage) []*imapmsg.ThreadNode
	switch algorithm {
	case "ORDEREDSUBJECT":
		build = imapmsg.ThreadOrderedSubject
	case "REFERENCES":
		build = imapmsg.ThreadReferences
	default:
		return bad("Unknown threading algorithm")
	}
	key, err := parseCriteria(charset, toks)
	if err != nil {
		return err
	}
	s.sel.fillSaved(key)
	found, err := m.matchAll(s, key)
	if err != nil {
		return err
	}
	msgs, err := m.sortMessages(s, found, c.uid, true)
	if err != nil {
		return err
	}
	w := s.w
	w.Untagged()
	w.Raw("THREAD")
	if len(msgs) > 0 {
		w.Byte(' ')
		var b []byte
		for _, t := range build(msgs) {
			b = imapmsg.AppendThread(b, t)
		}
		w.Raw(string(b))
	}
	w.CRLF()
	return nil
}

// sortMessages gathers what SORT and THREAD compare for the messages
// seqs; the header is read (in batches, through the header cache) only
// when a criterion needs it. Messages expunged under the command are left
// out.
func (m *msgCommands) sortMessages(s *session, seqs []uint32, uid, readHeader bool) ([]*imapmsg.SortMessage, error) {
	v := s.sel
	out := make([]*imapmsg.SortMessage, 0, len(seqs))
	sm := &searchMessage{}
	for i, q := range seqs {
		if readHeader && i%prefetchChunk == 0 {
			m.prefetchHeaders(s, seqs[i:min(i+prefetchChunk, len(seqs))], needHeader, bytesHeader)
		}
		msg := v.msg(q)
		if v.isGone(msg.UID) {
			continue
		}
		one := &imapmsg.SortMessage{Seq: q, Num: q, InternalDate: msg.InternalDate, Size: msg.Size}
		if uid {
			one.Num = msg.UID
		}
		if readHeader {
			*sm = searchMessage{m: m, s: s, seq: q, info: msg}
			h, err := sm.Header()
			if err == nil {
				one.Fields = imapmsg.SortFieldsOf(h)
			}
			sm.close()
			if err != nil && isExpungedBody(err) {
				continue
			}
			if err != nil {
				return nil, err
			}
		}
		out = append(out, one)
	}
	return out, nil
}
