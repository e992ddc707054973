package pop3d

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// poplibScript drives a whole session with Python's poplib, an
// independent client: on 995 with POP3_SSL, on 110 with STLS (after
// checking that USER is refused before it). It prints what it saw as
// JSON; bodies are base64 with CRLF line ends.
const poplibScript = `
import base64, json, poplib, ssl, sys
host, port, cafile, user, pw, mode = sys.argv[1:7]
ctx = ssl.create_default_context(cafile=cafile)
out = {}
if mode == "995":
    p = poplib.POP3_SSL(host, int(port), context=ctx, timeout=20)
else:
    p = poplib.POP3(host, int(port), timeout=20)
    out["capa_before"] = sorted(p.capa().keys())
    try:
        p.user(user)
        out["user_before_stls"] = "accepted"
    except poplib.error_proto as e:
        out["user_before_stls"] = e.args[0].decode()
    p.stls(context=ctx)
out["welcome"] = p.getwelcome().decode()
out["capa"] = sorted(" ".join([k] + v) for k, v in p.capa().items())
p.user(user)
out["pass"] = p.pass_(pw).decode()
out["stat"] = list(p.stat())
resp, lines, octets = p.list()
out["list"] = [l.decode() for l in lines]
out["list2"] = p.list(2).decode()
resp, lines, octets = p.uidl()
out["uidl"] = [l.decode() for l in lines]
out["uidl1"] = p.uidl(1).decode()
out["retr"] = []
for i in range(1, out["stat"][0] + 1):
    resp, lines, octets = p.retr(i)
    out["retr"].append({"resp": resp.decode(), "octets": octets,
        "body": base64.b64encode(b"".join(l + b"\r\n" for l in lines)).decode()})
resp, lines, octets = p.top(1, 1)
out["top"] = base64.b64encode(b"".join(l + b"\r\n" for l in lines)).decode()
out["dele1"] = p.dele(1).decode()
try:
    p.retr(1)
    out["retr_deleted"] = "accepted"
except poplib.error_proto as e:
    out["retr_deleted"] = e.args[0].decode()
out["rset"] = p.rset().decode()
out["dele2"] = p.dele(2).decode()
out["noop"] = p.noop().decode()
out["quit"] = p.quit().decode()
print(json.dumps(out))
`

type poplibResult struct {
	CapaBefore     []string `json:"capa_before"`
	UserBeforeSTLS string   `json:"user_before_stls"`
	Welcome        string
	Capa           []string
	Pass           string
	Stat           []int
	List           []string
	List2          string
	UIDL           []string
	UIDL1          string
	Retr           []struct {
		Resp   string
		Octets int
		Body   string
	}
	Top         string
	Dele1       string
	RetrDeleted string `json:"retr_deleted"`
	Rset        string
	Dele2       string
	Noop        string
	Quit        string
}

func runPoplib(t *testing.T, e *testEnv, mode string) poplibResult {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	script := filepath.Join(t.TempDir(), "pop.py")
	if err := os.WriteFile(script, []byte(poplibScript), 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(e.addr)
	cmd := exec.CommandContext(t.Context(), py, script, host, port, e.cert.CAFile, alice, alicePass, mode)
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("poplib: %v\n%s\nserver log:\n%s", err, stderr, e.logs.String())
	}
	var r poplibResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("poplib output %q: %v", out, err)
	}
	return r
}

// pythonBodies are the messages the poplib tests fetch: dot lines, 8-bit
// text, a long line (poplib refuses lines over 2048 octets) and a bare LF.
var pythonBodies = []string{
	"From: a@remote.test\r\nSubject: dots\r\n\r\n.\r\n..\r\n.leading dot\r\nlast\r\n",
	"Subject: =?utf-8?q?8bit?=\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße aus Köln, 日本語\r\n",
	"Subject: long\r\n\r\n" + strings.Repeat("0123456789", 150) + "\r\n",
	"Subject: bare LF\n\nunix line ends\n.dot\n",
}

func checkPoplib(t *testing.T, e *testEnv, r poplibResult) {
	t.Helper()
	if r.Welcome != "+OK POP3 "+testHost+" ready" || !strings.HasPrefix(r.Pass, "+OK") {
		t.Errorf("welcome %q, pass %q", r.Welcome, r.Pass)
	}
	for _, c := range []string{"TOP", "UIDL", "USER", "SASL PLAIN LOGIN", "RESP-CODES", "PIPELINING", "IMPLEMENTATION Petrel"} {
		if !slices.Contains(r.Capa, c) {
			t.Errorf("capa %q lacks %q", r.Capa, c)
		}
	}
	total := 0
	for i, b := range pythonBodies {
		want := normalize(b)
		total += len(want)
		got, err := base64.StdEncoding.DecodeString(r.Retr[i].Body)
		if err != nil || string(got) != want {
			t.Errorf("RETR %d: %q, want %q", i+1, got, want)
		}
		// poplib counts the octets it read, without the stuffing.
		if r.Retr[i].Octets != len(want) || r.Retr[i].Resp != fmt.Sprintf("+OK %d octets", len(want)) {
			t.Errorf("RETR %d: %q, %d octets, want %d", i+1, r.Retr[i].Resp, r.Retr[i].Octets, len(want))
		}
		if r.List[i] != fmt.Sprintf("%d %d", i+1, len(want)) {
			t.Errorf("LIST line %q, want size %d", r.List[i], len(want))
		}
	}
	if len(r.Stat) != 2 || r.Stat[0] != len(pythonBodies) || r.Stat[1] != total {
		t.Errorf("STAT %v, want %d %d", r.Stat, len(pythonBodies), total)
	}
	if r.List2 != fmt.Sprintf("+OK 2 %d", len(normalize(pythonBodies[1]))) {
		t.Errorf("LIST 2: %q", r.List2)
	}
	if len(r.UIDL) != len(pythonBodies) || !strings.HasPrefix(r.UIDL1, "+OK "+r.UIDL[0]) {
		t.Errorf("UIDL %q, UIDL 1 %q", r.UIDL, r.UIDL1)
	}
	if top, _ := base64.StdEncoding.DecodeString(r.Top); string(top) != "From: a@remote.test\r\nSubject: dots\r\n\r\n.\r\n" {
		t.Errorf("TOP 1 1: %q", top)
	}
	if !strings.HasPrefix(r.RetrDeleted, "-ERR Message 1 is deleted") || !strings.HasPrefix(r.Rset, "+OK") ||
		!strings.HasPrefix(r.Dele1, "+OK") || !strings.HasPrefix(r.Dele2, "+OK") || r.Noop != "+OK" {
		t.Errorf("dele/rset/noop: %+v", r)
	}
	if r.Quit != "+OK Logging out, 1 messages deleted." {
		t.Errorf("QUIT: %q", r.Quit)
	}
	left := inboxOf(t, e.st, alice)
	if len(left) != len(pythonBodies)-1 || left[0].UID != 1 || left[1].UID != 3 {
		t.Errorf("after QUIT: %+v", left)
	}
	var size int64
	for _, m := range left {
		size += m.Size
	}
	if q := usedQuota(t, e.st, alice); q != size {
		t.Errorf("quota_bytes_used %d, messages %d", q, size)
	}
}

func TestPoplib995(t *testing.T) {
	e := start(t, true, nil)
	put(t, e.st, alice, pythonBodies...)
	r := runPoplib(t, e, "995")
	checkPoplib(t, e, r)
}

func TestPoplib110STLS(t *testing.T) {
	e := start(t, false, nil)
	put(t, e.st, alice, pythonBodies...)
	r := runPoplib(t, e, "110")
	if !slices.Contains(r.CapaBefore, "STLS") || slices.Contains(r.CapaBefore, "USER") {
		t.Errorf("CAPA before STLS: %q", r.CapaBefore)
	}
	if r.UserBeforeSTLS != "-ERR Authentication canceled. Use STLS first" {
		t.Errorf("USER before STLS: %q", r.UserBeforeSTLS)
	}
	checkPoplib(t, e, r)
}
