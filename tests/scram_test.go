package tests

import (
	"strings"
	"testing"
)

// scramPython is an independent SCRAM-SHA-256 client written from RFC
// 5802 with hashlib and hmac, driven through Python's own smtplib and
// imaplib (which take any SASL mechanism as a callable) and a raw POP3
// dialogue. -PLUS uses tls-unique (RFC 5929) over TLS 1.2: Python's ssl
// module exposes no TLS exporter, so the TLS 1.3 tls-exporter path is
// covered by the Go loopback tests in smtpd, imapd and pop3d.
const scramPython = `
import base64, hashlib, hmac, imaplib, os, smtplib, socket, ssl, sys

def host_port(a):
    h, p = a.rsplit(":", 1)
    return h, int(p)

def ctx(max12=False):
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    if max12:
        c.maximum_version = ssl.TLSVersion.TLSv1_2
    return c

class Scram:
    """RFC 5802 client; cb is None (gs2 flag n) or (name, data)."""
    def __init__(self, user, password, cb=None):
        self.user, self.password, self.cb = user, password, cb
        self.step = 0
        self.nonce = base64.b64encode(os.urandom(18)).decode()
        name = user.replace("=", "=3D").replace(",", "=2C")
        self.gs2 = ("p=%s,," % cb[0]) if cb else "n,,"
        self.bare = "n=%s,r=%s" % (name, self.nonce)
        self.ok = False
    def first(self):
        return (self.gs2 + self.bare).encode()
    def __call__(self, challenge):
        # smtplib/imaplib call this for every server challenge.
        if self.step == 0 and not challenge:
            self.step = 1
            return self.first()
        if self.step == 0:
            self.step = 1
        if self.step == 1:
            self.step = 2
            return self.final(challenge.decode())
        if self.step == 2:
            self.step = 3
            want = "v=" + base64.b64encode(self.server_sig).decode()
            if challenge.decode() != want:
                raise Exception("server signature does not verify")
            self.ok = True
            return b""
        raise Exception("unexpected challenge")
    def final(self, server_first):
        f = dict(a.split("=", 1) for a in server_first.split(","))
        assert f["r"].startswith(self.nonce) and len(f["r"]) > len(self.nonce)
        salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(), base64.b64decode(f["s"]), int(f["i"]))
        ck = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        sk = hashlib.sha256(ck).digest()
        cbind = self.gs2.encode() + (self.cb[1] if self.cb else b"")
        without = "c=%s,r=%s" % (base64.b64encode(cbind).decode(), f["r"])
        am = ",".join([self.bare, server_first, without]).encode()
        sig = hmac.new(sk, am, hashlib.sha256).digest()
        proof = bytes(a ^ b for a, b in zip(ck, sig))
        self.server_sig = hmac.new(hmac.new(salted, b"Server Key", hashlib.sha256).digest(), am, hashlib.sha256).digest()
        return (without + ",p=" + base64.b64encode(proof).decode()).encode()

USER, PW = "alice@example.test", "Secret-Alice-1"

# SMTP submission on 465, TLS 1.2, SCRAM-SHA-256-PLUS with tls-unique.
def smtp(pw, cbdata=None, max12=True, mech="SCRAM-SHA-256-PLUS"):
    s = smtplib.SMTP_SSL(*host_port(os.environ["A465"]), context=ctx(max12), timeout=20)
    s.ehlo("laptop")
    assert mech in s.esmtp_features.get("auth", ""), s.esmtp_features
    cb = None
    if mech.endswith("PLUS"):
        cb = ("tls-unique", cbdata if cbdata is not None else s.sock.get_channel_binding("tls-unique"))
    sc = Scram(USER, pw, cb)
    try:
        # smtplib wants text from the callable.
        code, _ = s.auth(mech, lambda ch=None: sc(ch or b"").decode(), initial_response_ok=False)
    except smtplib.SMTPAuthenticationError as e:
        code = e.smtp_code
    s.close()
    return code, sc.ok

code, ok = smtp(PW)
print("smtp plus", code, ok)
code, ok = smtp(PW, cbdata=b"\0" * 12)
print("smtp plus wrong binding", code, ok)
code, ok = smtp("wrong", mech="SCRAM-SHA-256", max12=False)
print("smtp wrong password", code, ok)
code, ok = smtp(PW, mech="SCRAM-SHA-256", max12=False)
print("smtp scram", code, ok)

# IMAP on 993: SCRAM-SHA-256 over TLS 1.3, -PLUS with tls-unique over 1.2.
def imap(pw, mech, max12):
    m = imaplib.IMAP4_SSL(*host_port(os.environ["A993"]), ssl_context=ctx(max12))
    assert "AUTH=SCRAM-SHA-256-PLUS" in m.capabilities, m.capabilities
    cb = ("tls-unique", m.sock.get_channel_binding("tls-unique")) if mech.endswith("PLUS") else None
    sc = Scram(USER, pw, cb)
    try:
        typ, _ = m.authenticate(mech, sc)
    except imaplib.IMAP4.error as e:
        typ = "NO"
    res = typ
    if typ == "OK":
        res += " " + m.select("INBOX")[0]
        m.logout()
    return res, sc.ok

print("imap scram", *imap(PW, "SCRAM-SHA-256", False))
print("imap plus", *imap(PW, "SCRAM-SHA-256-PLUS", True))
print("imap wrong password", *imap("nope", "SCRAM-SHA-256", False))

# POP3 on 995, raw: AUTH SCRAM-SHA-256 with an initial response.
def pop():
    raw = socket.create_connection(host_port(os.environ["A995"]), timeout=20)
    s = ctx(False).wrap_socket(raw)
    f = s.makefile("rb")
    def line():
        return f.readline().decode().rstrip("\r\n")
    def send(x):
        s.sendall(x.encode() + b"\r\n")
    assert line().startswith("+OK")
    sc = Scram(USER, PW)
    send("AUTH SCRAM-SHA-256 " + base64.b64encode(sc.first()).decode())
    sc.step = 1
    r = line()
    while r.startswith("+ "):
        send(base64.b64encode(sc(base64.b64decode(r[2:]))).decode())
        r = line()
    send("QUIT")
    return r, sc.ok

print("pop3 scram", *pop())
`

// TestScramIndependentClient: SCRAM-SHA-256 and -PLUS on 465, 993 and
// 995 against the binary, from a client that shares no code with Petrel;
// the credentials come from `petrel user` (a password set stores them).
func TestScramIndependentClient(t *testing.T) {
	s := newServer(t, map[string]string{"PORTS": "25,465,993,995", "LOG_LEVEL": "INFO"})
	s.mustCLI("", "domain", "example.test")
	s.mustCLI("Secret-Alice-1\n", "user", "alice", "example.test", "-")
	s.start()
	out, err := runPython(t, scramPython, map[string]string{"A465": s.addr[465], "A993": s.addr[993], "A995": s.addr[995]})
	if err != nil {
		t.Fatalf("python: %v\n%s\n%s", err, out, s.logs())
	}
	for _, want := range []string{
		"smtp plus 235 True",
		"smtp plus wrong binding 535 False",
		"smtp wrong password 535 False",
		"smtp scram 235 True",
		"imap scram OK OK True",
		"imap plus OK OK True",
		"imap wrong password NO False",
		"pop3 scram +OK",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "pop3 scram +OK") || !strings.HasSuffix(strings.TrimSpace(out), "True") {
		t.Errorf("pop3 did not verify the server:\n%s", out)
	}
	logs := s.logs()
	for _, want := range []string{"success: scram-sha-256-plus", "failed: channel-binding", "failed: badauth"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if strings.Contains(logs, "Secret-Alice-1") {
		t.Error("the password reached the log")
	}
}
