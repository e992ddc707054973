#!/bin/bash
# scaling.sh — how IMAP cost grows with the mailbox: Petrel and Dovecot 2.3 (configured as Mailu
# does, bench/lib/postfix-dovecot.sh) on the same generated mailbox at each size of $SIZES.
#
# Usage (root, as bench/imap.sh):
#   bench/scaling.sh                                  # 10,000 and 100,000 messages
#   SIZES="2000 10000" bench/scaling.sh               # a quick run
#   PETREL_SRC=/path/to/other/tree bench/scaling.sh   # Petrel built from another checkout (before/after)
#   SERVERS=petrel SIZES=100000 bench/scaling.sh      # Petrel only: Dovecot not installed, filled or run
#
# Per size: fresh servers; user20's INBOX filled with the same generated messages: on Petrel over
# IMAP with pipelined LITERAL+ APPENDs (imapload -mode fill), on Dovecot as Maildir files indexed
# by one untimed SELECT (imapload -mode maildir, -mode index: Dovecot's APPEND into a growing
# Maildir slows to some 12/s past 20,000 messages on the test machine); both servers restarted
# (so the first searches are cold), idle memory sampled, then imapload -mode scaling once per
# server: SELECT; UID FETCH 1:* (UID FLAGS); UID SEARCH SUBJECT / FROM / HEADER Message-ID, cold
# then warm; UID STORE 1:* +FLAGS.SILENT (\Flagged); EXPUNGE of $EXP1 and of min($EXP2, size/5)
# messages (\Deleted set first, untimed) and each time a second session's NOOP that receives the
# EXPUNGEs. Memory (RSS, Pss, summed over each server's processes) is sampled every 0.25 s.
# The summary prints every operation's time at each size, the growth factor from the first size
# to the last, and peak memory over idle.
#
# Settings: SIZES="10000 100000" MSG_SIZE=2048 EXP1=1000 EXP2=20000 KEX=x25519
#   SERVERS="ref petrel" BENCH_DIR=/var/tmp/petrel-bench-scaling OUT=$BENCH_DIR/results PETREL_SRC=(this tree)
#   LOCK=/var/tmp/petrel-bench.lock  PB_* and PETREL_* ports as bench/imap.sh  SUMMARY_ONLY=1
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib/common.sh"
REPO=$(cd "$HERE/.." && pwd)
PD=$HERE/lib/postfix-dovecot.sh

LOCK=${LOCK-/var/tmp/petrel-bench.lock}
if [ -n "$LOCK" ] && [ -z "${PETREL_SCALING_LOCKED:-}" ] && [ "${SUMMARY_ONLY:-0}" != 1 ]; then
  echo "[$(date +%T)] waiting for $LOCK" >&2
  exec env PETREL_SCALING_LOCKED=1 flock "$LOCK" "$0" "$@"
fi

SIZES=${SIZES:-"10000 100000"}
SERVERS=${SERVERS:-"ref petrel"}
has_ref() { [[ " $SERVERS " == *" ref "* ]]; }
MSG_SIZE=${MSG_SIZE:-2048}
EXP1=${EXP1:-1000}
EXP2=${EXP2:-20000}
KEX=${KEX:-x25519}
BENCH_DIR=${BENCH_DIR:-/var/tmp/petrel-bench-scaling}
OUT=${OUT:-$BENCH_DIR/results}
PETREL_SRC=${PETREL_SRC:-$REPO}
export PB_SMTP=${PB_SMTP:-13525} PB_LMTP=${PB_LMTP:-13024} PB_IMAP=${PB_IMAP:-13143} PB_IMAPS=${PB_IMAPS:-13993}
export PB_LOGIN_MIN_AVAIL=${PB_LOGIN_MIN_AVAIL:-2}
PETREL_SMTP=${PETREL_SMTP:-14025}
PETREL_IMAPS=${PETREL_IMAPS:-14993}
PASS=bench-scaling-password
export PB_PASS=$PASS
USER20=user20@example.test

die() { echo "scaling.sh: $*" >&2; exit 1; }

mkdir -p "$BENCH_DIR" "$OUT" || die "cannot create $BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd); OUT=$(cd "$OUT" && pwd)
BIN=$BENCH_DIR/bin REF=$BENCH_DIR/ref PET=$BENCH_DIR/petrel

# ---------------------------------------------------------------- summary
# raw.tsv: size server mode step conc rep n errors seconds rate p50 p99 bytes cpu peak_rss peak_pss idle_rss idle_pss
summary() {
  local first last steps
  first=$(awk -F'\t' 'NR>1 {print $1}' "$OUT/raw.tsv" | sort -n | head -1)
  last=$(awk -F'\t' 'NR>1 {print $1}' "$OUT/raw.tsv" | sort -n | tail -1)
  steps=$(awk -F'\t' 'NR>1 {print $4}' "$OUT/raw.tsv" | awk '!s[$0]++')
  v() { awk -F'\t' -v z="$1" -v s="$2" -v st="$3" -v k="$4" 'NR>1 && $1==z && $2==s && $4==st {print $k; exit}' "$OUT/raw.tsv"; }
  echo
  echo "IMAP cost by mailbox size (ms; growth = time at $last / time at $first messages)"
  printf '%-22s %10s %10s %7s   %10s %10s %7s\n' "" "dovecot" "" "" "petrel" "" ""
  printf '%-22s %10s %10s %7s   %10s %10s %7s\n' operation "$first" "$last" growth "$first" "$last" growth
  for st in $steps; do
    local r1 r2 p1 p2
    r1=$(v "$first" ref "$st" 9); r2=$(v "$last" ref "$st" 9); p1=$(v "$first" petrel "$st" 9); p2=$(v "$last" petrel "$st" 9)
    awk -v st="$st" -v r1="${r1:-0}" -v r2="${r2:-0}" -v p1="${p1:-0}" -v p2="${p2:-0}" 'BEGIN{
      printf "%-22s %10.1f %10.1f %6.1fx   %10.1f %10.1f %6.1fx\n", st, r1*1000, r2*1000, (r1>0 ? r2/r1 : 0), p1*1000, p2*1000, (p1>0 ? p2/p1 : 0) }'
  done
  echo
  echo "Memory (MiB, summed RSS over each server's processes): idle and peak during the operations"
  for z in $first $last; do
    for s in ref petrel; do
      awk -F'\t' -v z="$z" -v s="$s" 'NR>1 && $1==z && $2==s {if ($15>p) p=$15; i=$17} END{printf "  %-7s %7d messages: idle %6.1f  peak %6.1f  peak-idle %6.1f\n", s, z, i, p, p-i}' "$OUT/raw.tsv"
    done
  done
  echo "expunge_large is min($EXP2, size/5) messages; other_* is the second session's NOOP receiving the EXPUNGEs."
  echo "raw rows: $OUT/raw.tsv  machine: $OUT/env.txt"
}
if [ "${SUMMARY_ONLY:-0}" = 1 ]; then summary; exit 0; fi

[ "$(id -u)" = 0 ] || die "must run as root (Postfix and Dovecot need it)"
if has_ref; then "$PD" install || die "installing postfix/dovecot failed"; fi
mkdir -p "$BIN"

PETREL_PID="" SAMPLER_PID=""
cleanup() {
  [ -n "$SAMPLER_PID" ] && kill -TERM "$SAMPLER_PID" 2>/dev/null
  stop_petrel
  "$PD" stop "$REF" >/dev/null 2>&1
  [ "${KEEP_DATA:-0}" = 1 ] || rm -rf "$REF" "$PET"
}
trap 'cleanup; exit 130' INT TERM
trap cleanup EXIT

log "building petrel from $PETREL_SRC, imapload and benchtool from $REPO"
(cd "$PETREL_SRC" && CGO_ENABLED=0 go build -o "$BIN/petrel" ./cmd/petrel) || die "go build petrel failed"
(cd "$REPO" && go build -o "$BIN/imapload" ./bench/imapload && go build -o "$BIN/benchtool" ./bench/benchtool) || die "go build failed"
BT=$BIN/benchtool IL=$BIN/imapload
{
  echo "date: $(date -u +%FT%TZ)"
  echo "cpus: $(nproc) ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'))"
  echo "memory: $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  if has_ref; then echo "dovecot: $(/usr/sbin/dovecot --version)"; fi
  echo "petrel: $(cd "$PETREL_SRC" && git rev-parse --short HEAD 2>/dev/null) from $PETREL_SRC"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "settings: SERVERS=\"$SERVERS\" SIZES=\"$SIZES\" MSG_SIZE=$MSG_SIZE EXP1=$EXP1 EXP2=$EXP2"
} | tee "$OUT/env.txt" >&2

PETREL_ENV=(env -i PATH="$PATH" HOME="${HOME:-/root}" DATA_DIR="$PET" DOMAIN=example.test
  HOSTNAMES=mail.example.test SECRET_KEY=bench-secret-key-0123456789abcdef TLS_FLAVOR=cert PORTS=25,993
  LISTEN_25=127.0.0.1:$PETREL_SMTP LISTEN_993=127.0.0.1:$PETREL_IMAPS CREDENTIAL_ROUNDS=4 LOG_LEVEL=WARNING)
start_ref() {
  "$PD" config "$REF" >/dev/null 2>&1 || die "writing the reference config failed"
  "$PD" start "$REF" >"$REF.start.log" 2>&1 || { cat "$REF.start.log" >&2; die "reference did not start"; }
  "$BT" wait220 -t 60s 127.0.0.1:$PB_SMTP >/dev/null || die "postfix did not greet"
  for _ in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/$PB_IMAPS) 2>/dev/null && return 0; sleep 0.1; done
  die "dovecot imaps did not listen on $PB_IMAPS"
}
root_of() { if [ "$1" = ref ]; then tr -d ' \n' <"$REF/dovecot/run/master.pid"; else echo "$PETREL_PID"; fi; }
addr_of() { if [ "$1" = ref ]; then echo 127.0.0.1:$PB_IMAPS; else echo 127.0.0.1:$PETREL_IMAPS; fi; }

printf 'size\tserver\tmode\tstep\tconc\trep\tn\terrors\tseconds\trate\tp50_ms\tp99_ms\tbytes\tclient_cpu_s\tpeak_rss_mib\tpeak_pss_mib\tidle_rss_mib\tidle_pss_mib\n' >"$OUT/raw.tsv"
: >"$OUT/imapload.log"
for size in $SIZES; do
  exp2=$(( EXP2 < size / 5 ? EXP2 : size / 5 ))
  log "size $size: fresh servers (load $(cut -d' ' -f1-3 /proc/loadavg))"
  stop_petrel; "$PD" stop "$REF" >/dev/null 2>&1; rm -rf "$REF" "$PET" "$PET.log"; mkdir -p "$PET"
  echo "$PASS" | "${PETREL_ENV[@]}" "$BIN/petrel" user user20 example.test - >/dev/null || die "petrel user failed"
  has_ref && PB_MAIL_FSYNC=never start_ref
  start_petrel "$BIN/petrel"
  # Dovecot: the same generated messages written as Maildir files, indexed by one untimed SELECT
  # (filling it over IMAP slows to some 12 APPENDs/s past 20,000 messages: hours for 100,000).
  if has_ref; then
    log "  writing $size messages into $USER20's Maildir for dovecot"
    "$IL" -mode maildir -dir "$REF/mail/$USER20" -user $USER20 -n "$size" -size "$MSG_SIZE" >"$OUT/.fill" 2>>"$OUT/imapload.log" \
      || die "maildir fill failed (see $OUT/imapload.log)"
    chown -R "${PB_VMAIL:-benchmail}:" "$REF/mail/$USER20"
    "$IL" -mode index -addr "$(addr_of ref)" -user $USER20 -pass "$PASS" -kex "$KEX" 2>>"$OUT/imapload.log" || die "dovecot index failed"
  fi
  log "  filling $USER20's INBOX on petrel with $size messages over IMAP (pipelined APPEND)"
  "$IL" -mode fill -addr "$(addr_of petrel)" -user $USER20 -pass "$PASS" -kex "$KEX" -c 2 -n "$size" -size "$MSG_SIZE" \
    >"$OUT/.fill" 2>>"$OUT/imapload.log" || die "fill of petrel failed (see $OUT/imapload.log)"
  log "  $(cut -f5,7,8 "$OUT/.fill" | awk -F'\t' '{printf "%d messages in %.1f s = %.0f/s", $1, $2, $3}')"
  # The full-text indexer (FULL_TEXT_SEARCH, on by default) catches up in the background; let it
  # finish so that neither the idle sample nor the timed operations include it.
  for _ in $(seq 1 450); do
    pending=$("${PETREL_ENV[@]}" "$BIN/petrel" index status 2>/dev/null | awk '/^pending:/ {print $2}')
    [ "${pending:-0}" = 0 ] && break
    sleep 2
  done
  log "  full-text index: $("${PETREL_ENV[@]}" "$BIN/petrel" index status 2>/dev/null | awk '/^(indexed|pending):/ {printf "%s %s ", $1, $2}')"
  log "  restarting $SERVERS (cold caches; dovecot with its default mail_fsync)"
  if has_ref; then "$PD" stop "$REF" >/dev/null 2>&1; start_ref; fi
  stop_petrel; start_petrel "$BIN/petrel"
  sleep 3
  for srv in $SERVERS; do
    root=$(root_of $srv)
    read -r _ _ irss ipss < <("$BT" mem -n 1 "$root")
    "$BT" mem -i 250ms "$root" >"$OUT/.mem" & SAMPLER_PID=$!
    "$IL" -mode scaling -addr "$(addr_of $srv)" -user $USER20 -pass "$PASS" -kex "$KEX" -expect "$size" \
      -exp1 "$EXP1" -exp2 "$exp2" >"$OUT/.rows" 2>>"$OUT/imapload.log" || log "WARNING: $srv scaling at $size failed (see $OUT/imapload.log)"
    sleep 0.3; kill -TERM "$SAMPLER_PID" 2>/dev/null; wait "$SAMPLER_PID" 2>/dev/null; SAMPLER_PID=""
    awk -v z="$size" -v s="$srv" -v irss="$irss" -v ipss="$ipss" -v memlog="$OUT/.mem" '
      BEGIN { while ((getline line < memlog) > 0) { split(line, f, " "); if (f[3] > rss) rss = f[3]; if (f[4] > pss) pss = f[4] } }
      { printf "%s\t%s\t%s\t%.1f\t%.1f\t%.1f\t%.1f\n", z, s, $0, rss/1024, pss/1024, irss/1024, ipss/1024 }' "$OUT/.rows" >>"$OUT/raw.tsv"
    awk -F'\t' -v s="$srv" '{printf "    %-7s %-20s %9.1f ms  n=%d\n", s, $2, $7*1000, $5}' "$OUT/.rows" >&2
  done
done
rm -f "$OUT/.mem" "$OUT/.rows" "$OUT/.fill"
summary | tee "$OUT/summary.txt"
