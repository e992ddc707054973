#!/bin/bash
# ftsxapian.sh — full-text search side by side (issue 14): Petrel (SQLite, FULL_TEXT_SEARCH on) and
# Dovecot 2.3 with fts-xapian (Debian's dovecot-fts-xapian) on the same generated mailbox.
#
# Usage (root, as the other bench scripts):
#   bench/ftsxapian.sh                                # 10,000 then 100,000 messages, both servers
#   SIZES=10000 bench/ftsxapian.sh                    # one size
#   SIDES=dovecot SIZES=100000 bench/ftsxapian.sh     # one server
#
# The mailbox: bench/ftsbench's generator (2 KiB bodies of words drawn from a Zipf distribution
# over 60,000 made-up words, seed 1), the same messages in the same order on both sides.
#
# Petrel: `ftsbench -n SIZE -dir D -scan=false` fills one INBOX through the delivery path
#   (CommitMessages), indexes it with the background indexer's code (fts.Indexer.IndexAll) and
#   reports rate, CPU per message and the index size (`petrel index status`'s numbers: SQLite
#   dbstat over the body_fts* tables), then times the searches in the same process (warm). A
#   second run on the same directory (a new process: cold caches in Petrel, not in the kernel)
#   times them again: "first" there is the first search after start.
# Dovecot: lib/postfix-dovecot.sh with PB_FTS=xapian (mail_plugins fts fts_xapian, fts_xapian =
#   $FTS_XAPIAN, fts_enforced = yes, fts_autoindex = no; Postfix starts too but stays idle). The
#   messages are written as Maildir files (`ftsbench -maildir`), Dovecot's own index is built by
#   one untimed `doveadm mailbox status`, then `doveadm index -u USER INBOX` (in one process, no
#   indexer queue) is timed with /usr/bin/time: wall, user+sys CPU, peak RSS; it is stopped after
#   $INDEX_TIMEOUT s. Index size: du of the xapian-indexes directory in the user's home. Dovecot
#   is restarted, then `ftsbench -addr` times the same UID SEARCHes over plaintext IMAP; CPU per
#   search is that of Dovecot's processes (schedstat of the master's process tree).
# Both: 7 searches (rare word by TEXT and BODY, a missing word, two common words, a word start,
#   a common word, a piece of a word), $REPS times each in one session: hits, first, median.
#   Hit counts differ by design: IMAP SEARCH is a substring match (Petrel checks every
#   candidate), xapian matches words and, for header fields, n-grams.
# The load average (uptime) is recorded before and after every step: the machine is shared.
#
# Settings: SIZES="10000 100000" SIDES="petrel dovecot" MSG_SIZE=2048 REPS=5 INDEX_TIMEOUT=6000
#   FTS_XAPIAN="partial=3 full=20 verbose=0" BENCH_DIR=/var/tmp/petrel-bench-xapian
#   OUT=$BENCH_DIR/results LOCK= (a flock file to wait for, e.g. /var/tmp/petrel-bench.lock)
#   PB_SMTP=56125 PB_LMTP=56124 PB_IMAP=56143 KEEP_DATA=0
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib/common.sh"
REPO=$(cd "$HERE/.." && pwd)
PD=$HERE/lib/postfix-dovecot.sh

LOCK=${LOCK-}
if [ -n "$LOCK" ] && [ -z "${PETREL_FTSX_LOCKED:-}" ]; then
  echo "[$(date +%T)] waiting for $LOCK" >&2
  exec env PETREL_FTSX_LOCKED=1 flock "$LOCK" "$0" "$@"
fi

SIZES=${SIZES:-"10000 100000"}
SIDES=${SIDES:-"petrel dovecot"}
MSG_SIZE=${MSG_SIZE:-2048}
REPS=${REPS:-5}
INDEX_TIMEOUT=${INDEX_TIMEOUT:-6000}
BENCH_DIR=${BENCH_DIR:-/var/tmp/petrel-bench-xapian}
OUT=${OUT:-$BENCH_DIR/results}
export PB_SMTP=${PB_SMTP:-56125} PB_LMTP=${PB_LMTP:-56124} PB_IMAP=${PB_IMAP:-56143} PB_IMAPS=0
export PB_FTS=xapian PB_FTS_XAPIAN=${FTS_XAPIAN:-"partial=3 full=20 verbose=0"}
export PB_PASS=bench-pw   # ftsbench's user and password
USER20=user20@example.test

die() { echo "ftsxapian.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (Dovecot needs it)"
mkdir -p "$BENCH_DIR" "$OUT" || die "cannot create $BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd); OUT=$(cd "$OUT" && pwd)
BIN=$BENCH_DIR/bin REF=$BENCH_DIR/ref
DC=$REF/dovecot
"$PD" install || die "installing postfix/dovecot/dovecot-fts-xapian failed"
[ -x /usr/bin/time ] || apt-get install -y -q time >&2 || die "installing time failed"

cleanup() {
  "$PD" stop "$REF" >/dev/null 2>&1
  [ "${KEEP_DATA:-0}" = 1 ] || rm -rf "$REF" "$BENCH_DIR"/petrel-*
}
trap 'cleanup; exit 130' INT TERM
trap cleanup EXIT

mkdir -p "$BIN"
log "building ftsbench from $REPO"
(cd "$REPO" && go build -o "$BIN/ftsbench" ./bench/ftsbench) || die "go build failed"
FB=$BIN/ftsbench
{
  echo "date: $(date -u +%FT%TZ)"
  echo "cpus: $(nproc) ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'))"
  echo "memory: $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "dovecot: $(/usr/sbin/dovecot --version)"
  echo "dovecot-fts-xapian: $(dpkg-query -W -f '${Version}' dovecot-fts-xapian 2>/dev/null)"
  echo "libxapian: $(dpkg-query -W -f '${Package} ${Version}\n' 'libxapian30' 2>/dev/null)"
  echo "petrel: $(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null) ($(cd "$REPO" && git status --porcelain --untracked-files=no | grep -q . && echo modified || echo clean)) from $REPO"
  echo "fts_xapian = $PB_FTS_XAPIAN"
  echo "settings: SIZES=\"$SIZES\" SIDES=\"$SIDES\" MSG_SIZE=$MSG_SIZE REPS=$REPS INDEX_TIMEOUT=$INDEX_TIMEOUT"
  echo "uptime at start: $(uptime)"
} | tee "$OUT/env.txt" >&2

up() { echo "uptime: $(uptime)"; }

petrel_side() {  # SIZE
  local size=$1 d=$BENCH_DIR/petrel-$1 f=$OUT/petrel-$1.txt
  rm -rf "$d"; mkdir -p "$d"
  log "petrel $size: fill, index, searches (warm, same process)"
  { up; "$FB" -n "$size" -size "$MSG_SIZE" -dir "$d" -scan=false -reps "$REPS"; up; } >"$f" 2>&1 \
    || { cat "$f" >&2; die "ftsbench failed"; }
  log "petrel $size: searches again from a new process (cold Petrel)"
  { echo; echo "second run, new process on the same directory:"; up
    "$FB" -n "$size" -size "$MSG_SIZE" -dir "$d" -scan=false -reps "$REPS"; up; } >>"$f" 2>&1 \
    || { cat "$f" >&2; die "ftsbench (second run) failed"; }
  echo "data directory: $(du -sk "$d" | cut -f1) KiB (main.db $(du -k "$d/main.db" | cut -f1) KiB)" >>"$f"
  grep -E '^(index|size|  index|uptime)' "$f" >&2
  rm -rf "$d"
}

dovecot_side() {  # SIZE
  local size=$1 f=$OUT/dovecot-$1.txt home=$REF/mail/$USER20 master
  "$PD" stop "$REF" >/dev/null 2>&1; rm -rf "$REF"
  "$PD" config "$REF" >/dev/null || die "writing the dovecot config failed"
  cp "$DC/dovecot.conf" "$OUT/dovecot.conf"
  : >"$f"
  log "dovecot $size: writing the Maildir"
  "$FB" -n "$size" -size "$MSG_SIZE" -maildir "$home" >>"$f" || die "maildir write failed"
  chown -R "${PB_VMAIL:-benchmail}:" "$home"
  "$PD" start "$REF" >"$REF.start.log" 2>&1 || { cat "$REF.start.log" >&2; die "dovecot did not start"; }
  local DA=(/usr/bin/doveadm -c "$DC/dovecot.conf")
  log "dovecot $size: building Dovecot's own index (untimed)"
  "${DA[@]}" mailbox status -u $USER20 "messages uidnext" INBOX >>"$f" || die "doveadm mailbox status failed"
  log "dovecot $size: doveadm index (timed, at most $INDEX_TIMEOUT s)"
  up >>"$f"
  local rc=0
  /usr/bin/time -f "doveadm index: wall %e s, user %U s, sys %S s, max RSS %M KiB" -a -o "$f" \
    timeout "$INDEX_TIMEOUT" "${DA[@]}" index -u $USER20 INBOX >>"$f" 2>&1 || rc=$?
  up >>"$f"
  [ "$rc" = 0 ] || echo "doveadm index: exit $rc (124: stopped after $INDEX_TIMEOUT s)" >>"$f"
  echo "xapian-indexes: $(du -sk "$home/xapian-indexes" 2>/dev/null | cut -f1) KiB ($(ls "$home/xapian-indexes" 2>/dev/null | tr '\n' ' '))" >>"$f"
  echo "dovecot's own index files: $(du -ck "$home"/dovecot* 2>/dev/null | tail -1 | cut -f1) KiB" >>"$f"
  echo "maildir cur/: $(du -sk "$home/cur" | cut -f1) KiB on disk" >>"$f"
  log "dovecot $size: restart, then the searches over IMAP"
  "$PD" stop "$REF" >/dev/null 2>&1
  "$PD" start "$REF" >"$REF.start.log" 2>&1 || { cat "$REF.start.log" >&2; die "dovecot did not restart"; }
  for _ in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/$PB_IMAP) 2>/dev/null && break; sleep 0.1; done
  master=$(tr -d ' \n' <"$DC/run/master.pid")
  { up; "$FB" -addr 127.0.0.1:$PB_IMAP -cpupid "$master" -reps "$REPS"; up; } >>"$f" 2>&1 || { cat "$f" >&2; die "searches failed"; }
  grep -E 'fts|xapian|rror' "$DC/dovecot.log" | tail -20 >"$OUT/dovecot-$size.log"
  grep -vE '^ *$' "$f" >&2
  "$PD" stop "$REF" >/dev/null 2>&1
  [ "${KEEP_DATA:-0}" = 1 ] || rm -rf "$REF"
}

for size in $SIZES; do
  for side in $SIDES; do
    case $side in
    petrel) petrel_side "$size" ;;
    dovecot) dovecot_side "$size" ;;
    *) die "unknown side $side" ;;
    esac
  done
done
log "done: $OUT"
