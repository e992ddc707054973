"""Compare every user's mail on two IMAP servers message by message:
mailboxes (by hierarchy, whatever each server's delimiter), UIDVALIDITY,
UIDs, flags, INTERNALDATE, size and bytes, and subscriptions.

env: A_PORT (Dovecot), B_PORT (Petrel), USERS, PASSWORD.
Prints one line per user and "MISMATCH ..." lines; exits 1 on any."""
import imaplib
import os
import re
import sys

users = os.environ["USERS"].split(",")
password = os.environ["PASSWORD"]
LIST_RE = re.compile(rb'\((?P<attrs>[^)]*)\) (?:"(?P<delim>[^"]*)"|NIL) (?P<name>.+)$')
bad = 0


def mismatch(*a):
    global bad
    bad += 1
    print("MISMATCH", *a)


def names(m, cmd):
    typ, data = getattr(m, cmd)('""', '"*"')
    out = {}
    for d in data:
        if not d:
            continue
        g = LIST_RE.match(d)
        name = g.group("name").strip(b'"').decode()
        delim = (g.group("delim") or b".").decode().replace("\\\\", "\\")
        out[tuple(name.split(delim))] = (name, g.group("attrs").decode())
    return out


def messages(m, name):
    typ, data = m.select('"%s"' % name, readonly=True)
    assert typ == "OK", (name, data)
    uv = m.untagged_responses.get("UIDVALIDITY", [b"0"])[0]
    exists = int(data[0])
    msgs = {}
    if exists == 0:
        return int(uv), msgs
    typ, data = m.uid("FETCH", "1:*", "(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])")
    for d in data:
        if not isinstance(d, tuple):
            continue
        meta = d[0]
        uid = int(re.search(rb"UID (\d+)", meta).group(1))
        flags = set(re.search(rb"FLAGS \(([^)]*)\)", meta).group(1).split()) - {b"\\Recent"}
        date = imaplib.Internaldate2tuple(meta)
        size = int(re.search(rb"RFC822.SIZE (\d+)", meta).group(1))
        msgs[uid] = (frozenset(flags), tuple(date[:6]) if date else None, size, d[1])
    return int(uv), msgs


total = 0
for user in users:
    a = imaplib.IMAP4("127.0.0.1", int(os.environ["A_PORT"]))
    b = imaplib.IMAP4("127.0.0.1", int(os.environ["B_PORT"]))
    a.login(user, password)
    b.login(user, password)
    la, lb = names(a, "list"), names(b, "list")
    sa, sb = set(names(a, "lsub")), set(names(b, "lsub"))
    if sa != sb:
        mismatch(user, "subscriptions", sorted(sa), sorted(sb))
    count = 0
    for key, (na, _) in sorted(la.items()):
        if key not in lb:
            mismatch(user, "mailbox missing in petrel", na)
            continue
        uva, ma = messages(a, na)
        uvb, mb = messages(b, lb[key][0])
        if not ma and not mb:
            continue  # an empty mailbox's UIDVALIDITY is not the import's
        if uva != uvb:
            mismatch(user, na, "UIDVALIDITY", uva, uvb)
        if set(ma) != set(mb):
            mismatch(user, na, "UIDs", sorted(set(ma) ^ set(mb))[:10], len(ma), len(mb))
        for uid in sorted(set(ma) & set(mb)):
            fa, da, za, ba = ma[uid]
            fb, db, zb, bb = mb[uid]
            if fa != fb:
                mismatch(user, na, uid, "flags", sorted(fa), sorted(fb))
            if da != db:
                mismatch(user, na, uid, "internaldate", da, db)
            if za != zb or ba != bb:
                mismatch(user, na, uid, "body", za, zb)
        count += len(ma)
    total += count
    print("user", user, "mailboxes", len(la), "messages", count)
    a.logout()
    b.logout()
print("compared", total, "messages")
sys.exit(1 if bad else 0)
