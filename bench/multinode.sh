#!/bin/bash
# multinode.sh — several Petrel nodes on one PostgreSQL (issue 16): inbound SMTP and IMAP
# throughput with 1, 2 and 3 nodes on one throwaway PostgreSQL, and the same single-node figures
# on SQLite for comparison; a CPU profile and PostgreSQL's wait events name the bottleneck.
#
# Usage (root: PostgreSQL runs as the postgres user; smtp-source from the postfix package):
#   bench/multinode.sh                              # MSGS=3000 per point
#   MSGS=600 APPENDS=300 POINTS="pg:1 pg:3" bench/multinode.sh     # quick smoke test
#
# One point (POINTS: sqlite:1 pg:1 pg:2 pg:3) is:
#   1. a fresh database (pg: DROP/CREATE DATABASE on the bench server; sqlite: the node's
#      DATA_DIR) and fresh DATA_DIRs; user1..user$STREAMS (inbound) and imapuser (APPEND) created
#      through node 1's CLI; N `petrel serve` nodes (bench/petrelprof: serve with a CPU profile
#      switch) on distinct loopback ports, each with its own DATA_DIR, all on the same database;
#   2. WARMUP unmeasured messages per stream;
#   3. inbound: STREAMS smtp-source processes at the same time, stream j sending MSGS/STREAMS
#      messages of SIZE bytes over SESSIONS/STREAMS parallel sessions to user<j>, through node
#      ((j-1) mod N)+1 (round-robin over the nodes; the same mailboxes at every node count). The
#      clock stops when the last smtp-source exits (Petrel answers 250 only after the commit);
#      then SELECT of every user's INBOX must report all of them. During this phase node 1 is
#      CPU-profiled (SIGUSR1/SIGUSR2), pg_stat_activity is sampled every 0.1 s (wait events of
#      the active backends), and the CPU seconds of the Petrel nodes and of PostgreSQL's
#      processes are read before and after;
#   4. IMAP APPEND: imapload -mode append, IMAP_C connections in all spread over the nodes,
#      APPENDS messages in all, into imapuser's INBOX (one mailbox, as one user's clients);
#   5. IMAP FETCH: FETCHERS imapload -mode fetch clients at the same time, client f on node
#      ((f-1) mod N)+1 reading user<f>'s INBOX: one full first sync, then BODY.PEEK[] of BODIES
#      messages one command each; the summed bodies/s is reported.
# Prints msgs/s per point, with the load average before each phase; raw rows in $OUT/raw.tsv,
# profiles in $OUT/pprof-*.txt, wait events in $OUT/waits-*.txt.
#
# The machine this was written on has 2 cores: every node, PostgreSQL and the load generators
# share them, so more nodes measure contention, not scale-out.
#
# Settings: POINTS="sqlite:1 pg:1 pg:2 pg:3" MSGS=3000 STREAMS=3 SESSIONS=12 SIZE=4096 WARMUP=100
#   APPENDS=2000 IMAP_C=6 FETCHERS=3 BODIES=300
#   BENCH_DIR=/var/tmp/petrel-bench-multinode OUT=$BENCH_DIR/results
#   PG_PORT=55520 (bench PostgreSQL) SMTP_BASE=55522 (node i: SMTP_BASE+i-1) IMAPS_BASE=55525
#   DNS_STUB=127.0.0.1:55528  SMTP_SOURCE=/usr/sbin/smtp-source  CASE_TIMEOUT=600  KEEP_PG=0
#   PETREL_EXTRA_ENV="K=V ...": more settings for every node (e.g. FULL_TEXT_SEARCH=off)
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib/common.sh"
REPO=$(cd "$HERE/.." && pwd)

POINTS=${POINTS:-"sqlite:1 pg:1 pg:2 pg:3"}
MSGS=${MSGS:-3000}
SESSIONS=${SESSIONS:-12}
SIZE=${SIZE:-4096}
WARMUP=${WARMUP:-100}
STREAMS=${STREAMS:-3}
APPENDS=${APPENDS:-2000}
IMAP_C=${IMAP_C:-6}
FETCHERS=${FETCHERS:-3}
BODIES=${BODIES:-300}
BENCH_DIR=${BENCH_DIR:-/var/tmp/petrel-bench-multinode}
OUT=${OUT:-$BENCH_DIR/results}
PG_PORT=${PG_PORT:-55520}
SMTP_BASE=${SMTP_BASE:-55522}
IMAPS_BASE=${IMAPS_BASE:-55525}
DNS_STUB=${DNS_STUB:-127.0.0.1:55528}
SMTP_SOURCE=${SMTP_SOURCE:-/usr/sbin/smtp-source}
CASE_TIMEOUT=${CASE_TIMEOUT:-600}
PETREL_EXTRA_ENV=${PETREL_EXTRA_ENV:-}
PASS=bench-multinode-pw
SENDER=bench@example.org
HELO=bench-client.example.org

die() { echo "multinode.sh: $*" >&2; exit 1; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

[ "$(id -u)" = 0 ] || die "must run as root (PostgreSQL runs as the postgres user)"
[ -x "$SMTP_SOURCE" ] || die "$SMTP_SOURCE missing (package postfix)"
command -v go >/dev/null || die "go not found in PATH"
mkdir -p "$BENCH_DIR" "$OUT" || die "cannot create $BENCH_DIR"
chmod 755 "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd); OUT=$(cd "$OUT" && pwd)
BIN=$BENCH_DIR/bin PGDIR=$BENCH_DIR/pg
mkdir -p "$BIN"
PSQL=(env PGOPTIONS=--client-min-messages=warning psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -qtA)

PIDS=() DNS_PID="" WAIT_PID=""
stop_nodes() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  PIDS=()
}
cleanup() {
  [ -n "$WAIT_PID" ] && kill -TERM "$WAIT_PID" 2>/dev/null
  stop_nodes
  [ -n "$DNS_PID" ] && kill -TERM "$DNS_PID" 2>/dev/null
  [ "${KEEP_PG:-0}" = 1 ] || PG_PORT=$PG_PORT PG_DIR=$PGDIR bash "$REPO/internal/store/sqlstore/testdata/pg-start.sh" stop >/dev/null 2>&1
}
trap 'cleanup; exit 130' INT TERM
trap cleanup EXIT

log "building petrelprof (petrel serve with a CPU profile switch), imapload and benchtool"
(cd "$REPO" && CGO_ENABLED=0 go build -o "$BIN/petrel" ./cmd/petrel && CGO_ENABLED=0 go build -o "$BIN/petrelprof" ./bench/petrelprof \
  && go build -o "$BIN/imapload" ./bench/imapload && go build -o "$BIN/benchtool" ./bench/benchtool) || die "go build failed"
BT=$BIN/benchtool IL=$BIN/imapload

log "starting PostgreSQL on 127.0.0.1:$PG_PORT in $PGDIR"
PG_PORT=$PG_PORT PG_DIR=$PGDIR bash "$REPO/internal/store/sqlstore/testdata/pg-start.sh" >/dev/null 2>"$OUT/pg-start.log" \
  || { cat "$OUT/pg-start.log" >&2; die "PostgreSQL did not start"; }
PG_PID=$(head -1 "$PGDIR/data/postmaster.pid")
start_dns_stub "$DNS_STUB" "$OUT/dns.log"

{
  echo "date: $(date -u +%FT%TZ)"
  echo "cpus: $(nproc) ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'))"
  echo "memory: $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "postgresql: $("${PSQL[@]}" -c 'SHOW server_version' postgres) (fsync on, defaults otherwise)"
  echo "petrel: $(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null)"
  echo "load average at start: $(loadavg)"
  echo "extra node settings: ${PETREL_EXTRA_ENV:-none}"
  echo "settings: POINTS=\"$POINTS\" MSGS=$MSGS SESSIONS=$SESSIONS SIZE=$SIZE WARMUP=$WARMUP APPENDS=$APPENDS IMAP_C=$IMAP_C FETCHERS=$FETCHERS BODIES=$BODIES"
} | tee "$OUT/env.txt" >&2

# node_env KIND I: the env command line of node I (1-based) for this point.
node_env() {
  local kind=$1 i=$2
  NODE_ENV=(env -i PATH="$PATH" HOME="${HOME:-/root}" DATA_DIR="$BENCH_DIR/node$i" DOMAIN=example.test
    HOSTNAMES="node$i.example.test" SECRET_KEY=bench-secret-key-0123456789abcdef TLS_FLAVOR=cert PORTS=25,993
    LISTEN_25=127.0.0.1:$((SMTP_BASE + i - 1)) LISTEN_993=127.0.0.1:$((IMAPS_BASE + i - 1))
    LISTEN_465=127.0.0.1:0 LISTEN_443=127.0.0.1:0 LISTEN_80=127.0.0.1:0 LISTEN_995=127.0.0.1:0 LISTEN_4190=127.0.0.1:0
    CREDENTIAL_ROUNDS=4 LOG_LEVEL=WARNING RESOLVER_ADDRESS="$DNS_STUB" PPROF_OUT="$OUT/cpu-$kind$N-node$i.pprof")
  # shellcheck disable=SC2206 # word splitting wanted: K=V pairs
  NODE_ENV+=($PETREL_EXTRA_ENV)
  if [ "$kind" = pg ]; then
    NODE_ENV+=(SQLALCHEMY_DATABASE_URI="postgresql://postgres@127.0.0.1:$PG_PORT/petrel_bench?sslmode=disable")
  fi
}
smtp_addr() { echo "127.0.0.1:$((SMTP_BASE + ($1 - 1) % N))"; }
imap_addr() { echo "127.0.0.1:$((IMAPS_BASE + ($1 - 1) % N))"; }
cpu_of() { "$BT" cpu "$@" 2>/dev/null | awk '{print $NF}'; }

printf 'point\tnodes\tphase\tn\tseconds\trate\tload1_before\tpetrel_cpu_s\tpg_cpu_s\tok\n' >"$OUT/raw.tsv"
: >"$OUT/smtp-source.log"; : >"$OUT/imapload.log"
for point in $POINTS; do
  IFS=: read -r KIND N <<<"$point"
  log "== $KIND, $N node(s) (load $(loadavg))"
  stop_nodes
  rm -rf "$BENCH_DIR"/node[0-9]*
  if [ "$KIND" = pg ]; then
    "${PSQL[@]}" -c 'DROP DATABASE IF EXISTS petrel_bench' postgres && "${PSQL[@]}" -c 'CREATE DATABASE petrel_bench' postgres \
      || die "cannot recreate database petrel_bench"
    "${PSQL[@]}" -c 'SELECT pg_stat_reset()' postgres >/dev/null
  fi
  for i in $(seq 1 "$N"); do mkdir -p "$BENCH_DIR/node$i"; done
  node_env "$KIND" 1
  for u in $(seq -f user%g 1 "$STREAMS") imapuser; do
    echo "$PASS" | "${NODE_ENV[@]}" "$BIN/petrel" user "$u" example.test - >/dev/null || die "petrel user $u failed"
  done
  for i in $(seq 1 "$N"); do
    node_env "$KIND" "$i"
    t0=$(now)
    "${NODE_ENV[@]}" "$BIN/petrelprof" >>"$BENCH_DIR/node$i.log" 2>&1 &
    PIDS+=($!)
    ms=$("$BT" wait220 -t 60s -since "$t0" "127.0.0.1:$((SMTP_BASE + i - 1))") || { tail -20 "$BENCH_DIR/node$i.log" >&2; die "node $i did not start"; }
    log "  node $i up in $ms ms"
  done
  if [ "$WARMUP" -gt 0 ]; then
    srcs=()
    for j in $(seq 1 "$STREAMS"); do
      "$SMTP_SOURCE" -s 2 -m "$WARMUP" -l "$SIZE" -f "$SENDER" -t "user$j@example.test" -M "$HELO" "$(smtp_addr "$j")" >>"$OUT/smtp-source.log" 2>&1 &
      srcs+=($!)
    done
    for p in "${srcs[@]}"; do wait "$p"; done
  fi
  expect=$WARMUP

  # ---- inbound SMTP
  per=$((MSGS / STREAMS)); sess=$(( SESSIONS / STREAMS > 0 ? SESSIONS / STREAMS : 1 ))
  l1=$(cut -d' ' -f1 /proc/loadavg)
  pc0=$(cpu_of "${PIDS[@]}"); gc0=$( [ "$KIND" = pg ] && cpu_of "$PG_PID" || echo 0)
  if [ "$KIND" = pg ]; then
    # One session sampling every 0.1 s ("sample" counts the samples).
    "${PSQL[@]}" postgres >"$OUT/.waits" 2>/dev/null < <(printf '%s\n' "SELECT 'sample' UNION ALL SELECT coalesce(wait_event_type,'CPU') || ':' ||
      coalesce(wait_event,'running') || CASE WHEN wait_event_type = 'Lock' THEN ' ' || left(regexp_replace(query, '\s+', ' ', 'g'), 60) ELSE '' END
      FROM pg_stat_activity WHERE state = 'active' AND datname = 'petrel_bench' AND pid <> pg_backend_pid()" '\watch 0.1') &
    WAIT_PID=$!
  fi
  kill -USR1 "${PIDS[0]}"; sleep 0.2
  t0=$(now)
  srcs=()
  for j in $(seq 1 "$STREAMS"); do
    echo "== $point stream $j -> $(smtp_addr "$j"): -s $sess -m $per -l $SIZE -t user$j" >>"$OUT/smtp-source.log"
    timeout "$CASE_TIMEOUT" "$SMTP_SOURCE" -s "$sess" -m "$per" -l "$SIZE" -f "$SENDER" -t "user$j@example.test" -M "$HELO" \
      "$(smtp_addr "$j")" >>"$OUT/smtp-source.log" 2>&1 &
    srcs+=($!)
  done
  for p in "${srcs[@]}"; do wait "$p"; done
  t1=$(now)
  kill -USR2 "${PIDS[0]}"
  if [ -n "$WAIT_PID" ]; then kill -TERM "$WAIT_PID" 2>/dev/null; wait "$WAIT_PID" 2>/dev/null; WAIT_PID=""; fi
  pc1=$(cpu_of "${PIDS[@]}"); gc1=$( [ "$KIND" = pg ] && cpu_of "$PG_PID" || echo 0)
  expect=$((expect + per))
  sleep 0.5
  ok=1
  for j in $(seq 1 "$STREAMS"); do
    "$IL" -mode fetch -addr "$(imap_addr "$j")" -user "user$j@example.test" -pass "$PASS" -reps 1 -bodies 1 -expect "$expect" >/dev/null 2>>"$OUT/imapload.log" || ok=0
  done
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')
  printf '%s\t%s\tinbound\t%d\t%s\t%.1f\t%s\t%.2f\t%.2f\t%s\n' "$KIND" "$N" $((per * STREAMS)) "$secs" "$(div $((per * STREAMS)) "$secs")" "$l1" \
    "$(awk -v a="$pc0" -v b="$pc1" 'BEGIN{print b-a}')" "$(awk -v a="$gc0" -v b="$gc1" 'BEGIN{print b-a}')" "$ok" >>"$OUT/raw.tsv"
  log "  inbound: $((per * STREAMS)) messages in $secs s = $(div $((per * STREAMS)) "$secs") msgs/s (load before $l1, all delivered: $ok)"
  (cd "$REPO" && go tool pprof -top -nodecount=35 "$BIN/petrelprof" "$OUT/cpu-$KIND$N-node1.pprof") >"$OUT/pprof-$KIND$N-top.txt" 2>&1
  (cd "$REPO" && go tool pprof -top -cum -nodecount=50 "$BIN/petrelprof" "$OUT/cpu-$KIND$N-node1.pprof") >"$OUT/pprof-$KIND$N-cum.txt" 2>&1
  if [ "$KIND" = pg ]; then
    sort "$OUT/.waits" | uniq -c | sort -rn >"$OUT/waits-$KIND$N.txt"; rm -f "$OUT/.waits"
  fi

  # ---- IMAP APPEND (IMAP_C connections in all, spread over the nodes)
  l1=$(cut -d' ' -f1 /proc/loadavg)
  c=$(( IMAP_C / N > 0 ? IMAP_C / N : 1 )); per=$((APPENDS / N))
  t0=$(now); ils=()
  for i in $(seq 1 "$N"); do
    "$IL" -mode append -addr "$(imap_addr "$i")" -user imapuser@example.test -pass "$PASS" -c "$c" -n "$per" -size "$SIZE" \
      >"$OUT/.app$i" 2>>"$OUT/imapload.log" &
    ils+=($!)
  done
  ok=1; for p in "${ils[@]}"; do wait "$p" || ok=0; done
  t1=$(now); secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')
  printf '%s\t%s\tappend\t%d\t%s\t%.1f\t%s\t-\t-\t%s\n' "$KIND" "$N" $((per * N)) "$secs" "$(div $((per * N)) "$secs")" "$l1" "$ok" >>"$OUT/raw.tsv"
  log "  IMAP APPEND: $((per * N)) in $secs s = $(div $((per * N)) "$secs")/s (load before $l1)"

  # ---- IMAP FETCH (FETCHERS clients at once, round-robin over the nodes)
  l1=$(cut -d' ' -f1 /proc/loadavg)
  t0=$(now); ils=()
  for f in $(seq 1 "$FETCHERS"); do
    "$IL" -mode fetch -addr "$(imap_addr "$f")" -user "user$(( (f - 1) % STREAMS + 1 ))@example.test" -pass "$PASS" -reps 1 -bodies "$BODIES" -expect "$expect" \
      >"$OUT/.fetch$f" 2>>"$OUT/imapload.log" &
    ils+=($!)
  done
  ok=1; for p in "${ils[@]}"; do wait "$p" || ok=0; done
  t1=$(now); secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')
  bodies=$(cat "$OUT"/.fetch* | awk -F'\t' '$2=="bodies" {n+=$5; r+=$8} END{printf "%d %.1f", n, r}')
  printf '%s\t%s\tfetch_bodies\t%d\t%s\t%s\t%s\t-\t-\t%s\n' "$KIND" "$N" "${bodies% *}" "$secs" "${bodies#* }" "$l1" "$ok" >>"$OUT/raw.tsv"
  sync_s=$(cat "$OUT"/.fetch* | awk -F'\t' '$2!="bodies" {s+=$7} END{printf "%.2f", s}')
  printf '%s\t%s\tfetch_sync_s_sum\t%d\t%s\t-\t%s\t-\t-\t%s\n' "$KIND" "$N" "$FETCHERS" "$sync_s" "$l1" "$ok" >>"$OUT/raw.tsv"
  log "  IMAP FETCH: ${bodies% *} bodies at ${bodies#* }/s summed over $FETCHERS clients; whole run $secs s (load before $l1)"
  rm -f "$OUT"/.app* "$OUT"/.fetch*
done
stop_nodes

{
  echo
  echo "Several nodes on one database: messages (or bodies) per second, all nodes together"
  printf '%-10s %12s %12s %14s %18s %18s %10s\n' point "inbound/s" "APPEND/s" "FETCH body/s" "petrel cpu ms/msg" "pg cpu ms/msg" "load1"
  for point in $POINTS; do
    IFS=: read -r KIND N <<<"$point"
    awk -F'\t' -v k="$KIND" -v n="$N" '
      $1==k && $2==n && $3=="inbound" {in_r=$6; l=$7; pc=$8*1000/$4; gc=$9*1000/$4; ok=$10}
      $1==k && $2==n && $3=="append" {ap=$6; ok=ok && $10}
      $1==k && $2==n && $3=="fetch_bodies" {fe=$6; ok=ok && $10}
      END{ printf "%-10s %12s %12s %14s %18.2f %18.2f %10s%s\n", k ":" n, in_r, ap, fe, pc, gc, l, (ok ? "" : "  (NOT all delivered/OK)") }' "$OUT/raw.tsv"
  done
  echo "load1: 1-minute load average just before the inbound phase. Raw rows: $OUT/raw.tsv"
  echo "profiles of node 1 during inbound: $OUT/pprof-*-top.txt, -cum.txt; PostgreSQL wait events: $OUT/waits-*.txt"
} | tee "$OUT/summary.txt"
