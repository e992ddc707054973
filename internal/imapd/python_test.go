package imapd

import (
	"encoding/json"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// imaplibScript drives a session with Python's imaplib, an independent
// client: on 993 with IMAP4_SSL, on 143 with STARTTLS (after checking
// that LOGIN is refused before it). It prints what it saw as JSON.
const imaplibScript = `
import imaplib, json, ssl, sys
host, port, cafile, user, pw, mode = sys.argv[1:7]
ctx = ssl.create_default_context(cafile=cafile)
out = {}
def s(x):
    if isinstance(x, bytes):
        return x.decode("utf-8", "replace")
    if isinstance(x, tuple):
        return [s(y) for y in x]
    if isinstance(x, list):
        return [s(y) for y in x]
    return x
if mode == "993":
    m = imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx, timeout=20)
else:
    m = imaplib.IMAP4(host, int(port), timeout=20)
    out["caps_before"] = sorted(m.capabilities)
    try:
        m.login(user, pw)
        out["login_before_tls"] = "accepted"
    except imaplib.IMAP4.error as e:
        out["login_before_tls"] = str(e)
    m.starttls(ssl_context=ctx)
out["login"] = s(m.login(user, pw))
out["caps"] = sorted(m.capabilities)
out["namespace"] = s(m.namespace())
out["list"] = s(m.list())
out["create"] = s(m.create("Projects/Petrel"))
out["subscribe"] = s(m.subscribe("Projects/Petrel"))
out["lsub"] = s(m.lsub('""', "Projects*"))
msg = b"From: a@remote.test\r\nSubject: imaplib\r\n\r\nbody line\r\n"
out["append"] = s(m.append("INBOX", "(\\Flagged)", imaplib.Time2Internaldate(1700000000), msg))
out["status"] = s(m.status("INBOX", "(MESSAGES UNSEEN UIDNEXT)"))
out["select"] = s(m.select("INBOX"))
out["store"] = s(m.store("1", "+FLAGS", "(\\Seen)"))
out["copy"] = s(m.copy("1", "Projects/Petrel"))
out["uid_move"] = s(m.uid("MOVE", "1", "Trash"))
out["expunge"] = s(m.expunge())
out["noop"] = s(m.noop())
out["quotaroot"] = s(m.getquotaroot("INBOX"))
out["rename"] = s(m.rename("Projects/Petrel", "Projects/Go"))
out["examine"] = s(m.select("Projects/Go", readonly=True))
out["close"] = s(m.close())
out["delete"] = s(m.delete("Projects/Go"))
out["logout"] = s(m.logout())
print(json.dumps(out))
`

type imaplibResult struct {
	CapsBefore     []string `json:"caps_before"`
	LoginBeforeTLS string   `json:"login_before_tls"`
	Login          []any
	Caps           []string
	Namespace      []any
	List           []any
	Create         []any
	Subscribe      []any
	LSUB           []any
	Append         []any
	Status         []any
	Select         []any
	Store          []any
	Copy           []any
	UIDMove        []any `json:"uid_move"`
	Expunge        []any
	Noop           []any
	QuotaRoot      []any
	Rename         []any
	Examine        []any
	Close          []any
	Delete         []any
	Logout         []any
}

func runImaplib(t *testing.T, ts *testServer, mode string) imaplibResult {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	host, port, _ := net.SplitHostPort(ts.addr)
	cmd := exec.Command(py, "-c", imaplibScript, host, port, ts.cert.CAFile, alice, alicePass, mode)
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("imaplib: %v\n%s\n%s", err, out, stderr)
	}
	var r imaplibResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return r
}

// okData checks an imaplib (typ, data) pair and returns data joined.
func okData(t *testing.T, what string, r []any) string {
	t.Helper()
	if len(r) != 2 || r[0] != "OK" {
		t.Fatalf("%s: %v", what, r)
	}
	b, _ := json.Marshal(r[1])
	return string(b)
}

func TestImaplib(t *testing.T) {
	for _, mode := range []string{"993", "143"} {
		t.Run(mode, func(t *testing.T) {
			ts := startServer(t, func(ts *testServer, o *Options) {
				o.NoTLS, o.TLSConfig, o.Implicit = false, ts.cert.Server, mode == "993"
			})
			deliver(t, ts.st, alice, "INBOX", testMessage("one"))
			r := runImaplib(t, ts, mode)
			if mode == "143" {
				if !slices.Contains(r.CapsBefore, "STARTTLS") || !slices.Contains(r.CapsBefore, "LOGINDISABLED") {
					t.Errorf("capabilities before STARTTLS: %v", r.CapsBefore)
				}
				if r.LoginBeforeTLS == "accepted" {
					t.Error("LOGIN accepted before STARTTLS")
				}
			}
			if !slices.Contains(r.Caps, "IMAP4REV1") || !slices.Contains(r.Caps, "IDLE") {
				t.Errorf("capabilities: %v", r.Caps)
			}
			okData(t, "login", r.Login)
			if d := okData(t, "namespace", r.Namespace); !strings.Contains(d, `((\"\" \"/\")) NIL NIL`) {
				t.Errorf("namespace %s", d)
			}
			if d := okData(t, "list", r.List); !strings.Contains(d, `(\\HasNoChildren \\Sent) \"/\" Sent`) {
				t.Errorf("list %s", d)
			}
			okData(t, "create", r.Create)
			okData(t, "subscribe", r.Subscribe)
			if d := okData(t, "lsub", r.LSUB); !strings.Contains(d, "Projects/Petrel") {
				t.Errorf("lsub %s", d)
			}
			if d := okData(t, "append", r.Append); !strings.Contains(d, "APPENDUID") {
				t.Errorf("append %s", d)
			}
			if d := okData(t, "status", r.Status); !strings.Contains(d, "MESSAGES 2 UNSEEN 2 UIDNEXT 3") {
				t.Errorf("status %s", d)
			}
			if d := okData(t, "select", r.Select); d != `["2"]` {
				t.Errorf("select %s", d)
			}
			// The first session to select INBOX: its messages are \Recent
			// to it (IMAP4rev1, which imaplib speaks).
			if d := okData(t, "store", r.Store); !strings.Contains(d, `1 (UID 1 FLAGS (\\Seen \\Recent))`) {
				t.Errorf("store %s", d)
			}
			okData(t, "copy", r.Copy)
			okData(t, "uid move", r.UIDMove)
			okData(t, "expunge", r.Expunge)
			okData(t, "noop", r.Noop)
			okData(t, "getquotaroot", r.QuotaRoot)
			okData(t, "rename", r.Rename)
			if d := okData(t, "examine", r.Examine); d != `["1"]` {
				t.Errorf("examine %s", d)
			}
			okData(t, "close", r.Close)
			okData(t, "delete", r.Delete)
			if len(r.Logout) == 0 || r.Logout[0] != "BYE" {
				t.Errorf("logout %v", r.Logout)
			}
			if n := len(listOf(t, ts, alice, "Trash")); n != 1 {
				t.Errorf("Trash has %d messages", n)
			}
		})
	}
}
