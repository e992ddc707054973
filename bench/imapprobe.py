#!/usr/bin/env python3
"""imapprobe: one IMAP session at a time against a server under load, timing each command.

Usage: imapprobe.py PORT USER PASSWORD SECONDS

For SECONDS it opens an implicit-TLS session to 127.0.0.1:PORT and sends, one after the other
(each waits for its tagged reply): LOGIN, SELECT INBOX, NOOP, APPEND of a 1 KiB message (LITERAL+),
UID STORE +FLAGS (\\Deleted) and UID EXPUNGE of that message (its UID from APPENDUID, RFC 4315),
LOGOUT; then starts again after 20 ms. At the end it prints one line per command: name, count,
p50, p90 and p99 in ms, and the number of sessions that failed.

bench/imap.sh runs it beside imaptest's stress load (STRESS_PROBE=1): imaptest times a command
from the moment it queues it in its corked output stream until it has parsed the tagged reply,
in whole milliseconds, in one process that also parses every other client's replies; this
probe measures the server's answer to a single client that does nothing else.
"""
import re
import socket
import ssl
import sys
import time

COMMANDS = ["LOGIN", "SELECT", "NOOP", "APPEND", "STORE", "EXPUNGE", "LOGOUT"]
MESSAGE = (b"From: probe@example.test\r\nTo: probe@example.test\r\nSubject: probe\r\n\r\n"
           + b"x" * 1000 + b"\r\n")
APPENDUID = re.compile(rb"\[APPENDUID \d+ (\d+)\]")


def command_line(name, user, password, uid):
    """The command after the tag, or None when it needs the UID APPEND did not give."""
    if name in ("STORE", "EXPUNGE") and uid is None:
        return None
    return {
        "LOGIN": lambda: b"LOGIN %s %s" % (user.encode(), password.encode()),
        "SELECT": lambda: b"SELECT INBOX",
        "NOOP": lambda: b"NOOP",
        "APPEND": lambda: b"APPEND INBOX {%d+}\r\n%s" % (len(MESSAGE), MESSAGE),
        "STORE": lambda: b"UID STORE %s +FLAGS.SILENT (\\Deleted)" % uid,
        "EXPUNGE": lambda: b"UID EXPUNGE %s" % uid,
        "LOGOUT": lambda: b"LOGOUT",
    }[name]()


def read_tagged(f, tag):
    while True:
        line = f.readline()
        if not line:
            raise ConnectionError("connection closed before the tagged reply")
        if line.startswith(tag + b" "):
            return line


def percentile(sorted_values, p):
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p))]


def session(ctx, port, user, password, times):
    """One session; False if a command failed."""
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10)) as s:
        f = s.makefile("rb")
        f.readline()  # greeting
        uid = None
        for i, name in enumerate(COMMANDS):
            line = command_line(name, user, password, uid)
            if line is None:
                return False
            tag = b"p%d" % i
            t0 = time.perf_counter()
            s.sendall(tag + b" " + line + b"\r\n")
            reply = read_tagged(f, tag)
            times[name].append((time.perf_counter() - t0) * 1000)
            if not reply.startswith(tag + b" OK"):
                return False
            if name == "APPEND":
                m = APPENDUID.search(reply)
                uid = m.group(1) if m else None
    return True


def main():
    port, user, password, seconds = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the benchmark's self-signed certificates
    times = {c: [] for c in COMMANDS}
    errors = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            if not session(ctx, port, user, password, times):
                errors += 1
        except (OSError, ConnectionError):
            errors += 1
        time.sleep(0.02)
    for c in COMMANDS:
        v = sorted(times[c])
        print("%s\t%d\t%.3f\t%.3f\t%.3f" % (c, len(v), percentile(v, 0.5), percentile(v, 0.9), percentile(v, 0.99)))
    print("errors\t%d" % errors)


if __name__ == "__main__":
    main()
