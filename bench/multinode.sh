#!/bin/bash
# multinode.sh — several `petrel serve` nodes on one PostgreSQL (issue 16): inbound delivery and
# IMAP throughput with 1, 2 and 3 nodes, and one node on SQLite for comparison.
#
# Usage (needs smtp-source, from Debian's postfix package; PostgreSQL 15's binaries):
#   bench/multinode.sh
#   NODES="1 3" MESSAGES=2000 bench/multinode.sh      # a quicker run
#
# Per setup (sqlite, then pg with each node count of $NODES): a fresh store (SQLite DATA_DIR, or
# a fresh schema in one throwaway PostgreSQL started here), user1..user3@example.test, the nodes
# started with their own DATA_DIR and ports. Then:
#   inbound-one    3 smtp-source processes of $SESSIONS/3 sessions, $MESSAGES/3 messages of
#                  $SIZE bytes each, all to user1, spread over the nodes (process k to node k%N);
#                  msgs/s from the first connection until the store holds every message
#   inbound-three  the same, process k to user(k+1): three mailboxes
#   imap-append    one `imapload -mode append` per node, $IMAP_CONNS connections in all, APPEND
#                  of $IMAP_APPENDS messages in all into user2's INBOX; summed APPEND/s
#   imap-logins    one `imapload -mode logins` per node for $LOGIN_SECS s, $IMAP_CONNS in all;
#                  summed logins/s (TLS handshake, LOGIN with the credential cache, LOGOUT)
# with the CPU of the nodes and of PostgreSQL per message, and the load average. With PROFILE=1,
# node 1 runs bench/petrelprof (serve with a CPU profile switch) and is profiled during
# inbound-one on PostgreSQL with the largest node count ($OUT/cpu-*.txt), while PostgreSQL's
# wait events are sampled from pg_stat_activity ($OUT/pg-waits-*.txt).
#
# Settings: NODES="1 2 3" SESSIONS=12 MESSAGES=3000 SIZE=4096 IMAP_CONNS=6 IMAP_APPENDS=1500
#   LOGIN_SECS=8 DNS_STUB=127.0.0.1:10063 BENCH_DIR=/var/tmp/petrel-bench-multinode OUT=$BENCH_DIR/results PG_PORT=55520
#   SMTP_SOURCE=/usr/sbin/smtp-source PROFILE=0
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib/common.sh"
REPO=$(cd "$HERE/.." && pwd)

NODES=${NODES:-"1 2 3"}
SESSIONS=${SESSIONS:-12}
MESSAGES=${MESSAGES:-3000}
SIZE=${SIZE:-4096}
IMAP_CONNS=${IMAP_CONNS:-6}
IMAP_APPENDS=${IMAP_APPENDS:-1500}
LOGIN_SECS=${LOGIN_SECS:-8}
BENCH_DIR=${BENCH_DIR:-/var/tmp/petrel-bench-multinode}
OUT=${OUT:-$BENCH_DIR/results}
PG_PORT=${PG_PORT:-55520}
SMTP_SOURCE=${SMTP_SOURCE:-/usr/sbin/smtp-source}
PROFILE=${PROFILE:-0}
PASS=Bench-Password

die() { echo "multinode.sh: $*" >&2; exit 1; }
[ -x "$SMTP_SOURCE" ] || die "no $SMTP_SOURCE (apt-get install postfix, then leave it stopped)"
command -v psql >/dev/null || die "no psql"

mkdir -p "$BENCH_DIR" "$OUT" || die "cannot create $BENCH_DIR"
BIN=$BENCH_DIR/bin
log "building petrel, benchtool and imapload from $REPO"
(cd "$REPO" && go build -o "$BIN/petrel" ./cmd/petrel && go build -o "$BIN/benchtool" ./bench/benchtool \
  && go build -o "$BIN/imapload" ./bench/imapload && go build -o "$BIN/petrelprof" ./bench/petrelprof) \
  || die "build failed"
BT=$BIN/benchtool

DNS_STUB=${DNS_STUB:-127.0.0.1:10063}
start_dns_stub "$DNS_STUB" "$BENCH_DIR/dns.log"

PG_DIR=$BENCH_DIR/pg
PG_DSN=$(PG_PORT=$PG_PORT PG_DIR=$PG_DIR bash "$REPO/internal/store/sqlstore/testdata/pg-start.sh") \
  || die "PostgreSQL did not start"
PG_PID=$(head -1 "$PG_DIR/data/postmaster.pid")
DSN="$PG_DSN&search_path=bench"

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
}
trap 'cleanup; kill "$DNS_PID" 2>/dev/null' EXIT

# node_env I FLAVOR: the env command line of node I (1-based).
node_env() {
  local i=$1 flavor=$2
  local e=(env -i PATH="$PATH" HOME="${HOME:-/root}" DATA_DIR="$BENCH_DIR/node$i" DOMAIN=example.test
    HOSTNAMES="node$i.example.test" SECRET_KEY=bench-secret-key-0123456789abcdef CREDENTIAL_ROUNDS=4
    PORTS=25,993 LISTEN_25=127.0.0.1:$((14600 + i)) LISTEN_993=127.0.0.1:$((14700 + i))
    LOG_LEVEL=${NODE_LOG_LEVEL:-WARNING} FULL_TEXT_SEARCH=off RESOLVER_ADDRESS="$DNS_STUB")
  [ "$flavor" = pg ] && e+=(SQLALCHEMY_DATABASE_URI="$DSN")
  echo "${e[@]}"
}

# count USER FLAVOR: messages in USER's mailboxes.
count() {
  local q="SELECT count(*) FROM message WHERE mailbox_id IN (SELECT id FROM mailbox WHERE user_email = '$1')"
  if [ "$2" = pg ]; then psql -qtA "$DSN" -c "$q"; else sqlite3 -cmd '.timeout 10000' "$BENCH_DIR/node1/main.db" "$q"; fi
}

# setup FLAVOR N: fresh store, users, N nodes started.
setup() {
  local flavor=$1 n=$2 i
  cleanup; PIDS=()
  rm -rf "$BENCH_DIR"/node*
  if [ "$flavor" = pg ]; then
    psql -q "$PG_DSN" -c "DROP SCHEMA IF EXISTS bench CASCADE; CREATE SCHEMA bench" >/dev/null || die "schema"
  fi
  for u in 1 2 3; do
    echo "$PASS" | $(node_env 1 "$flavor") "$BIN/petrel" user "user$u" example.test - >/dev/null || die "user$u"
  done
  for i in $(seq 1 "$n"); do
    mkdir -p "$BENCH_DIR/node$i"
    local bin=$BIN/petrel
    [ "$PROFILE" = 1 ] && [ "$i" = 1 ] && bin=$BIN/petrelprof
    $(node_env "$i" "$flavor") PPROF_OUT="$OUT/cpu-$flavor-$n.pprof" "$bin" serve >>"$BENCH_DIR/node$i.log" 2>&1 &
    PIDS+=($!)
  done
  for i in $(seq 1 "$n"); do
    "$BT" wait220 -t 60s 127.0.0.1:$((14600 + i)) >/dev/null || { tail "$BENCH_DIR/node$i.log" >&2; die "node $i did not start"; }
  done
}

# cpu_all: CPU seconds of every node and of PostgreSQL (its process tree), space-separated.
cpu_all() {
  local pg=0
  [ -n "${FLAVOR:-}" ] && [ "$FLAVOR" = pg ] && pg=$("$BT" cpu "$PG_PID")
  echo "$("$BT" cpu "${PIDS[@]}") $pg"
}

# row SETUP CASE N WORK SECONDS CPU0 CPU1 LOAD
row() {
  awk -v s="$1" -v c="$2" -v n="$3" -v w="$4" -v e="$5" -v a="$6" -v b="$7" -v l="$8" 'BEGIN{
    split(a, x, " "); split(b, y, " ")
    printf "%-10s %-14s %5d %8d %8.2f %10.1f %9.3f %9.3f %6s\n", s, c, n, w, e, w/e, (y[1]-x[1])*1000/w, (y[2]-x[2])*1000/w, l
  }' | tee -a "$OUT/summary.txt"
}

# inbound SETUP FLAVOR N MODE
inbound() {
  local setup=$1 flavor=$2 n=$3 mode=$4 k user node before total t0 t1 c0 c1 l1 pids=() prof=""
  local per=$((MESSAGES / 3)) sess=$((SESSIONS / 3))
  before=0; for u in 1 2 3; do before=$((before + $(count user$u "$flavor"))); done
  l1=$(load1)
  c0=$(cpu_all)
  if [ "$PROFILE" = 1 ] && [ "$mode" = one ] && [ "$n" = "${NODES##* }" ] && [ "$flavor" = pg ]; then
    kill -USR1 "${PIDS[0]}"; prof=1
    (for _ in $(seq 1 40); do psql -qtA "$PG_DSN" -c "SELECT coalesce(wait_event_type,'cpu')||':'||coalesce(wait_event,'-') FROM pg_stat_activity WHERE state='active' AND backend_type='client backend'"; sleep 0.2; done) \
      | sort | uniq -c | sort -rn >"$OUT/pg-waits-$setup.txt" &
  fi
  t0=$(now)
  for k in 0 1 2; do
    if [ "$mode" = one ]; then user=user1; else user=user$((k + 1)); fi
    node=$((k % n + 1))
    "$SMTP_SOURCE" -s "$sess" -m "$per" -l "$SIZE" -f bench@example.org -t "$user@example.test" \
      -M bench-client.example.org 127.0.0.1:$((14600 + node)) >>"$OUT/smtp-source.log" 2>&1 &
    pids+=($!)
  done
  wait "${pids[@]}"
  total=$((per * 3))
  while :; do
    local got=0; for u in 1 2 3; do got=$((got + $(count user$u "$flavor"))); done
    [ $((got - before)) -ge "$total" ] && break
    awk -v a="$(now)" -v b="$t0" 'BEGIN{exit !(a-b>600)}' && { log "WARNING: only $((got - before)) of $total delivered"; total=$((got - before)); break; }
    sleep 0.05
  done
  t1=$(now); c1=$(cpu_all)
  [ -n "$prof" ] && { kill -USR2 "${PIDS[0]}"; sleep 1; }
  row "$setup" "inbound-$mode" "$n" "$total" "$(awk -v a="$t1" -v b="$t0" 'BEGIN{print a-b}')" "$c0" "$c1" "$l1"
}

# imap SETUP N MODE: one imapload per node, the connections split between them; summed rate.
imap() {
  local setup=$1 n=$2 mode=$3 i pids=() c0 c1 l1 per
  per=$((IMAP_CONNS / n)); [ "$per" -ge 1 ] || per=1
  l1=$(load1); c0=$(cpu_all)
  for i in $(seq 1 "$n"); do
    if [ "$mode" = append ]; then
      "$BIN/imapload" -mode append -addr 127.0.0.1:$((14700 + i)) -user user2@example.test -pass "$PASS" \
        -c "$per" -n $((IMAP_APPENDS / n)) -size "$SIZE" >"$OUT/imap-$setup-$i.tsv" 2>>"$OUT/imapload.log" &
    else
      "$BIN/imapload" -mode logins -addr 127.0.0.1:$((14700 + i)) -user user3@example.test -pass "$PASS" \
        -c "$per" -d "${LOGIN_SECS}s" >"$OUT/imap-$setup-$i.tsv" 2>>"$OUT/imapload.log" &
    fi
    pids+=($!)
  done
  wait "${pids[@]}"
  c1=$(cpu_all)
  # columns: mode step conc rep n errors seconds rate ...; work = sum of n, seconds = the longest
  read -r work secs < <(cat "$OUT"/imap-"$setup"-*.tsv | awk -F'\t' '$1!="mode"{n+=$5; if ($7>s) s=$7} END{print n+0, s+0}')
  row "$setup" "imap-$mode" "$n" "$work" "$secs" "$c0" "$c1" "$l1"
  rm -f "$OUT"/imap-"$setup"-*.tsv
}

load1() { cut -d' ' -f1 /proc/loadavg; }

{
  echo "multinode.sh $(date -u '+%F %T UTC'), petrel $(cd "$REPO" && git rev-parse --short HEAD), $(nproc) CPUs"
  echo "SESSIONS=$SESSIONS MESSAGES=$MESSAGES SIZE=$SIZE IMAP_CONNS=$IMAP_CONNS IMAP_APPENDS=$IMAP_APPENDS LOGIN_SECS=$LOGIN_SECS"
  printf '%-10s %-14s %5s %8s %8s %10s %9s %9s %6s\n' setup case nodes work seconds "per s" "node ms" "pg ms" load
} | tee "$OUT/summary.txt"

run_setup() {
  local setup=$1 flavor=$2 n=$3
  FLAVOR=$flavor
  setup "$flavor" "$n"
  inbound "$setup" "$flavor" "$n" one
  inbound "$setup" "$flavor" "$n" three
  imap "$setup" "$n" append
  imap "$setup" "$n" logins
}

run_setup sqlite sqlite 1
for n in $NODES; do run_setup "pg-$n" pg "$n"; done
cleanup; PIDS=()
PG_PORT=$PG_PORT PG_DIR=$PG_DIR bash "$REPO/internal/store/sqlstore/testdata/pg-start.sh" stop >/dev/null 2>&1
if [ "$PROFILE" = 1 ]; then
  for f in "$OUT"/cpu-*.pprof; do
    [ -s "$f" ] && go tool pprof -top -nodecount=30 "$BIN/petrelprof" "$f" >"${f%.pprof}.txt" 2>/dev/null
  done
fi
echo "node ms / pg ms: CPU milliseconds per unit of work (message, APPEND, login) of all nodes / of PostgreSQL" | tee -a "$OUT/summary.txt"
