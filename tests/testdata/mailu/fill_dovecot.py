"""Fill a Dovecot with mail as a Mailu user's would look: nested folders,
flags, keywords, old dates, a large message, 8-bit text, expunged gaps.
Every message goes in through IMAP APPEND, so the Maildir files,
dovecot-uidlist, dovecot-keywords and subscriptions are Dovecot's own.

env: PORT, USERS (comma-separated), PASSWORD, COUNT (messages per user),
SEED."""
import imaplib
import os
import random
import time

port = int(os.environ["PORT"])
users = os.environ["USERS"].split(",")
password = os.environ["PASSWORD"]
count = int(os.environ["COUNT"])
rnd = random.Random(int(os.environ.get("SEED", "1")))

FOLDERS = ["INBOX", "Sent", "Trash", "Work", "Work.Projects", "Work.Projects.2024", "Caf&AOk-", "Archive"]
SYSTEM = ["\\Seen", "\\Answered", "\\Flagged", "\\Draft"]
KEYWORDS = ["$Forwarded", "$Label1", "Important", "$Junk", "work"]
WORDS = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor".split()


def message(user, i, big=False):
    subject = "message %d for %s %s" % (i, user, rnd.choice(WORDS))
    lines = [" ".join(rnd.choice(WORDS) for _ in range(12)) for _ in range(rnd.randint(3, 60))]
    if big:
        lines = lines * 400
    if i % 7 == 3:
        lines.append("8-bit: caf\u00e9 gr\u00fc\u00dfe \u65e5\u672c")
    head = [
        "From: Sender %d <sender%d@example.org>" % (i, i % 13),
        "To: %s" % user,
        "Subject: %s" % subject,
        "Message-ID: <%d.%s@example.org>" % (i, user),
        "Date: Mon, 1 Jan 2024 10:00:00 +0000",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
    ]
    return ("\r\n".join(head) + "\r\n\r\n" + "\r\n".join(lines) + "\r\n").encode()


for n, user in enumerate(users):
    m = imaplib.IMAP4("127.0.0.1", port)
    m.login(user, password)
    for f in FOLDERS[1:]:
        typ, _ = m.create(f)
        assert typ == "OK", f
    for i in range(count):
        folder = FOLDERS[0] if i % 3 == 0 else rnd.choice(FOLDERS)
        flags = [f for f in SYSTEM if rnd.random() < 0.3] + [k for k in KEYWORDS if rnd.random() < 0.15]
        when = time.time() - rnd.randint(0, 5 * 365 * 86400)
        typ, data = m.append(folder, "(" + " ".join(flags) + ")", imaplib.Time2Internaldate(when), message(user, i, big=(i == 1)))
        assert typ == "OK", data
    # Gaps in the UIDs: expunge some of INBOX; leave a \Deleted one in Work.
    m.select("INBOX")
    typ, data = m.uid("SEARCH", "ALL")
    uids = data[0].split()
    for u in uids[1::9]:
        m.uid("STORE", u, "+FLAGS.SILENT", "(\\Deleted)")
    m.expunge()
    m.select("Work")
    typ, data = m.uid("SEARCH", "ALL")
    if data[0]:
        m.uid("STORE", data[0].split()[0], "+FLAGS.SILENT", "(\\Deleted)")
    m.close()
    m.subscribe("Work")
    m.subscribe("Work.Projects")
    m.subscribe("Caf&AOk-")
    m.unsubscribe("Archive")
    m.logout()
print("filled", len(users), "users")
