package imapmsg

import "testing"

func TestSearchFields(t *testing.T) {
	header := "From: =?UTF-8?Q?Jos=C3=A9_Garc=C3=ADa?= <Jose@Example.ORG> (work)\r\n" +
		"To: \"Smith, Anna\" <anna@b.example>, bob@c.example (Bob Builder),\r\n" +
		"  Team: carl@d.example, dora@e.example;\r\n" +
		"Cc: undisclosed-recipients:;\r\n" +
		"Subject: =?ISO-8859-1?B?Q2Fm6Q==?= and\r\n =?UTF-8?Q?cr=C3=A8me?= BRÛLÉE\r\n" +
		"Subject: second\r\n" +
		"Message-ID: <ABC.123@Mail.Example>\r\n" +
		"\r\n"
	got := SearchFields([]byte(header))
	want := [NumStoredFields]string{
		StoredSubject:   "café and crème brûlée" + FieldSep + "second",
		StoredFrom:      "josé garcía <jose@example.org>",
		StoredTo:        "smith, anna <anna@b.example>, bob builder <bob@c.example>, team: carl@d.example, dora@e.example;",
		StoredCc:        "undisclosed-recipients: ;",
		StoredBcc:       "",
		StoredMessageID: "<abc.123@mail.example>",
	}
	for f := range want {
		if got[f] != want[f] {
			t.Errorf("field %d = %q, want %q", f, got[f], want[f])
		}
	}
}

// TestAddressKeysMatchEnvelope checks RFC 3501 6.4.4's rule for FROM, TO,
// CC and BCC: they match the envelope (name, mailbox, host), so text that
// is only in a comment or in quoting does not match, while HEADER From
// still matches the decoded header text.
func TestAddressKeysMatchEnvelope(t *testing.T) {
	msg := "From: Ann Example <ann@one.example> (sales dept)\r\n" +
		"To: =?UTF-8?B?w4lsb2TDrWU=?= <elo@two.example>\r\n" +
		"Subject: x\r\n\r\nbody\r\n"
	m := &fakeMessage{seq: 1, uid: 1, msg: []byte(msg)}
	h, _ := m.Header()
	st := &storedMessage{fakeMessage: m, vals: SearchFields(h)}
	for _, tc := range []struct {
		criteria string
		want     bool
	}{
		{"FROM ann", true},
		{"FROM \"ann example\"", true},
		{"FROM ANN@ONE", true}, // mailbox@host, case-insensitive
		{"FROM one.example", true},
		{"FROM \"<ann@one.example>\"", true},
		{"FROM sales", false}, // a comment is not part of the envelope
		{"HEADER From sales", true},
		{"TO élodíe", true}, // decoded B-encoded name
		{"TO =?UTF-8?B", false},
		{"TO two.example", true},
		{"FROM elo", false},
		{"CC ann", false},
	} {
		for _, v := range []MessageView{m, st} {
			key := parseSearchString(t, tc.criteria)
			reads := m.headerReads
			got, err := Match(key, v)
			if err != nil || got != tc.want {
				t.Errorf("%s on %T = %v, %v; want %v", tc.criteria, v, got, err, tc.want)
			}
			if v == MessageView(st) && storedKey(&key.Sub[0]) >= 0 && m.headerReads != reads {
				t.Errorf("%s read the header although the field is stored", tc.criteria)
			}
		}
	}
}

func TestStoredFieldsUse(t *testing.T) {
	for _, tc := range []struct {
		criteria    string
		fields      []StoredField
		needsHeader bool
	}{
		{"SUBJECT a", []StoredField{StoredSubject}, false},
		{"OR FROM a (TO b NOT CC c)", []StoredField{StoredFrom, StoredTo, StoredCc}, false},
		{"HEADER Message-ID <x@y>", []StoredField{StoredMessageID}, false},
		{"HEADER SUBJECT a BCC b", []StoredField{StoredSubject, StoredBcc}, false},
		{"HEADER From a", nil, true}, // header text, not envelope: not stored
		{"HEADER Subject \"\"", nil, true},
		{"SUBJECT a SENTON 1-Jan-2020", []StoredField{StoredSubject}, true},
		{"SUBJECT a TEXT b", []StoredField{StoredSubject}, true},
		{"SEEN", nil, false},
	} {
		key := parseSearchString(t, tc.criteria)
		got := key.StoredFields()
		if len(got) != len(tc.fields) {
			t.Errorf("%s: stored fields %v, want %v", tc.criteria, got, tc.fields)
			continue
		}
		for i := range got {
			if got[i] != tc.fields[i] {
				t.Errorf("%s: stored fields %v, want %v", tc.criteria, got, tc.fields)
			}
		}
		if key.NeedsHeader() != tc.needsHeader {
			t.Errorf("%s: NeedsHeader = %v", tc.criteria, !tc.needsHeader)
		}
	}
}
