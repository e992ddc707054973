#!/usr/bin/env python3
"""An independent ManageSieve client written from RFC 5804 (stdlib only).

It checks a server's replies: the greeting's capabilities, STARTTLS with
the capabilities re-issued, AUTHENTICATE PLAIN, every script command with
its response codes, bad scripts, size and count limits, NOOP's TAG,
UNAUTHENTICATE and LOGOUT. Settings come from the environment:
SIEVE_ADDR (host:port), SIEVE_USER, SIEVE_PASS, SIEVE_MAXSIZE (octets).
It prints "ALL CHECKS PASSED" and exits 0, or fails with the first wrong
reply.
"""

import base64
import os
import socket
import ssl
import sys


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("server closed the connection")
        self.buf += data

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def octets(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def tokens(self, line):
        """Parses one response line (RFC 5804 4) into atoms, strings and
        parenthesised response codes, reading literals {n} as they come."""
        out = []
        i = 0
        while i < len(line):
            c = line[i:i + 1]
            if c == b" ":
                i += 1
            elif c == b'"':
                j, s = i + 1, b""
                while line[j:j + 1] != b'"':
                    if line[j:j + 1] == b"\\":
                        j += 1
                    s += line[j:j + 1]
                    j += 1
                    if j > len(line):
                        raise ValueError("unterminated quoted string: %r" % line)
                out.append(("str", s))
                i = j + 1
            elif c == b"{":
                j = line.index(b"}", i)
                n = int(line[i + 1:j].rstrip(b"+"))
                if j != len(line) - 1:
                    raise ValueError("literal not at the end of the line: %r" % line)
                out.append(("str", self.octets(n)))
                line, i = self.line(), 0
            elif c == b"(":
                j = line.index(b")", i)
                out.append(("code", self.tokens(line[i + 1:j])))
                i = j + 1
            else:
                j = i
                while j < len(line) and line[j:j + 1] not in (b" ", b"("):
                    j += 1
                out.append(("atom", line[i:j]))
                i = j
        return out

    def response(self):
        """Reads lines until OK, NO or BYE; returns (items, status, code,
        text), items being the token lists of the lines before."""
        items = []
        while True:
            toks = self.tokens(self.line())
            if toks and toks[0][0] == "atom" and toks[0][1].upper() in (b"OK", b"NO", b"BYE"):
                status = toks[0][1].decode().upper()
                code, text = None, None
                for kind, val in toks[1:]:
                    if kind == "code":
                        code = b" ".join(v if k == "atom" else b'"' + v + b'"' for k, v in val).decode()
                    elif kind == "str":
                        text = val.decode()
                return items, status, code, text
            items.append(toks)


def quoted(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def literal(data):
    if isinstance(data, str):
        data = data.encode()
    return b"{%d+}\r\n" % len(data) + data


class Check:
    def __init__(self, conn):
        self.c = conn

    def cmd(self, data, status, code=None, text_has=None):
        if isinstance(data, str):
            data = data.encode()
        self.c.send(data + b"\r\n")
        items, st, cd, text = self.c.response()
        where = data[:80]
        if st != status:
            raise AssertionError("%r: got %s (%s) %r, want %s" % (where, st, cd, text, status))
        if code is not None and (cd or "") .split(" ")[0] != code:
            raise AssertionError("%r: response code %r, want %r (text %r)" % (where, cd, code, text))
        if text_has is not None and (text is None or text_has not in text):
            raise AssertionError("%r: text %r lacks %r" % (where, text, text_has))
        return items, cd, text


def capabilities(items):
    caps = {}
    for toks in items:
        name = toks[0][1].decode().upper()
        caps[name] = toks[1][1].decode() if len(toks) > 1 else None
    return caps


def main():
    host, port = os.environ["SIEVE_ADDR"].rsplit(":", 1)
    user, password = os.environ["SIEVE_USER"], os.environ["SIEVE_PASS"]
    maxsize = int(os.environ["SIEVE_MAXSIZE"])

    sock = socket.create_connection((host, int(port)), timeout=30)
    c = Conn(sock)
    items, st, _, _ = c.response()
    assert st == "OK", st
    caps = capabilities(items)
    # RFC 5804 1.7: IMPLEMENTATION, SASL, SIEVE and VERSION are required.
    for need in ("IMPLEMENTATION", "SASL", "SIEVE", "VERSION", "STARTTLS"):
        assert need in caps, "greeting lacks %s: %r" % (need, caps)
    assert caps["VERSION"] == "1.0", caps
    assert caps["SASL"] == "", "SASL before TLS: %r" % caps["SASL"]
    assert "fileinto" in caps["SIEVE"].split() and "vacation" in caps["SIEVE"].split(), caps["SIEVE"]
    assert int(caps.get("MAXREDIRECTS") or "0") > 0, caps

    chk = Check(c)
    plain = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
    chk.cmd('AUTHENTICATE "PLAIN" ' + quoted(plain), "NO", "ENCRYPT-NEEDED")

    # RFC 5804 2.2: STARTTLS, then the capabilities again.
    chk.cmd("STARTTLS", "OK")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c.sock = ctx.wrap_socket(sock, server_hostname=host)
    c.buf = b""
    items, st, _, _ = c.response()
    assert st == "OK", st
    caps = capabilities(items)
    assert "STARTTLS" not in caps, caps
    assert "PLAIN" in caps["SASL"].split(), caps

    chk.cmd('AUTHENTICATE "PLAIN" ' + quoted(base64.b64encode(b"\0" + user.encode() + b"\0wrong").decode()), "NO")
    chk.cmd('AUTHENTICATE "PLAIN" ' + quoted(plain), "OK")
    items, _, _ = chk.cmd("CAPABILITY", "OK")
    assert capabilities(items).get("OWNER") == user, items

    script = 'require ["fileinto"];\r\nif header :contains "subject" "[list]" {\r\n  fileinto "Lists";\r\n}\r\n'
    items, _, _ = chk.cmd("LISTSCRIPTS", "OK")
    assert items == [], items
    chk.cmd(b'PUTSCRIPT "lists" ' + literal(script), "OK")
    chk.cmd('PUTSCRIPT "small" "keep;"', "OK")
    # Bad scripts: NO with a human-readable reason naming the line.
    chk.cmd(b'PUTSCRIPT "bad" ' + literal("keep;\r\nfrobnicate;\r\n"), "NO", None, "line 2")
    chk.cmd(b'PUTSCRIPT "bad" ' + literal('require "nosuchext";\r\n'), "NO", None, "line 1")
    chk.cmd(b"CHECKSCRIPT " + literal("if true {\r\n"), "NO", None, "line")
    chk.cmd(b"CHECKSCRIPT " + literal(script), "OK")
    chk.cmd('GETSCRIPT "bad"', "NO", "NONEXISTENT")

    items, _, _ = chk.cmd("LISTSCRIPTS", "OK")
    listed = {t[0][1]: len(t) > 1 and t[1][1] == b"ACTIVE" for t in items}
    assert listed == {b"lists": False, b"small": False}, listed
    chk.cmd('SETACTIVE "lists"', "OK")
    chk.cmd('SETACTIVE "nope"', "NO", "NONEXISTENT")
    items, _, _ = chk.cmd("LISTSCRIPTS", "OK")
    listed = {t[0][1]: len(t) > 1 and t[1][1] == b"ACTIVE" for t in items}
    assert listed == {b"lists": True, b"small": False}, listed
    items, _, _ = chk.cmd('GETSCRIPT "lists"', "OK")
    assert items and items[0][0][1] == script.encode(), items
    chk.cmd('DELETESCRIPT "lists"', "NO", "ACTIVE")
    chk.cmd('RENAMESCRIPT "small" "lists"', "NO", "ALREADYEXISTS")
    chk.cmd('RENAMESCRIPT "gone" "x"', "NO", "NONEXISTENT")
    chk.cmd('RENAMESCRIPT "small" "tiny"', "OK")
    chk.cmd('DELETESCRIPT "tiny"', "OK")
    chk.cmd('DELETESCRIPT "tiny"', "NO", "NONEXISTENT")

    # Limits: HAVESPACE and PUTSCRIPT over MAXSIZE get QUOTA/MAXSIZE, and
    # the session goes on after an oversized literal.
    chk.cmd('HAVESPACE "x" 10', "OK")
    chk.cmd('HAVESPACE "x" %d' % (maxsize + 1), "NO", "QUOTA/MAXSIZE")
    chk.cmd(b'PUTSCRIPT "big" ' + literal(b"#" * (maxsize + 1)), "NO", "QUOTA/MAXSIZE")
    _, code, _ = chk.cmd("NOOP " + quoted("t-1"), "OK")
    assert code == 'TAG "t-1"', code

    chk.cmd('SETACTIVE ""', "OK")
    chk.cmd("UNAUTHENTICATE", "OK")
    chk.cmd("LISTSCRIPTS", "NO")
    chk.cmd("FROB", "NO")
    chk.cmd("LOGOUT", "OK")
    print("ALL CHECKS PASSED")


if __name__ == "__main__":
    try:
        main()
    except (AssertionError, ValueError, EOFError, OSError) as e:
        print("FAILED:", e)
        sys.exit(1)
