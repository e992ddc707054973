package imapd

import (
	"strings"
	"testing"
)

// TestImaplibExtensions speaks ID, STATUS=SIZE, CREATE-SPECIAL-USE and
// SAVEDATE with Python's imaplib, an independent client.
func TestImaplibExtensions(t *testing.T) {
	ts := startServer(t, nil)
	// Two messages of 150 octets each: STATUS SIZE 300.
	deliver(t, ts.st, alice, "INBOX", testMessage("one"), testMessage("two"))
	out := runPython(t, ts, `
imaplib.Commands["ID"] = ("NONAUTH", "AUTH", "SELECTED")
out["caps"] = " ".join(sorted(m.capabilities))
typ, dat = m._simple_command("ID", '("name" "imaplib")')
out["id"] = typ + " " + str(m._untagged_response(typ, dat, "ID")[1])
out["status"] = str(m.status("INBOX", "(MESSAGES SIZE)"))
out["create"] = str(m._simple_command("CREATE", "Spam", "(USE (\\Junk))"))
out["create_bad"] = str(m._simple_command("CREATE", "Weird", "(USE (\\Bogus))"))
out["list"] = str(m.list('""', "Spam"))
m.select("INBOX")
out["savedate"] = str(m.fetch("1:2", "(SAVEDATE)"))
out["saved_search"] = str(m.search(None, "SAVEDSINCE", "1-Jan-2020"))
`)
	for _, c := range []string{"ID", "STATUS=SIZE", "CREATE-SPECIAL-USE", "SAVEDATE"} {
		if !strings.Contains(" "+out["caps"]+" ", " "+c+" ") {
			t.Errorf("imaplib capabilities %q lack %s", out["caps"], c)
		}
	}
	checks := map[string]string{
		"id":           `OK [b'("name" "Petrel")']`,
		"status":       `b'INBOX (MESSAGES 2 SIZE 300)'`,
		"create":       `('OK'`,
		"create_bad":   `('NO', [b'[USEATTR]`,
		"list":         `b'(\\HasNoChildren \\Junk) "/" Spam'`,
		"saved_search": `('OK', [b'1 2'])`,
	}
	for k, want := range checks {
		if !strings.Contains(out[k], want) {
			t.Errorf("imaplib %s: %q, want %q in it", k, out[k], want)
		}
	}
	if n := strings.Count(out["savedate"], "SAVEDATE \""); n != 2 {
		t.Errorf("imaplib FETCH SAVEDATE: %q", out["savedate"])
	}
}
