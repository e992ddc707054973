#!/bin/bash
# imap.sh — IMAP over implicit TLS: Dovecot 2.3 (Mailu's IMAP engine) against Petrel, in the same
# run, with our own load client (bench/imapload); plus resident memory and a CPU profile.
#
# Usage (root; installs postfix, dovecot-imapd, dovecot-lmtpd and sqlite3 when missing):
#   bench/imap.sh                      # RUNS=3 runs of every case, then the profile step
#   RUNS=1 SMALL=1 PROFILE=0 bench/imap.sh          # quick smoke test (about 2 minutes)
# The script takes /var/tmp/petrel-bench.lock (flock) for its whole run, so it never runs at the
# same time as another benchmark that takes the lock; LOCK= (empty) skips that.
#
# What it does:
#   1. builds petrel (CGO_ENABLED=0), imapload, benchtool and petrelprof;
#   2. starts a fresh reference (bench/lib/postfix-dovecot.sh with PB_IMAPS: Dovecot with an
#      implicit-TLS IMAP listener, ssl = yes and a self-signed ECDSA P-256 certificate) and a
#      fresh Petrel (DATA_DIR under $BENCH_DIR, the users it needs created before `petrel serve`,
#      TLS_FLAVOR=cert, so Petrel makes its own self-signed ECDSA P-256 certificate; PORTS=25,993);
#   3. fills user20's INBOX on each with $FILL messages of $MSG_SIZE bytes over IMAP (imapload
#      fill: pipelined LITERAL+ APPENDs), then restarts both servers. Dovecot fills with
#      mail_fsync = never and restarts with its default (optimized): the Maildir and its indexes
#      are the same, only faster to make; Petrel has no such switch and fills with its fsyncs;
#   4. after $IDLE_SETTLE s samples idle memory (sum of VmRSS and of Pss from smaps_rollup over
#      every process of each server: Dovecot's master and all its children; Petrel's one process,
#      which also runs its SMTP listener), then one login per server, timed: Petrel's first login
#      of a user checks the bcrypt hash, later ones hit its credential cache;
#   5. RUNS times, every case against both servers one after the other (which goes first
#      alternates from run to run), memory sampled every 0.25 s and the server's CPU read before
#      and after:
#        logins c1, c10    imapload logins for $LOGIN_SECONDS s: connect, TLS handshake, greeting,
#                          LOGIN, LOGOUT, close (user1); logins/s, p50/p99 of connect..LOGIN OK
#        append c1, c10    imapload append: $APPEND_N APPENDs of $MSG_SIZE bytes to INBOX of a
#                          fresh user per run and case, each waiting for its OK; APPEND/s
#        fetch <step>      imapload fetch on user20's $FILL messages, $FETCH_REPS times per run on
#                          a fresh connection: SELECT; UID FETCH 1:* (UID FLAGS); FETCH 1:*
#                          (ENVELOPE); UID FETCH 1:* (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS
#                          (...)]) as a client's first sync; UID SEARCH UNSEEN; UID SEARCH
#                          SUBJECT; BODY.PEEK[] of $BODIES messages, one command each
# Afterwards the medians over all runs (and fetch repetitions) are printed: case, Dovecot,
# Petrel, ratio (Petrel's speed over Dovecot's: rates divided, times inverted), then memory.
# Raw rows go to $OUT/raw.tsv, the machine and versions to $OUT/env.txt.
#
# Profile step (PROFILE=1): Petrel is restarted on the same data as bench/petrelprof (the same
# app.Run with a CPU profile that SIGUSR1 starts and SIGUSR2 writes) and takes, one at a time,
# the fetch suite, logins c10 and append c10; `go tool pprof -top` of each goes to
# $OUT/pprof-<case>-{top,cum}.txt, the profiles to $OUT/petrel.<case>.pprof.
#
# Fairness (what is and is not the same on both sides):
#   - TLS: both implicit TLS on loopback, ECDSA P-256 self-signed certificates, TLS 1.3 and X25519
#     (imapload -kex x25519 offers only X25519; Go would otherwise pick the post-quantum hybrid
#     on Petrel, which OpenSSL 3.0 does not have). No session resumption: Dovecot runs with
#     Mailu's ssl_options = no_ticket and the client keeps no session cache, so every login is a
#     full handshake on both. Mailu itself terminates TLS in a front Dovecot proxy that asks admin
#     over HTTP for every login and then proxies to the backend Dovecot; here one Dovecot does
#     TLS, auth and IMAP, which is cheaper than Mailu's real path (the ratios favour Dovecot).
#   - Passwords: Dovecot reads a passwd-file with {PLAIN} passwords (a string compare, no hash).
#     Petrel stores Mailu's default, bcrypt_sha256 at CREDENTIAL_ROUNDS=12 (PETREL_ROUNDS), and
#     keeps a credential cache (HMAC-SHA256 of the password) so that only a user's first login
#     pays for bcrypt; that first login is reported on its own, the cases measure cached logins.
#   - Login processes: Dovecot's imap-login runs in high-performance mode (service_count = 0,
#     as Mailu) with process_min_avail = $PB_LOGIN_MIN_AVAIL (Dovecot's advice for that mode: one
#     per core), so TLS can use both cores; each login still starts an imap process (Dovecot's
#     default service_count = 1 for imap).
#   - Durability: Dovecot's mail_fsync = optimized (the default, as Mailu) fsyncs every APPENDed
#     message before OK; Petrel answers an APPEND after its store committed and fsynced it.
#   - Mailbox: Dovecot Maildir with mailbox_list_index = yes and maildir_stat_dirs = yes, as Mailu;
#     no quota, full-text search, sieve or zlib plugins on either side. Dovecot builds its
#     dovecot.index.cache fields on the first fetch of a kind, so the first repetition of the first
#     run is slower for it: "first" rows show those cold figures separately.
#   - Logging: Petrel LOG_LEVEL=WARNING; Dovecot logs a line per login and logout (its default).
#
# imaptest's stress load (CASES=stress IMAPTEST=/path/to/imaptest; docs/imaptest.md says how to
# build it, outside the repository): instead of the cases above, both servers start fresh, user1..
# $STRESS_USERS log in once (Petrel's bcrypt check and credential cache; Dovecot's {PLAIN}), and then,
# RUNS times, imaptest runs in its stress mode (no test=: random LOGIN, LIST, STATUS, SELECT, FETCH,
# COPY, STORE, EXPUNGE, APPEND, LOGOUT, each client as a random one of the users, APPENDs from an
# mbox that imapload -mode mbox writes: $STRESS_MSGS messages of $MSG_SIZE bytes) for $STRESS_SECS s
# with each of $STRESS_CLIENTS clients, against Dovecot and Petrel one after the other (which goes
# first alternates). Reported per client count: every command's average latency (imaptest's own
# timer), commands/s, peak RSS and Pss of the server processes, server CPU, imaptest's error lines.
# Durability as in the other cases: Dovecot's mail_fsync = optimized (PB_MAIL_FSYNC changes it),
# Petrel's SQLite synchronous=FULL. Petrel's login limiter is off for loopback
# (AUTH_RATELIMIT_EXEMPTION) as Dovecot has none. With PROFILE=1, Petrel runs as petrelprof and
# its first run of each client count is CPU-profiled ($OUT/pprof-stress-c<N>-cum.txt); with
# PPROF_BLOCK=1 also where its goroutines wait ($OUT/pprof-stress-c<N>-{block,mutex}-cum.txt).
# imaptest's own CPU time is printed with each case ($OUT/stress-*.time).
# STRESS_PROBE=1 (the default; 0 turns it off) runs bench/imapprobe.py beside each case: one more
# client's LOGIN, SELECT, NOOP, APPEND, STORE, EXPUNGE and LOGOUT timed as the server answers them ($OUT/stress-*.probe), since
# imaptest's own times include its single process's parsing of every client's replies.
# STRESS_PIN=1 gives each side its own core: both servers (Dovecot's master, so all its children,
# and Petrel) run on CPU 1 and imaptest on CPU 0 (taskset), so that imaptest's CPU, which grows
# with the rate it drives, does not come out of the faster server's share. Each server then has
# exactly one core, and Go sizes GOMAXPROCS to it.
# Settings: STRESS_CLIENTS="10 50" STRESS_SECS=30 STRESS_USERS=5 STRESS_MSGS=1000, and STRESS_ARGS:
# more imaptest arguments, its command probabilities among them. STRESS_ARGS=logout=0 keeps each
# session open (imaptest then goes back to LIST after EXPUNGE instead of LOGOUT): by default every
# cycle logs in again, and a server whose logins are slow (Dovecot forks an imap process for each)
# then has most clients waiting in LOGIN and few in the other commands, whose latencies are
# therefore not compared at the same load.
#
# Settings (environment):
#   RUNS=3  SMALL=0 (SMALL=1: FILL=1000 APPEND_N=200 LOGIN_SECONDS=3 FETCH_REPS=1)
#   FILL=10000  MSG_SIZE=4096  LOGIN_SECONDS=10  LOGIN_CONC="1 10"  APPEND_N=500  APPEND_CONC="1 10"
#   FETCH_REPS=3  BODIES=100  IDLE_SETTLE=5  KEX=x25519  PETREL_ROUNDS=12 (CREDENTIAL_ROUNDS)
#   BENCH_DIR=/var/tmp/petrel-bench-imap (a real disk, not tmpfs)  OUT=$BENCH_DIR/results
#   PROFILE=1  PROFILE_CASES="fetch logins append"  KEEP_DATA=1: keep both data directories
#   SUMMARY_ONLY=1: print the summary of $OUT/raw.tsv and stop   LOCK=/var/tmp/petrel-bench.lock
#   PB_SMTP=13525 PB_LMTP=13024 PB_IMAP=13143 PB_IMAPS=13993 PB_LOGIN_MIN_AVAIL=2 (reference)
#   PETREL_SMTP=14025 PETREL_IMAPS=14993   PETREL_LOG_LEVEL=WARNING
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib/common.sh"
REPO=$(cd "$HERE/.." && pwd)
PD=$HERE/lib/postfix-dovecot.sh

LOCK=${LOCK-/var/tmp/petrel-bench.lock}
if [ -n "$LOCK" ] && [ -z "${PETREL_IMAP_LOCKED:-}" ] && [ "${SUMMARY_ONLY:-0}" != 1 ]; then
  echo "[$(date +%T)] waiting for $LOCK" >&2
  exec env PETREL_IMAP_LOCKED=1 flock "$LOCK" "$0" "$@"
fi

RUNS=${RUNS:-3}
SMALL=${SMALL:-0}
if [ "$SMALL" = 1 ]; then d_fill=1000 d_app=200 d_login=3 d_reps=1; else d_fill=10000 d_app=500 d_login=10 d_reps=3; fi
FILL=${FILL:-$d_fill}
MSG_SIZE=${MSG_SIZE:-4096}
LOGIN_SECONDS=${LOGIN_SECONDS:-$d_login}
LOGIN_CONC=${LOGIN_CONC:-"1 10"}
APPEND_N=${APPEND_N:-$d_app}
APPEND_CONC=${APPEND_CONC:-"1 10"}
FETCH_REPS=${FETCH_REPS:-$d_reps}
BODIES=${BODIES:-100}
IDLE_SETTLE=${IDLE_SETTLE:-5}
KEX=${KEX:-x25519}
PETREL_ROUNDS=${PETREL_ROUNDS:-12}
BENCH_DIR=${BENCH_DIR:-/var/tmp/petrel-bench-imap}
OUT=${OUT:-$BENCH_DIR/results}
PROFILE=${PROFILE:-1}
PROFILE_CASES=${PROFILE_CASES:-"fetch logins append"}
PETREL_LOG_LEVEL=${PETREL_LOG_LEVEL:-WARNING}
CASES=${CASES:-default}
IMAPTEST=${IMAPTEST:-}
STRESS_CLIENTS=${STRESS_CLIENTS:-"10 50"}
STRESS_SECS=${STRESS_SECS:-30}
STRESS_MSGS=${STRESS_MSGS:-1000}
STRESS_USERS=${STRESS_USERS:-5}
STRESS_ARGS=${STRESS_ARGS:-}
STRESS_PROBE=${STRESS_PROBE:-1}
STRESS_PIN=${STRESS_PIN:-0}
SERVER_PIN=() CLIENT_PIN=()
if [ "$STRESS_PIN" = 1 ]; then SERVER_PIN=(taskset -c 1) CLIENT_PIN=(taskset -c 0); fi
export PB_SMTP=${PB_SMTP:-13525} PB_LMTP=${PB_LMTP:-13024} PB_IMAP=${PB_IMAP:-13143} PB_IMAPS=${PB_IMAPS:-13993}
export PB_LOGIN_MIN_AVAIL=${PB_LOGIN_MIN_AVAIL:-2}
PETREL_SMTP=${PETREL_SMTP:-14025}
PETREL_IMAPS=${PETREL_IMAPS:-14993}
PASS=bench-imap-password
export PB_PASS=$PASS
FETCH_USER=user20@example.test

die() { echo "imap.sh: $*" >&2; exit 1; }
load1() { cut -d' ' -f1 /proc/loadavg; }

n_app=$(wc -w <<<"$APPEND_CONC")
[ $((1 + RUNS * n_app)) -le 19 ] || die "RUNS x APPEND_CONC needs more than users 2..19"

mkdir -p "$BENCH_DIR" || die "cannot create $BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
OUT=$(mkdir -p "$OUT" && cd "$OUT" && pwd)
BIN=$BENCH_DIR/bin
REF=$BENCH_DIR/ref
PET=$BENCH_DIR/petrel

# ---------------------------------------------------------------- summary (medians)
# raw.tsv: run server case load1 mode step conc rep n errors seconds rate p50_ms p99_ms bytes
#          client_cpu_s server_cpu_s peak_rss_mib peak_pss_mib max_procs
# col SERVER CASE FIELD [FIRST]: values over all runs and reps; FIRST=1: run 1 rep 1 only,
# FIRST=2: every row but that one.
col() { awk -F'\t' -v s="$1" -v c="$2" -v k="$3" -v f="${4:-0}" 'NR>1 && $2==s && $3==c && (f==0 || (f==1) == ($1==1 && $8==1)) {print $k}' "$OUT/raw.tsv"; }
fails() { awk -F'\t' -v s="$1" -v c="$2" 'NR>1 && $2==s && $3==c && $10>0 {n++} END{print n+0}' "$OUT/raw.tsv"; }
summary() {
  local runs c r p label
  runs=$(awk -F'\t' 'NR>1 && $1>n {n=$1} END{print n+0}' "$OUT/raw.tsv")
  echo
  echo "IMAP over implicit TLS, imapload (median of $runs runs$( [ "$FETCH_REPS" -gt 1 ] && echo "; fetch: of every repetition but the very first"))"
  printf '%-34s %12s %12s %9s %20s\n' case dovecot petrel petrel/ "p50 / p99 ms"
  printf '%-34s %12s %12s %9s %20s\n' "" "" "" dovecot "dovecot | petrel"
  while IFS= read -r c; do
    r=$(col ref "$c" 12 | median); p=$(col petrel "$c" 12 | median)
    case $c in logins*) label="$c (logins/s)";; *) label="$c (APPEND/s)";; esac
    printf '%-34s %12.1f %12.1f %8.2fx %9s | %-9s%s\n' "$label" "$r" "$p" "$(div "$p" "$r")" \
      "$(col ref "$c" 13 | median)/$(col ref "$c" 14 | median)" "$(col petrel "$c" 13 | median)/$(col petrel "$c" 14 | median)" \
      "$( { [ "$(fails ref "$c")" -gt 0 ] || [ "$(fails petrel "$c")" -gt 0 ]; } && echo "  errors: ref $(fails ref "$c") petrel $(fails petrel "$c") rows")"
  done < <(awk -F'\t' 'NR>1 && $5!="fetch" {print $3}' "$OUT/raw.tsv" | awk '!s[$0]++')
  local f=2; [ "$FETCH_REPS" -gt 1 ] || f=0
  while IFS= read -r c; do
    r=$(col ref "$c" 11 $f | median); p=$(col petrel "$c" 11 $f | median)
    printf '%-34s %12.1f %12.1f %8.2fx\n' "$c on $FILL msgs (ms)" "$(awk -v v="$r" 'BEGIN{print v*1000}')" "$(awk -v v="$p" 'BEGIN{print v*1000}')" "$(div "$r" "$p")"
  done < <(awk -F'\t' 'NR>1 && $5=="fetch" {print $3}' "$OUT/raw.tsv" | awk '!s[$0]++')
  for c in "fetch select" "fetch envelope" "fetch headers" "fetch search_subject"; do
    r=$(col ref "$c" 11 1 | median); p=$(col petrel "$c" 11 1 | median)
    [ "$r" = - ] && continue
    printf '%-34s %12.1f %12.1f %8.2fx\n' "$c, first ever (ms)" "$(awk -v v="$r" 'BEGIN{print v*1000}')" "$(awk -v v="$p" 'BEGIN{print v*1000}')" "$(div "$r" "$p")"
  done
  echo "fetch times are of one command over the whole mailbox (bodies: all $BODIES commands); ratio > 1: Petrel faster."
  echo
  sm() { awk -F'\t' -v s="$1" -v k="$2" 'NR>1 && $1==s {print $k}' "$OUT/startmem.tsv" | median; }
  pk() { awk -F'\t' -v s="$1" -v k="$2" 'NR>1 && $2==s {print $k}' "$OUT/raw.tsv" | sort -g | tail -1; }
  echo "Memory, summed over every process of each server (MiB; dovecot: master and all children)"
  printf '%-36s %12s %12s %9s\n' "" dovecot petrel ratio
  printf '%-36s %12.1f %12.1f %8.2fx\n' "idle Pss ($FILL-message mailbox)" "$(sm ref 4)" "$(sm petrel 4)" "$(div "$(sm petrel 4)" "$(sm ref 4)")"
  printf '%-36s %12.1f %12.1f %8.2fx\n' "idle RSS" "$(sm ref 3)" "$(sm petrel 3)" "$(div "$(sm petrel 3)" "$(sm ref 3)")"
  printf '%-36s %12s %12s\n' "idle processes" "$(sm ref 5)" "$(sm petrel 5)"
  printf '%-36s %12.1f %12.1f %8.2fx\n' "peak Pss over all cases" "$(pk ref 19)" "$(pk petrel 19)" "$(div "$(pk petrel 19)" "$(pk ref 19)")"
  printf '%-36s %12.1f %12.1f %8.2fx\n' "peak RSS over all cases" "$(pk ref 18)" "$(pk petrel 18)" "$(div "$(pk petrel 18)" "$(pk ref 18)")"
  printf '%-36s %12s %12s\n' "peak processes" "$(pk ref 20)" "$(pk petrel 20)"
  echo
  echo "First login of a user (ms; Petrel: bcrypt cost $PETREL_ROUNDS, then cached): dovecot $(sm ref 6), petrel $(sm petrel 6)"
  echo "Fill of $FILL messages (APPEND/s, pipelined; dovecot with mail_fsync=never): dovecot $(sm ref 7), petrel $(sm petrel 7)"
  echo "Server CPU per operation (ms, median): $(for c in "logins c10" "append c10"; do printf '%s: dovecot %.2f petrel %.2f; ' "$c" \
    "$(awk -F'\t' -v c="$c" 'NR>1 && $2=="ref" && $3==c && $9>0 {print 1000*$17/$9}' "$OUT/raw.tsv" | median)" \
    "$(awk -F'\t' -v c="$c" 'NR>1 && $2=="petrel" && $3==c && $9>0 {print 1000*$17/$9}' "$OUT/raw.tsv" | median)"; done)"
  echo "load average (1 min) during the cases: $(awk -F'\t' 'NR>1 {print $4}' "$OUT/raw.tsv" | sort -g | awk '{a[NR]=$1} END{if (NR) printf "%s-%s, median %s", a[1], a[NR], a[int((NR+1)/2)]}')"
  echo "raw rows: $OUT/raw.tsv $OUT/startmem.tsv   machine: $OUT/env.txt"
  ls "$OUT"/pprof-*-top.txt >/dev/null 2>&1 && echo "profiles: $(ls "$OUT"/pprof-*-top.txt | tr '\n' ' ')"
  return 0
}

stress_summary() {
  local runs c
  runs=$(awk -F'\t' 'NR>1 && $1>n {n=$1} END{print n+0}' "$OUT/stress.tsv")
  echo
  echo "imaptest stress ($STRESS_SECS s per case, median of $runs runs; average ms per command, lower is better)"
  for c in $STRESS_CLIENTS; do
    sc() { awk -F'\t' -v s="$1" -v c="$c" -v k="$2" -v col="$3" 'NR>1 && $2==s && $3==c && $5==k {print $col}' "$OUT/stress.tsv" | median; }
    echo
    echo "clients=$c   load (1 min) $(awk -F'\t' -v c="$c" 'NR>1 && $3==c && $5=="TOTAL" {print $4}' "$OUT/stress.tsv" | sort -g | awk '{a[NR]=$1} END{printf "%s-%s", a[1], a[NR]}')"
    printf '%-8s %10s %10s %12s %12s %9s\n' command "dovecot n" "petrel n" "dovecot ms" "petrel ms" "p/d ms"
    while IFS= read -r k; do
      printf '%-8s %10s %10s %12.2f %12.2f %8.2fx\n' "$k" "$(sc ref "$k" 6)" "$(sc petrel "$k" 6)" "$(sc ref "$k" 9)" "$(sc petrel "$k" 9)" "$(div "$(sc petrel "$k" 9)" "$(sc ref "$k" 9)")"
    done < <(awk -F'\t' -v c="$c" 'NR>1 && $3==c && $5!="TOTAL" {print $5}' "$OUT/stress.tsv" | awk '!s[$0]++')
    printf '%-28s %12.1f %12.1f %8.2fx\n' "throughput (commands/s)" "$(sc ref TOTAL 9)" "$(sc petrel TOTAL 9)" "$(div "$(sc petrel TOTAL 9)" "$(sc ref TOTAL 9)")"
    printf '%-28s %12.1f %12.1f %8.2fx\n' "peak RSS (MiB)" "$(sc ref TOTAL 10)" "$(sc petrel TOTAL 10)" "$(div "$(sc petrel TOTAL 10)" "$(sc ref TOTAL 10)")"
    printf '%-28s %12.1f %12.1f %8.2fx\n' "peak Pss (MiB)" "$(sc ref TOTAL 11)" "$(sc petrel TOTAL 11)" "$(div "$(sc petrel TOTAL 11)" "$(sc ref TOTAL 11)")"
    printf '%-28s %12.1f %12.1f\n' "server CPU (s)" "$(sc ref TOTAL 12)" "$(sc petrel TOTAL 12)"
    printf '%-28s %12s %12s\n' "imaptest errors" "$(sc ref TOTAL 13)" "$(sc petrel TOTAL 13)"
    # Little's law: commands in flight = sum of count x average latency / time. A server whose
    # LOGIN is slow has most clients waiting there, so its other commands run at a lower
    # concurrency; compare latencies with this in view (the run of the median throughput; of
    # an even number of runs, the lower of the two middle ones).
    medrun() { awk -F'\t' -v s="$1" -v c="$c" 'NR>1 && $2==s && $3==c && $5=="TOTAL" {print $9 "\t" $1}' "$OUT/stress.tsv" \
      | sort -g | awk -F'\t' '{r[NR]=$2} END{print r[int((NR+1)/2)]}'; }
    inflight() { awk -F'\t' -v s="$1" -v c="$c" -v r="$(medrun "$1")" -v secs="$STRESS_SECS" -v login="$2" \
      'NR>1 && $1==r && $2==s && $3==c && $5!="TOTAL" && (($5=="LOGIN") == (login==1)) {t+=$7*$9} END{printf "%.1f", t/(secs*1000)}' "$OUT/stress.tsv"; }
    printf '%-28s %12s %12s\n' "in flight: LOGIN" "$(inflight ref 1)" "$(inflight petrel 1)"
    printf '%-28s %12s %12s\n' "in flight: other commands" "$(inflight ref 0)" "$(inflight petrel 0)"
    # bench/imapprobe.py's one extra client, run 1: p50 / p90 ms as the server answered it
    if [ -s "$OUT/stress-ref-c$c-r1.probe" ] && [ -s "$OUT/stress-petrel-c$c-r1.probe" ]; then
      for k in LOGIN SELECT NOOP APPEND STORE EXPUNGE LOGOUT; do
        pr() { awk -F'\t' -v k="$k" '$1==k {printf "%.2f / %.2f", $3, $4}' "$OUT/stress-$1-c$c-r1.probe"; }
        printf '%-28s %12s %12s\n' "probe $k p50/p90 ms" "$(pr ref)" "$(pr petrel)"
      done
    fi
  done
  echo
  echo "raw rows: $OUT/stress.tsv; imaptest's output: $OUT/stress-*.{out,log}   machine: $OUT/env.txt"
}

if [ "${SUMMARY_ONLY:-0}" = 1 ] && [ "$CASES" = stress ]; then
  [ -f "$OUT/stress.tsv" ] || die "SUMMARY_ONLY=1: no $OUT/stress.tsv"
  stress_summary; exit 0
fi
if [ "${SUMMARY_ONLY:-0}" = 1 ]; then
  [ -f "$OUT/raw.tsv" ] || die "SUMMARY_ONLY=1: no $OUT/raw.tsv"
  summary; exit 0
fi

[ "$(id -u)" = 0 ] || die "must run as root (Postfix and Dovecot need it)"
command -v go >/dev/null || die "go not found in PATH"
"$PD" install || die "installing postfix/dovecot/sqlite3 failed"
fstype=$(findmnt -n -o FSTYPE --target "$BENCH_DIR" 2>/dev/null || stat -f -c %T "$BENCH_DIR")
case $fstype in tmpfs|ramfs) die "$BENCH_DIR is on $fstype; fsync would cost nothing there (set BENCH_DIR)";; esac
mkdir -p "$BIN"

# ---------------------------------------------------------------- cleanup: only what we started
PETREL_PID=""
SAMPLER_PID=""
cleanup() {
  [ -n "$SAMPLER_PID" ] && kill -TERM "$SAMPLER_PID" 2>/dev/null
  stop_petrel
  "$PD" stop "$REF" >/dev/null 2>&1
  [ "${KEEP_DATA:-0}" = 1 ] || rm -rf "$REF" "$PET"
}
trap 'cleanup; exit 130' INT TERM
trap cleanup EXIT

# ---------------------------------------------------------------- build
log "building petrel (CGO_ENABLED=0), imapload, benchtool and petrelprof from $REPO"
(cd "$REPO" && CGO_ENABLED=0 go build -o "$BIN/petrel" ./cmd/petrel && go build -o "$BIN/imapload" ./bench/imapload \
  && go build -o "$BIN/benchtool" ./bench/benchtool && CGO_ENABLED=0 go build -o "$BIN/petrelprof" ./bench/petrelprof) \
  || die "go build failed"
BT=$BIN/benchtool
IL=$BIN/imapload

{
  echo "date: $(date -u +%FT%TZ)"
  echo "kernel: $(uname -r)"
  echo "cpus: $(nproc) ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'))"
  echo "memory: $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "bench dir: $BENCH_DIR on $(df -P "$BENCH_DIR" | awk 'NR==2{print $1}') ($fstype $(findmnt -n -o OPTIONS --target "$BENCH_DIR" 2>/dev/null))"
  echo "go: $(go version | cut -d' ' -f3-)"
  echo "dovecot: $(/usr/sbin/dovecot --version) (deb $(dpkg-query -W -f='${Version}' dovecot-core)), $(openssl version)"
  echo "petrel: $(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null)$(cd "$REPO" && git diff --quiet HEAD -- . 2>/dev/null || echo ' (+ uncommitted changes)')"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "settings: RUNS=$RUNS FILL=$FILL MSG_SIZE=$MSG_SIZE LOGIN_SECONDS=$LOGIN_SECONDS LOGIN_CONC=\"$LOGIN_CONC\" APPEND_N=$APPEND_N APPEND_CONC=\"$APPEND_CONC\" FETCH_REPS=$FETCH_REPS BODIES=$BODIES KEX=$KEX PETREL_ROUNDS=$PETREL_ROUNDS PB_LOGIN_MIN_AVAIL=$PB_LOGIN_MIN_AVAIL STRESS_CLIENTS=\"$STRESS_CLIENTS\" STRESS_SECS=$STRESS_SECS STRESS_ARGS=\"$STRESS_ARGS\" STRESS_PETREL_ENV=\"${STRESS_PETREL_ENV:-}\" STRESS_PROBE=$STRESS_PROBE STRESS_PIN=$STRESS_PIN"
} | tee "$OUT/env.txt" >&2

# ---------------------------------------------------------------- servers
PETREL_ENV=(env -i PATH="$PATH" HOME="${HOME:-/root}" DATA_DIR="$PET" DOMAIN=example.test
  HOSTNAMES=mail.example.test SECRET_KEY=bench-secret-key-0123456789abcdef TLS_FLAVOR=cert PORTS=25,993 TLS=993
  LISTEN_25=127.0.0.1:$PETREL_SMTP LISTEN_993=127.0.0.1:$PETREL_IMAPS CREDENTIAL_ROUNDS=$PETREL_ROUNDS
  LOG_LEVEL=$PETREL_LOG_LEVEL)

# the users the cases use: user1 (logins), user2.. (one per run and append case), user20 (fetch)
petrel_users() {
  rm -rf "$PET"; mkdir -p "$PET"
  for i in $(seq 1 $((1 + RUNS * n_app))) 20; do
    echo "$PASS" | "${PETREL_ENV[@]}" "$BIN/petrel" user "user$i" example.test - >/dev/null || die "petrel user user$i failed"
  done
}
start_ref() {
  "$PD" config "$REF" >/dev/null 2>&1 || die "writing the reference config failed"
  "${SERVER_PIN[@]}" "$PD" start "$REF" >"$REF.start.log" 2>&1 || { cat "$REF.start.log" >&2; die "reference did not start"; }
  "$BT" wait220 -t 60s 127.0.0.1:$PB_SMTP >/dev/null || die "postfix did not greet"
  for _ in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/$PB_IMAPS) 2>/dev/null && return 0; sleep 0.1; done
  die "dovecot imaps did not listen on $PB_IMAPS"
}
dovecot_pid() { tr -d ' \n' <"$REF/dovecot/run/master.pid"; }
addr_of() { if [ "$1" = ref ]; then echo 127.0.0.1:$PB_IMAPS; else echo 127.0.0.1:$PETREL_IMAPS; fi; }
root_of() { if [ "$1" = ref ]; then dovecot_pid; else echo "$PETREL_PID"; fi; }

# ---------------------------------------------------------------- one case
# run_case SERVER CASE RUN IMAPLOAD-ARGS...: runs imapload against SERVER and appends its rows
# (prefixed with run, server, case, load) and the server's CPU and peak memory to raw.tsv.
run_case() {
  local srv=$1 cname=$2 run=$3; shift 3
  local root memlog c0 c1 l1 rc tmp
  root=$(root_of "$srv"); memlog=$OUT/.mem; tmp=$OUT/.rows; l1=$(load1)
  "$BT" mem -i 250ms "$root" >"$memlog" & SAMPLER_PID=$!
  c0=$("$BT" cpu "$root")
  "$IL" -addr "$(addr_of "$srv")" -pass "$PASS" -kex "$KEX" "$@" >"$tmp" 2>>"$OUT/imapload.log"; rc=$?
  c1=$("$BT" cpu "$root")
  sleep 0.3; kill -TERM "$SAMPLER_PID" 2>/dev/null; wait "$SAMPLER_PID" 2>/dev/null; SAMPLER_PID=""
  [ $rc = 0 ] || log "WARNING: $srv $cname: imapload exited $rc (see $OUT/imapload.log)"
  awk -v run="$run" -v srv="$srv" -v c="$cname" -v l1="$l1" -v cpu="$(awk -v a="$c0" -v b="$c1" 'BEGIN{print b-a}')" -v memlog="$memlog" '
    BEGIN { while ((getline line < memlog) > 0) { split(line, f, " "); if (f[3] > rss) rss = f[3]; if (f[4] > pss) pss = f[4]; if (f[2] > n) n = f[2] } }
    { cn = c; if ($1 == "fetch") cn = "fetch " $2
      printf "%s\t%s\t%s\t%s\t%s\t%.3f\t%.1f\t%.1f\t%d\n", run, srv, cn, l1, $0, cpu, rss/1024, pss/1024, n }' "$tmp" >>"$OUT/raw.tsv"
  tail -n "$(wc -l <"$tmp")" "$OUT/raw.tsv" | awk -F'\t' '{
    if ($5 == "fetch") printf "  run %s %-6s %-22s %8.1f ms  (%d responses)\n", $1, $2, $3 " rep " $8, $11*1000, $9
    else printf "  run %s %-6s %-22s %8.1f /s  n=%d err=%d p50 %.1f ms p99 %.1f ms  server cpu %.2f ms/op  peak Pss %.0f MiB  load %s\n", $1, $2, $3, $12, $9, $10, $13, $14, ($9 > 0 ? 1000*$17/$9 : 0), $19, $4 }' >&2
  return 0
}

# ---------------------------------------------------------------- CASES=stress: imaptest's stress load
# run_stress SERVER CLIENTS RUN: imaptest in stress mode (no test=) against SERVER for
# $STRESS_SECS s with CLIENTS connections, each logging in as one of user1..user$STRESS_USERS at
# random (Petrel, like Mailu's Dovecot, takes at most 20 sessions of one user from one address;
# the reference here allows 100), on the users' INBOXes (empty before the first case, APPENDs
# drawn from $MBOX; later cases and runs find what the earlier ones left); its per-second output (count, timed count and summed msecs per command) goes to
# $OUT/stress-SERVER-cCLIENTS-rRUN.out, one row per command to stress.tsv.
run_stress() {
  local srv=$1 c=$2 run=$3
  local root memlog c0 c1 l1 port base errs
  root=$(root_of "$srv"); memlog=$OUT/.mem; l1=$(load1)
  port=${PB_IMAPS}; [ "$srv" = petrel ] && port=$PETREL_IMAPS
  base=$OUT/stress-$srv-c$c-r$run
  "$BT" mem -i 250ms "$root" >"$memlog" & SAMPLER_PID=$!
  c0=$("$BT" cpu "$root")
  # imaptest's own CPU (user+sys) goes to $base.time: on a small machine the one-process
  # client can be what limits the rate.
  # STRESS_PROBE=1: bench/imapprobe.py times one more client's LOGIN, SELECT, NOOP, APPEND, STORE, EXPUNGE, LOGOUT beside
  # the load, as the server answers them ($base.probe), apart from imaptest's own timing.
  local probe_pid=""
  if [ "$STRESS_PROBE" = 1 ]; then
    "${CLIENT_PIN[@]}" python3 "$HERE/imapprobe.py" "$port" "user$STRESS_USERS@example.test" "$PASS" "$((STRESS_SECS - 2))" >"$base.probe" 2>&1 & probe_pid=$!
  fi
  LD_LIBRARY_PATH=/usr/lib/dovecot${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} /usr/bin/time -o "$base.time" -f '%U %S' \
    "${CLIENT_PIN[@]}" "$IMAPTEST" host=127.0.0.1 port="$port" ssl=any-cert user="user%d@example.test" users="$STRESS_USERS" pass="$PASS" mbox="$MBOX" \
    clients="$c" secs="$STRESS_SECS" output="$base.out" $STRESS_ARGS >"$base.log" 2>&1 </dev/null
  [ -n "$probe_pid" ] && wait "$probe_pid"
  c1=$("$BT" cpu "$root")
  sleep 0.3; kill -TERM "$SAMPLER_PID" 2>/dev/null; wait "$SAMPLER_PID" 2>/dev/null; SAMPLER_PID=""
  errs=$(grep -c 'Error:' "$base.log")
  awk -F'\t' -v run="$run" -v srv="$srv" -v c="$c" -v l1="$l1" -v secs="$STRESS_SECS" -v errs="$errs" \
      -v cpu="$(awk -v a="$c0" -v b="$c1" 'BEGIN{print b-a}')" -v memlog="$memlog" '
    BEGIN { while ((getline line < memlog) > 0) { split(line, f, " "); if (f[3] > rss) rss = f[3]; if (f[4] > pss) pss = f[4] } }
    NR == 1 { for (i = 1; i <= NF; i += 2) { n = split($i, w, " "); name[(i+1)/2] = w[1]; k = (i+1)/2 }; next }
    # imaptest writes this header before it turns COPY off for want of a copy destination
    # (print_results_header before fix_probabilities), so the header names one command more
    # than each row holds: without this, STORE was read as COPY, DELETE as STORE and so on.
    NR == 2 && k == NF/3 + 1 { for (j = 1; j <= k; j++) if (name[j] == "COPY") { for (; j < k; j++) name[j] = name[j+1]; k--; break } }
    NR == 2 && k != NF/3 { print "stress: imaptest header and rows disagree" > "/dev/stderr"; bad = 1; exit 1 }
    { for (j = 1; j <= k; j++) { cnt[j] += $(3*j-2); tc[j] += $(3*j-1); ms[j] += $(3*j) } }
    END { if (bad) exit 1
          for (j = 1; j <= k; j++) { tot += cnt[j]
            printf "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%.1f\t%.2f\t-\t-\t-\t%d\n", run, srv, c, l1, name[j], cnt[j], tc[j], ms[j], (tc[j] ? ms[j]/tc[j] : 0), errs }
          printf "%s\t%s\t%s\t%s\tTOTAL\t%d\t-\t-\t%.1f\t%.1f\t%.1f\t%.2f\t%d\n", run, srv, c, l1, tot, tot/secs, rss/1024, pss/1024, cpu, errs }' \
    "$base.out" >>"$OUT/stress.tsv"
  tail -n 1 "$OUT/stress.tsv" | awk -F'\t' -v icpu="$(awk '{print $1+$2}' "$base.time" 2>/dev/null)" '{printf "  run %s %-6s c%-3s %8.1f commands/s  peak RSS %.0f MiB Pss %.0f MiB  server cpu %.1f s  imaptest cpu %s s  imaptest errors %d  load %s\n", $1, $2, $3, $9, $10, $11, $12, icpu, $13, $4}' >&2
}


if [ "$CASES" = stress ]; then
  [ -x "$IMAPTEST" ] || die "CASES=stress needs IMAPTEST=/path/to/imaptest (built outside the repository, docs/imaptest.md)"
  MBOX=$OUT/stress.mbox
  "$IL" -mode mbox -dir "$MBOX" -n "$STRESS_MSGS" -size "$MSG_SIZE" -user stress@example.test >/dev/null || die "writing $MBOX failed"
  printf 'run\tserver\tclients\tload1\tcommand\tcount\ttimed\tmsecs\tavg_ms_or_rate\tpeak_rss_mib\tpeak_pss_mib\tserver_cpu_s\timaptest_errors\n' >"$OUT/stress.tsv"
  log "starting a fresh reference (mail_fsync ${PB_MAIL_FSYNC:-optimized}) and Petrel (load $(cut -d' ' -f1-3 /proc/loadavg))"
  "$PD" stop "$REF" >/dev/null 2>&1; rm -rf "$REF" "$PET" "$PET.log"
  start_ref
  rm -rf "$PET"; mkdir -p "$PET"
  [ "$STRESS_USERS" -le 20 ] || die "STRESS_USERS: the reference has users 1..20"
  for i in $(seq 1 "$STRESS_USERS"); do
    echo "$PASS" | "${PETREL_ENV[@]}" "$BIN/petrel" user "user$i" example.test - >/dev/null || die "petrel user user$i failed"
  done
  # Dovecot has no login limiter; Petrel's (AUTH_RATELIMIT_IP) counts logins still being checked,
  # so imaptest's burst of concurrent LOGINs from one address would be refused: loopback is exempt
  # here. Each user logs in once before the load, so that Petrel's bcrypt check (Dovecot: {PLAIN})
  # is not part of it.
  # STRESS_PETREL_ENV: more settings for Petrel in this case (e.g. GOMAXPROCS=8).
  sx=(AUTH_RATELIMIT_EXEMPTION=127.0.0.0/8 ${STRESS_PETREL_ENV:-})
  if [ "$PROFILE" = 1 ]; then start_petrel "$BIN/petrelprof" "${sx[@]}" PPROF_OUT="$OUT/.cpu.pprof" PPROF_BLOCK="${PPROF_BLOCK:-0}" PPROF_HEAP_AFTER="$((STRESS_SECS * 2 / 3))s"; else start_petrel "$BIN/petrel" "${sx[@]}"; fi
  for i in $(seq 1 "$STRESS_USERS"); do
    for srv in ref petrel; do
      "$IL" -mode logins -n 1 -addr "$(addr_of $srv)" -user "user$i@example.test" -pass "$PASS" -kex "$KEX" >/dev/null 2>>"$OUT/imapload.log" \
        || die "warm-up login of user$i on $srv failed"
    done
  done
  sleep "$IDLE_SETTLE"
  for run in $(seq 1 "$RUNS"); do
    log "stress run $run of $RUNS (load $(cut -d' ' -f1-3 /proc/loadavg))"
    if [ $((run % 2)) = 1 ]; then order="ref petrel"; else order="petrel ref"; fi
    for c in $STRESS_CLIENTS; do
      for srv in $order; do
        # the profile covers Petrel's first run of each client count
        [ "$PROFILE" = 1 ] && [ "$srv" = petrel ] && [ "$run" = 1 ] && { rm -f "$OUT/.cpu.pprof"; kill -USR1 "$PETREL_PID"; sleep 0.2; }
        run_stress $srv "$c" "$run"
        if [ "$PROFILE" = 1 ] && [ "$srv" = petrel ] && [ "$run" = 1 ]; then
          kill -USR2 "$PETREL_PID"
          for _ in $(seq 1 50); do [ -s "$OUT/.cpu.pprof" ] && break; sleep 0.1; done
          sleep 0.5; mv "$OUT/.cpu.pprof" "$OUT/petrel.stress-c$c.pprof"
          (cd "$REPO" && go tool pprof -top -cum -nodecount=60 "$BIN/petrelprof" "$OUT/petrel.stress-c$c.pprof") >"$OUT/pprof-stress-c$c-cum.txt" 2>&1
          # PPROF_BLOCK=1: where Petrel's goroutines waited in the same window
          # and its live heap two thirds into the run (PPROF_HEAP_AFTER)
          for kind in block mutex heap; do
            [ -s "$OUT/.cpu.pprof.$kind" ] || continue
            mv "$OUT/.cpu.pprof.$kind" "$OUT/petrel.stress-c$c.$kind.pprof"
            (cd "$REPO" && go tool pprof -top -cum -nodecount=60 "$BIN/petrelprof" "$OUT/petrel.stress-c$c.$kind.pprof") >"$OUT/pprof-stress-c$c-$kind-cum.txt" 2>&1
          done
        fi
      done
    done
  done
  rm -f "$OUT/.mem"
  stress_summary | tee "$OUT/stress-summary.txt"
  exit 0
fi

# ---------------------------------------------------------------- set-up: fill, restart, idle
printf 'run\tserver\tcase\tload1\tmode\tstep\tconc\trep\tn\terrors\tseconds\trate\tp50_ms\tp99_ms\tbytes\tclient_cpu_s\tserver_cpu_s\tpeak_rss_mib\tpeak_pss_mib\tmax_procs\n' >"$OUT/raw.tsv"
printf 'server\tload1\tidle_rss_mib\tidle_pss_mib\tidle_procs\tfirst_login_ms\tfill_per_s\n' >"$OUT/startmem.tsv"
: >"$OUT/imapload.log"

log "starting a fresh reference and Petrel (load $(cut -d' ' -f1-3 /proc/loadavg))"
"$PD" stop "$REF" >/dev/null 2>&1; rm -rf "$REF" "$PET" "$PET.log"
PB_MAIL_FSYNC=never start_ref
petrel_users
start_petrel "$BIN/petrel"
declare -A FILLRATE
for srv in ref petrel; do
  log "filling $FETCH_USER's INBOX on $srv with $FILL messages"
  "$IL" -mode fill -addr "$(addr_of $srv)" -user $FETCH_USER -pass "$PASS" -kex "$KEX" -c 2 -n "$FILL" -size "$MSG_SIZE" \
    >"$OUT/.fill" 2>>"$OUT/imapload.log" || die "fill of $srv failed (see $OUT/imapload.log)"
  FILLRATE[$srv]=$(cut -f8 "$OUT/.fill")
  log "  $(cut -f5,7,8 "$OUT/.fill" | awk -F'\t' '{printf "%d messages in %.1f s = %.0f/s", $1, $2, $3}')"
done
log "restarting both (dovecot with its default mail_fsync)"
"$PD" stop "$REF" >/dev/null 2>&1; start_ref
stop_petrel; start_petrel "$BIN/petrel"
sleep "$IDLE_SETTLE"
for srv in ref petrel; do
  read -r _ n rss pss < <("$BT" mem -n 1 "$(root_of $srv)")
  first=$("$IL" -mode logins -n 1 -addr "$(addr_of $srv)" -user user1@example.test -pass "$PASS" -kex "$KEX" 2>>"$OUT/imapload.log" | cut -f9)
  printf '%s\t%s\t%.1f\t%.1f\t%d\t%s\t%s\n' $srv "$(load1)" "$(div "$rss" 1024)" "$(div "$pss" 1024)" "$n" "$first" "${FILLRATE[$srv]}" >>"$OUT/startmem.tsv"
  log "  $srv: idle Pss $((pss/1024)) MiB RSS $((rss/1024)) MiB in $n processes; first login $first ms"
done

# ---------------------------------------------------------------- runs
for run in $(seq 1 "$RUNS"); do
  log "run $run of $RUNS (load $(cut -d' ' -f1-3 /proc/loadavg))"
  if [ $((run % 2)) = 1 ]; then order="ref petrel"; else order="petrel ref"; fi
  for c in $LOGIN_CONC; do
    for srv in $order; do run_case $srv "logins c$c" $run -mode logins -user user1@example.test -c "$c" -d "${LOGIN_SECONDS}s"; done
  done
  k=0
  for c in $APPEND_CONC; do
    u=user$((2 + (run - 1) * n_app + k))@example.test; k=$((k + 1))
    for srv in $order; do run_case $srv "append c$c" $run -mode append -user "$u" -c "$c" -n "$APPEND_N" -size "$MSG_SIZE"; done
  done
  for srv in $order; do run_case $srv fetch $run -mode fetch -user $FETCH_USER -reps "$FETCH_REPS" -bodies "$BODIES" -expect "$FILL"; done
done

# ---------------------------------------------------------------- profile
if [ "$PROFILE" = 1 ]; then
  stop_petrel
  start_petrel "$BIN/petrelprof" PPROF_OUT="$OUT/.cpu.pprof"
  # a restart empties the credential cache: the profiled users' first (bcrypt) logins go first
  for u in user1 user2 user20; do
    "$IL" -mode logins -n 1 -addr 127.0.0.1:$PETREL_IMAPS -user $u@example.test -pass "$PASS" -kex "$KEX" >/dev/null 2>>"$OUT/imapload.log"
  done
  for pc in $PROFILE_CASES; do
    case $pc in
      fetch)  args=(-mode fetch -user $FETCH_USER -reps "$FETCH_REPS" -bodies "$BODIES" -expect "$FILL") ;;
      logins) args=(-mode logins -user user1@example.test -c 10 -d "${LOGIN_SECONDS}s") ;;
      append) args=(-mode append -user user2@example.test -c 10 -n "$APPEND_N" -size "$MSG_SIZE") ;;
      *) log "unknown profile case $pc"; continue ;;
    esac
    log "profile: petrelprof under $pc (load $(load1))"
    rm -f "$OUT/.cpu.pprof"
    kill -USR1 "$PETREL_PID"; sleep 0.2
    "$IL" -addr 127.0.0.1:$PETREL_IMAPS -pass "$PASS" -kex "$KEX" "${args[@]}" >"$OUT/profile-$pc.tsv" 2>>"$OUT/imapload.log"
    kill -USR2 "$PETREL_PID"
    for _ in $(seq 1 50); do [ -s "$OUT/.cpu.pprof" ] && break; sleep 0.1; done
    sleep 0.5
    mv "$OUT/.cpu.pprof" "$OUT/petrel.$pc.pprof"
    (cd "$REPO" && go tool pprof -top -nodecount=45 "$BIN/petrelprof" "$OUT/petrel.$pc.pprof") >"$OUT/pprof-$pc-top.txt" 2>&1
    (cd "$REPO" && go tool pprof -top -cum -nodecount=60 "$BIN/petrelprof" "$OUT/petrel.$pc.pprof") >"$OUT/pprof-$pc-cum.txt" 2>&1
  done
  stop_petrel
fi
rm -f "$OUT/.mem" "$OUT/.rows" "$OUT/.fill"

summary | tee "$OUT/summary.txt"
