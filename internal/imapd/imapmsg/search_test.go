package imapmsg

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

func parseSearchString(t testing.TB, s string) *SearchKey {
	t.Helper()
	toks, err := LexSearch(s)
	if err != nil {
		t.Fatalf("LexSearch(%q): %v", s, err)
	}
	k, err := ParseSearch(toks)
	if err != nil {
		t.Fatalf("ParseSearch(%q): %v", s, err)
	}
	return k
}

func TestParseSearchKeys(t *testing.T) {
	day := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
	tests := []struct {
		in   string
		want SearchKey
	}{
		{"ALL", SearchKey{Op: SearchAll}},
		{"answered", SearchKey{Op: SearchFlag, Value: `\Answered`}},
		{"DELETED", SearchKey{Op: SearchFlag, Value: `\Deleted`}},
		{"DRAFT", SearchKey{Op: SearchFlag, Value: `\Draft`}},
		{"FLAGGED", SearchKey{Op: SearchFlag, Value: `\Flagged`}},
		{"SEEN", SearchKey{Op: SearchFlag, Value: `\Seen`}},
		{"UNANSWERED", SearchKey{Op: SearchUnflag, Value: `\Answered`}},
		{"UNDELETED", SearchKey{Op: SearchUnflag, Value: `\Deleted`}},
		{"UNDRAFT", SearchKey{Op: SearchUnflag, Value: `\Draft`}},
		{"UNFLAGGED", SearchKey{Op: SearchUnflag, Value: `\Flagged`}},
		{"UNSEEN", SearchKey{Op: SearchUnflag, Value: `\Seen`}},
		{"KEYWORD $Forwarded", SearchKey{Op: SearchFlag, Value: "$Forwarded"}},
		{"UNKEYWORD Junk", SearchKey{Op: SearchUnflag, Value: "Junk"}},
		{"NEW", SearchKey{Op: SearchNew}},
		{"OLD", SearchKey{Op: SearchOld}},
		{"RECENT", SearchKey{Op: SearchRecent}},
		{"BEFORE 1-Feb-1994", SearchKey{Op: SearchBefore, Date: day(1994, 2, 1)}},
		{`ON "07-feb-1994"`, SearchKey{Op: SearchOn, Date: day(1994, 2, 7)}},
		{"SINCE 31-Dec-2023", SearchKey{Op: SearchSince, Date: day(2023, 12, 31)}},
		{"SENTBEFORE 1-Jan-2000", SearchKey{Op: SearchSentBefore, Date: day(2000, 1, 1)}},
		{"SENTON 29-Feb-2024", SearchKey{Op: SearchSentOn, Date: day(2024, 2, 29)}},
		{"SENTSINCE 1-Mar-2022", SearchKey{Op: SearchSentSince, Date: day(2022, 3, 1)}},
		{"SAVEDBEFORE 1-Jan-2000", SearchKey{Op: SearchSavedBefore, Date: day(2000, 1, 1)}},
		{"savedon 29-Feb-2024", SearchKey{Op: SearchSavedOn, Date: day(2024, 2, 29)}},
		{"SAVEDSINCE 1-Mar-2022", SearchKey{Op: SearchSavedSince, Date: day(2022, 3, 1)}},
		{"SAVEDATESUPPORTED", SearchKey{Op: SearchSaveDateSupported}},
		{"EMAILID E42", SearchKey{Op: SearchEmailID, Value: "E42"}},
		{"$", SearchKey{Op: SearchUID, Saved: true}},
		{"UID $", SearchKey{Op: SearchUID, Saved: true}},
		{`THREADID "T-1_a"`, SearchKey{Op: SearchThreadID, Value: "T-1_a"}},
		{"LARGER 1024", SearchKey{Op: SearchLarger, Number: 1024}},
		{"SMALLER 10", SearchKey{Op: SearchSmaller, Number: 10}},
		{`BCC "x y"`, SearchKey{Op: SearchHeader, Field: "Bcc", Value: "x y", Address: true}},
		{"CC carol", SearchKey{Op: SearchHeader, Field: "Cc", Value: "carol", Address: true}},
		{"FROM alice", SearchKey{Op: SearchHeader, Field: "From", Value: "alice", Address: true}},
		{"SUBJECT lunch", SearchKey{Op: SearchHeader, Field: "Subject", Value: "lunch"}},
		{"TO bob", SearchKey{Op: SearchHeader, Field: "To", Value: "bob", Address: true}},
		{`HEADER Message-ID ""`, SearchKey{Op: SearchHeader, Field: "Message-ID", Value: ""}},
		{"BODY tuesday", SearchKey{Op: SearchBody, Value: "tuesday"}},
		{"TEXT \"caf\u00e9\"", SearchKey{Op: SearchText, Value: "caf\u00e9"}},
		{"UID 1:5,9", SearchKey{Op: SearchUID, Set: NumSet{{1, 5}, {9, 9}}}},
		{"2:*", SearchKey{Op: SearchSeq, Set: NumSet{{2, 0}}}},
		{"MODSEQ 42", SearchKey{Op: SearchModSeq, Number: 42}},
		{`MODSEQ "/flags/\\Seen" all 7`, SearchKey{Op: SearchModSeq, Number: 7}},
		{"NOT SEEN", SearchKey{Op: SearchNot, Sub: []SearchKey{{Op: SearchFlag, Value: `\Seen`}}}},
		{"OR SEEN 3", SearchKey{Op: SearchOr, Sub: []SearchKey{{Op: SearchFlag, Value: `\Seen`}, {Op: SearchSeq, Set: NumSet{{3, 3}}}}}},
		{"(SEEN DRAFT)", SearchKey{Op: SearchAnd, Sub: []SearchKey{{Op: SearchFlag, Value: `\Seen`}, {Op: SearchFlag, Value: `\Draft`}}}},
	}
	for _, tc := range tests {
		got := parseSearchString(t, tc.in)
		if len(got.Sub) != 1 || !reflect.DeepEqual(got.Sub[0], tc.want) {
			t.Errorf("ParseSearch(%q) = %+v, want %+v", tc.in, got.Sub, tc.want)
		}
	}

	// Several keys form an AND; nesting works.
	k := parseSearchString(t, `OR (FROM a NOT TO b) UID 4 SINCE 1-Jan-2020`)
	if k.Op != SearchAnd || len(k.Sub) != 2 || k.Sub[0].Op != SearchOr || k.Sub[0].Sub[0].Op != SearchAnd ||
		len(k.Sub[0].Sub[0].Sub) != 2 || k.Sub[0].Sub[0].Sub[1].Op != SearchNot || k.Sub[1].Op != SearchSince {
		t.Errorf("nested criteria parsed as %+v", k)
	}

	for _, bad := range []string{
		"", "FOO", "SEEN)", "(SEEN", "()", "NOT", "OR SEEN", "BEFORE", "BEFORE 32-Jan-2020",
		"BEFORE 1-Foo-2020", "BEFORE 2020-01-01", "ON 30-Feb-2021", "LARGER x", "LARGER -1", "HEADER From",
		"UID", "UID x", "UID 0", "KEYWORD", `"SEEN"`, "MODSEQ", `MODSEQ "/flags/x" bogus 1`, "0:3",
		"SUBJECT (", strings.Repeat("NOT ", 100) + "SEEN", "EMAILID", `EMAILID "a b"`, `THREADID ""`,
	} {
		toks, err := LexSearch(bad)
		if err != nil {
			continue
		}
		if k, err := ParseSearch(toks); err == nil {
			t.Errorf("ParseSearch(%q) = %+v, want an error", bad, k)
		} else if !errors.Is(err, ErrSearch) {
			t.Errorf("ParseSearch(%q): %v does not wrap ErrSearch", bad, err)
		}
	}
	for _, bad := range []string{`SUBJECT "open`, `SUBJECT "bad\escape"`} {
		if _, err := LexSearch(bad); err == nil {
			t.Errorf("LexSearch(%q) succeeded", bad)
		}
	}
}

func TestNumSet(t *testing.T) {
	set, err := ParseNumSet("1:3,7,10:*,*")
	if err != nil {
		t.Fatal(err)
	}
	if set.String() != "1:3,7,10:*,*" {
		t.Errorf("String() = %q", set.String())
	}
	r := set.Resolve(8) // 10:* with 8 in use is 8:10
	for n, want := range map[uint32]bool{0: false, 1: true, 3: true, 4: false, 7: true, 8: true, 9: true, 10: true, 11: false} {
		if r.Contains(n) != want {
			t.Errorf("Resolve(8).Contains(%d) = %v", n, !want)
		}
	}
	if e := set.Resolve(0); e.Contains(1) == false || e.Contains(11) {
		// 1:3 still holds 1; every "*" range collapses to 0 and matches nothing else.
		t.Errorf("Resolve(0) = %v", e)
	}
	for _, bad := range []string{"", "0", "1:", ":2", "1,,2", "a", "4294967296", "1:0", "$"} {
		if s, err := ParseNumSet(bad); err == nil {
			t.Errorf("ParseNumSet(%q) = %v", bad, s)
		}
	}
	if got := CompactUIDs([]uint32{1, 2, 3, 5, 7, 8}); got != "1:3,5,7:8" {
		t.Errorf("CompactUIDs = %q", got)
	}
	if got := CompactUIDs(nil); got != "" {
		t.Errorf("CompactUIDs(nil) = %q", got)
	}
}

// fakeMessage is a MessageView over bytes that counts what was read.
type fakeMessage struct {
	seq, uid       uint32
	flags          []string
	date           time.Time
	modseq         uint64
	msg            []byte
	headerReads    int
	contentReads   int
	failingContent bool
}

func (f *fakeMessage) SeqNum() uint32          { return f.seq }
func (f *fakeMessage) UID() uint32             { return f.uid }
func (f *fakeMessage) Flags() []string         { return f.flags }
func (f *fakeMessage) Size() int64             { return int64(len(f.msg)) }
func (f *fakeMessage) InternalDate() time.Time { return f.date }
func (f *fakeMessage) ModSeq() uint64          { return f.modseq }
func (f *fakeMessage) Header() ([]byte, error) {
	f.headerReads++
	return ReadHeader(bytes.NewReader(f.msg), int64(len(f.msg)))
}
func (f *fakeMessage) Content() (io.ReaderAt, *Structure, error) {
	f.contentReads++
	if f.failingContent {
		return nil, nil, errors.New("disk on fire")
	}
	return bytes.NewReader(f.msg), ParseBytes(f.msg), nil
}

func TestMatchEveryKey(t *testing.T) {
	plain := &fakeMessage{
		seq: 3, uid: 30, flags: []string{`\Seen`, `\flagged`, "$Forwarded"}, modseq: 12,
		date: time.Date(1994, 2, 8, 1, 0, 0, 0, time.FixedZone("CET", 3600)),
		msg:  readTestMessage(t, "plain.eml"),
	}
	alt := &fakeMessage{seq: 4, uid: 41, date: time.Date(2022, 3, 15, 9, 0, 0, 0, time.UTC), modseq: 5,
		msg: readTestMessage(t, "alternative.eml")}
	enc := &fakeMessage{seq: 5, uid: 50, flags: []string{`\Answered`, `\Draft`, `\Deleted`}, date: time.Date(2022, 3, 18, 0, 0, 0, 0, time.UTC),
		msg: readTestMessage(t, "encoded-words.eml")}
	nested := &fakeMessage{seq: 6, uid: 60, date: time.Date(2022, 3, 17, 0, 0, 0, 0, time.UTC),
		msg: readTestMessage(t, "nested-rfc822.eml")}
	bit8 := &fakeMessage{seq: 7, uid: 70, date: time.Date(2022, 3, 19, 0, 0, 0, 0, time.UTC),
		msg: readTestMessage(t, "8bit.eml")}
	nodate := &fakeMessage{seq: 8, uid: 80, date: time.Date(2021, 6, 1, 12, 0, 0, 0, time.UTC),
		msg: readTestMessage(t, "missing-headers.eml")}
	all := []*fakeMessage{plain, alt, enc, nested, bit8, nodate}

	tests := []struct {
		criteria string
		want     []uint32 // UIDs
	}{
		{"ALL", []uint32{30, 41, 50, 60, 70, 80}},
		{"ANSWERED", []uint32{50}},
		{"UNANSWERED", []uint32{30, 41, 60, 70, 80}},
		{"DELETED", []uint32{50}},
		{"UNDELETED", []uint32{30, 41, 60, 70, 80}},
		{"DRAFT", []uint32{50}},
		{"UNDRAFT", []uint32{30, 41, 60, 70, 80}},
		{"FLAGGED", []uint32{30}},
		{"UNFLAGGED", []uint32{41, 50, 60, 70, 80}},
		{"SEEN", []uint32{30}},
		{"UNSEEN", []uint32{41, 50, 60, 70, 80}},
		{"KEYWORD $forwarded", []uint32{30}},
		{"UNKEYWORD $Forwarded", []uint32{41, 50, 60, 70, 80}},
		{"RECENT", nil},
		{"NEW", nil},
		{"OLD", []uint32{30, 41, 50, 60, 70, 80}},
		// Internal dates compare by their own day: plain's is 8 Feb 1994 in CET.
		{"ON 8-Feb-1994", []uint32{30}},
		{"BEFORE 15-Mar-2022", []uint32{30, 80}},
		{"SINCE 18-Mar-2022", []uint32{50, 70}},
		{"BEFORE 9-Feb-1994 SINCE 8-Feb-1994", []uint32{30}},
		// Date headers: plain was sent on 7 Feb 1994 (its own zone, -0800);
		// encoded-words on 18 Mar 2022 +1400; missing-headers has none and
		// falls back to its internal date.
		{"SENTON 7-Feb-1994", []uint32{30}},
		{"SENTON 18-Mar-2022", []uint32{50}},
		{"SENTBEFORE 16-Mar-2022", []uint32{30, 41, 80}},
		{"SENTSINCE 17-Mar-2022", []uint32{50, 60, 70}},
		{"SENTON 1-Jun-2021", []uint32{80}},
		{"LARGER 800", []uint32{41, 60}},
		{"SMALLER 100", []uint32{80}},
		{"FROM ALICE", []uint32{30}},
		{"FROM josé", []uint32{41}},                          // RFC 2047 Q-encoded UTF-8 display name
		{"FROM andré", []uint32{50}},                         // ISO-8859-1 encoded-word
		{"SUBJECT reåçhon", []uint32{41}},                    // B-encoded subject
		{"SUBJECT \"understand the example\"", []uint32{50}}, // two encoded-words in two charsets
		{"SUBJECT grüße", []uint32{70}},                      // raw 8-bit header
		{"SUBJECT \"lunch on\"", []uint32{30}},
		{"TO carol", []uint32{30}},
		{"TO keith", []uint32{50}},
		{"CC dave", []uint32{30}},
		{"BCC \"a group\"", []uint32{50}},
		{"HEADER Reply-To reports", []uint32{41}},
		{"HEADER In-Reply-To \"\"", []uint32{41, 50}},
		{"HEADER X-Note nothing", []uint32{80}},
		{"HEADER X-Absent \"\"", nil},
		{"BODY tuesday", []uint32{30}},
		{"BODY \"olá equipe\"", []uint32{41}},   // quoted-printable UTF-8
		{"BODY \"café at 10\"", []uint32{41}},   // base64 HTML part
		{"BODY \"crème brûlée\"", []uint32{50}}, // quoted-printable ISO-8859-1
		{"BODY \"inner html\"", []uint32{60}},   // a part of a forwarded message
		{"BODY \"simple inner\"", []uint32{60}}, // the header of a forwarded message is body text
		{"BODY \"schöne grüße\"", []uint32{70}}, // 8-bit UTF-8
		{"BODY lunch", []uint32{30}},            // not in the header for BODY
		{"BODY \"\"", []uint32{30, 41, 50, 60, 70, 80}},
		{"TEXT lunch", []uint32{30}},
		{"TEXT \"message-id: <alt-1\"", []uint32{41}},
		{"TEXT \"body only\"", []uint32{80}},
		{"UID 41:60", []uint32{41, 50, 60}},
		{"UID 75:*", []uint32{80}},
		{"UID *", []uint32{80}},
		{"3,5", []uint32{30, 50}},
		{"7:*", []uint32{70, 80}},
		{"*", []uint32{80}},
		{"MODSEQ 6", []uint32{30}},
		{"MODSEQ 0", []uint32{30, 41, 50, 60, 70, 80}},
		{"NOT SEEN", []uint32{41, 50, 60, 70, 80}},
		{"OR SEEN DRAFT", []uint32{30, 50}},
		{"OR (SEEN FLAGGED) (UID 80 BODY \"body only\")", []uint32{30, 80}},
		{"NOT (OR FROM alice FROM bob) UNSEEN", []uint32{41, 50, 60, 70, 80}},
		{"FROM a NOT FROM alice", []uint32{41, 50, 60, 70}}, // "a" is in every From
	}
	// Every key must give the same answer from the header blocks and from
	// the stored fields (SearchFields, as a store keeps them).
	stored := make([]MessageView, len(all))
	for i, m := range all {
		h, _ := m.Header()
		stored[i] = &storedMessage{fakeMessage: m, vals: SearchFields(h)}
	}
	for _, tc := range tests {
		for _, views := range []struct {
			name string
			ms   []MessageView
		}{{"header", fakeViews(all)}, {"stored", stored}} {
			key := parseSearchString(t, tc.criteria)
			key.Resolve(8, 80)
			var got []uint32
			for _, m := range views.ms {
				ok, err := Match(key, m)
				if err != nil {
					t.Fatalf("%s: %v", tc.criteria, err)
				}
				if ok {
					got = append(got, m.UID())
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("SEARCH %s (%s) = %v, want %v", tc.criteria, views.name, got, tc.want)
			}
		}
	}
}

func fakeViews(ms []*fakeMessage) []MessageView {
	out := make([]MessageView, len(ms))
	for i, m := range ms {
		out[i] = m
	}
	return out
}

// storedMessage is a fakeMessage with stored fields (FieldSource).
type storedMessage struct {
	*fakeMessage
	vals [NumStoredFields]string
}

func (m *storedMessage) StoredField(f StoredField) ([]byte, bool) { return []byte(m.vals[f]), true }

func TestMatchReadsOnlyWhatItNeeds(t *testing.T) {
	m := &fakeMessage{uid: 1, flags: []string{`\Seen`}, msg: readTestMessage(t, "plain.eml")}
	check := func(criteria string, want bool, headers, contents int) {
		t.Helper()
		m.headerReads, m.contentReads = 0, 0
		key := parseSearchString(t, criteria)
		key.Resolve(1, 1)
		ok, err := Match(key, m)
		if err != nil || ok != want {
			t.Errorf("%s = %v, %v; want %v", criteria, ok, err, want)
		}
		if m.headerReads != headers || m.contentReads != contents {
			t.Errorf("%s read the header %d times and the content %d times, want %d and %d",
				criteria, m.headerReads, m.contentReads, headers, contents)
		}
	}
	check("SEEN LARGER 10", true, 0, 0)
	check("BODY tuesday UNSEEN", false, 0, 0) // the flag fails first: no body read
	check("SUBJECT lunch BODY noon", true, 1, 1)
	check("OR SUBJECT nope SUBJECT lunch", true, 1, 0) // header decoded once
	check("OR BODY nope BODY noon", true, 0, 1)
	check("TEXT alice", true, 1, 0) // found in the header: body not read

	m.failingContent = true
	m.headerReads, m.contentReads = 0, 0
	key := parseSearchString(t, "BODY x")
	if _, err := Match(key, m); err == nil {
		t.Error("Match succeeded though the content could not be read")
	}
}

func TestEqualFold(t *testing.T) {
	for _, tc := range []struct {
		b, s string
		want bool
	}{
		{"Subject", "subject", true}, {"SUBJECT", "Subject", true}, {"Subject", "Subjec", false},
		{"Date", "Data", false}, {"X-[", "x-{", false}, {"", "", true}, {"Message-ID", "MESSAGE-id", true},
	} {
		if got := equalFold([]byte(tc.b), tc.s); got != tc.want {
			t.Errorf("equalFold(%q, %q) = %v", tc.b, tc.s, got)
		}
	}
}

// RFC 5032 WITHIN: OLDER and YOUNGER count seconds back from the search.
func TestParseWithin(t *testing.T) {
	before := time.Now()
	toks, err := LexSearch("OLDER 3600 YOUNGER 86400")
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParseSearch(toks)
	after := time.Now()
	if err != nil || len(k.Sub) != 2 {
		t.Fatalf("ParseSearch: %+v, %v", k, err)
	}
	for i, want := range []struct {
		op SearchOp
		n  uint64
	}{{SearchOlder, 3600}, {SearchYounger, 86400}} {
		got := k.Sub[i]
		d := time.Duration(want.n) * time.Second
		if got.Op != want.op || got.Number != want.n || got.Date.Before(before.Add(-d)) || got.Date.After(after.Add(-d)) {
			t.Errorf("key %d: %+v, want op %d, %d seconds back", i, got, want.op, want.n)
		}
	}
	for _, bad := range []string{"OLDER 0", "YOUNGER", "OLDER x", "YOUNGER 4294967296", "OLDER -1"} {
		toks, err := LexSearch(bad)
		if err == nil {
			_, err = ParseSearch(toks)
		}
		if !errors.Is(err, ErrSearch) {
			t.Errorf("%q: %v, want ErrSearch", bad, err)
		}
	}
}
