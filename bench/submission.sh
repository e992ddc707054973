#!/bin/bash
# submission.sh — authenticated submission on port 465 (implicit TLS, AUTH PLAIN): Postfix +
# Dovecot auth (Mailu's engines) against Petrel, in the same run, with our own load client
# (bench/submitload); both servers relay everything to smtp-sink. Plus resident memory and a
# CPU profile of Petrel.
#
# Usage (root; installs postfix, dovecot-core, openssl and sqlite3 when missing):
#   bench/submission.sh                                   # RUNS=3 full runs, then the profile
#   RUNS=1 HS_CASES="10:200" MSG_CASES="10:500:10:4096" NODKIM_CASES= PROFILE=0 bench/submission.sh
#                                                         # quick smoke test (about a minute)
# The script takes /var/tmp/petrel-bench.lock (flock) for the whole run, so that benchmarks of
# other people on the same machine do not overlap; it waits for the lock.
#
# What one run does:
#   1. starts a fresh reference (bench/lib/postfix-submission.sh: Postfix smtpd on 465 in wrapper
#      mode, SASL through a Dovecot auth-only instance, Mailu's submission restrictions and
#      outclean header filter, relayhost = its own smtp-sink) and a fresh Petrel (TLS_FLAVOR=cert
#      with the self-signed certificate Petrel generates, PORTS=25,465, RELAYHOST=[127.0.0.1]:its
#      own smtp-sink, no RELAYUSER; users user1..user10@example.test created before `petrel
#      serve`, which also creates the domain's DKIM key, so Petrel DKIM-signs every submitted
#      message as it ships; Postfix here does not sign: Mailu signs in rspamd, which is not run);
#   2. after $IDLE_SETTLE s samples idle memory (sum of VmRSS and of Pss over every process of
#      each server: Postfix and Dovecot trees; Petrel's one process), then warms both up with
#      $WARMUP messages from 10 sessions (each of user1..user10 logs in once, so Petrel's
#      credential cache and Postfix's smtpd processes are in place, as on a server in use);
#   3. for every case, against both servers one after the other (which goes first alternates
#      from run to run):
#        handshakes CONC:TOTAL — CONC workers loop connect + TLS handshake + greeting + EHLO +
#          AUTH PLAIN + QUIT until TOTAL are done: handshakes/s, p50/p99 ms;
#        messages CONC:TOTAL:PER_SESSION:BYTES — CONC workers open sessions (TLS, EHLO, AUTH) and
#          send PER_SESSION messages of BYTES to rcpt@sink.test in each: (a) messages answered
#          250 per second at the client, p50/p99 ms per message (MAIL FROM to the 250 after the
#          dot), and (b) relayed throughput: messages counted by that server's smtp-sink divided
#          by the time from the client's start until the sink has them all.
#      Memory is sampled every 0.5 s during each case; CPU of each server's process tree (reaped
#      children included) is read before and after.
#   4. NODKIM_CASES (messages cases) run once more against a Petrel restarted on the same data
#      without its DKIM key ("petrel-nodkim"): the cost of signing.
# Afterwards the medians over the runs are printed: case, Postfix figure, Petrel figure, ratio
# (Petrel / Postfix: for rates above 1 means Petrel is faster; for latency, CPU per operation
# and memory below 1 means Petrel needs less). Raw rows go to
# $OUT/raw.tsv, idle memory to $OUT/idle.tsv.
#
# Profile step (PROFILE=1): a fresh Petrel built from bench/petrelprof takes $PROFILE_CASE (a
# messages case) and then $PROFILE_HS (a handshakes case), each under its own CPU profile;
# `go tool pprof -top` goes to $OUT/pprof-{msg,hs}-{top,cum}.txt.
#
# Settings (environment):
#   RUNS=3
#   HS_CASES="1:200 10:600"                                         (CONC:TOTAL)
#   MSG_CASES="1:200:10:4096 10:1000:10:4096 50:2000:10:4096 10:300:10:65536"
#                                                      (CONC:TOTAL:PER_SESSION:BYTES)
#   NODKIM_CASES="10:1000:10:4096"  (empty: no variant)
#   BENCH_DIR=/var/tmp/petrel-bench-submission (a real disk, not tmpfs)   OUT=$BENCH_DIR/results
#   IDLE_SETTLE=5  WARMUP=200  STALL=30 (s without relay progress before a case gives up)
#   CASE_TIMEOUT=600 (s per client run)
#   MEM_CASE=10:4096 (CONC:BYTES of the messages case whose peak memory is reported)
#   PROFILE=1  PROFILE_CASE=10:2000:10:4096  PROFILE_HS=10:600
#   PETREL_ROUNDS=12 (CREDENTIAL_ROUNDS of `petrel serve`: bcrypt cost, Mailu's default). The
#     users are created with cost 4 (20 bcrypt-12 hashes take over a minute on a busy 2-core
#     machine); Petrel re-hashes an outdated hash at the first successful login, which the
#     warm-up does, and from then on its credential cache answers without bcrypt.
#   PS_SCHEME=PLAIN (the reference's Dovecot passwd-file scheme; e.g. BLF-CRYPT costs bcrypt on
#     every login, as Dovecot has no credential cache unless auth_cache_size is set)
#   PETREL_LOG_LEVEL=WARNING   SUMMARY_ONLY=1 (summarise $OUT/raw.tsv and stop)   KEEP_DATA=1
#   PS_SMTPS=12465 REF_SINK=12526 (reference)   PETREL_SMTP=12725 PETREL_SMTPS=12765
#   PETREL_SINK=12527 DNS_STUB=127.0.0.1:10054 (benchtool dns answering from /etc/hosts, as in
#   inbound.sh: Petrel looks up each client's PTR over DNS)
#   LOCK=/var/tmp/petrel-bench.lock (empty: no lock)
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib/common.sh"
REPO=$(cd "$HERE/.." && pwd)
PS=$HERE/lib/postfix-submission.sh

die() { echo "submission.sh: $*" >&2; exit 1; }

# ---------------------------------------------------------------- the lock
LOCK=${LOCK-/var/tmp/petrel-bench.lock}
# An ancestor already holding it (e.g. `flock $LOCK bench/submission.sh`) must not make us wait
# for ourselves.
held_by_ancestor() {
  local p=$$ cmd
  while [ "$p" -gt 1 ]; do
    cmd=$(tr '\0' ' ' </proc/$p/cmdline 2>/dev/null)
    case $cmd in flock*"$LOCK"*) return 0;; esac
    p=$(awk '{print $4}' /proc/$p/stat 2>/dev/null) || return 1
  done
  return 1
}
if [ -n "$LOCK" ] && [ "${SUBMISSION_LOCKED:-}" != 1 ] && [ "${SUMMARY_ONLY:-0}" != 1 ] && ! held_by_ancestor; then
  command -v flock >/dev/null || die "flock missing (util-linux)"
  log "waiting for $LOCK"
  exec flock "$LOCK" env SUBMISSION_LOCKED=1 "$0" "$@"
fi

RUNS=${RUNS:-3}
HS_CASES=${HS_CASES-"1:200 10:600"}
MSG_CASES=${MSG_CASES-"1:200:10:4096 10:1000:10:4096 50:2000:10:4096 10:300:10:65536"}
NODKIM_CASES=${NODKIM_CASES-"10:1000:10:4096"}
BENCH_DIR=${BENCH_DIR:-/var/tmp/petrel-bench-submission}
OUT=${OUT:-$BENCH_DIR/results}
IDLE_SETTLE=${IDLE_SETTLE:-5}
WARMUP=${WARMUP:-200}
STALL=${STALL:-30}
CASE_TIMEOUT=${CASE_TIMEOUT:-600}
MEM_CASE=${MEM_CASE:-10:4096}
PROFILE=${PROFILE:-1}
PROFILE_CASE=${PROFILE_CASE:-10:2000:10:4096}
PROFILE_HS=${PROFILE_HS:-10:600}
PETREL_ROUNDS=${PETREL_ROUNDS:-12}
PETREL_LOG_LEVEL=${PETREL_LOG_LEVEL:-WARNING}
export PS_SMTPS=${PS_SMTPS:-12465} PS_SCHEME=${PS_SCHEME:-PLAIN}
REF_SINK=${REF_SINK:-12526}
PETREL_SMTP=${PETREL_SMTP:-12725}
PETREL_SMTPS=${PETREL_SMTPS:-12765}
PETREL_SINK=${PETREL_SINK:-12527}
DNS_STUB=${DNS_STUB-127.0.0.1:10054}
export PS_RELAY="[127.0.0.1]:$REF_SINK" PS_PASS_FMT="Bench-Password-%d" PS_NUSERS=10
SINK=/usr/sbin/smtp-sink

load1() { cut -d' ' -f1 /proc/loadavg; }

mkdir -p "$BENCH_DIR" || die "cannot create $BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
OUT=$(mkdir -p "$OUT" && cd "$OUT" && pwd)

# ---------------------------------------------------------------- summary (medians over runs)
# raw.tsv columns:
#  1 run  2 case  3 kind  4 server  5 conc  6 total  7 per_session  8 bytes  9 ok  10 errors
#  11 client_s  12 client_rate  13 p50_ms  14 p99_ms  15 relayed  16 relayed_s  17 relayed_rate
#  18 cpu_ms_per_op  19 peak_rss_mib  20 peak_pss_mib  21 max_procs  22 load1
col() { awk -F'\t' -v c="$1" -v s="$2" -v k="$3" 'NR>1 && $2==c && $4==s && $10==0 {print $k}' "$OUT/raw.tsv"; }
fails() { awk -F'\t' -v c="$1" -v s="$2" 'NR>1 && $2==c && $4==s && ($10>0 || ($3=="messages" && $15<$9)) {n++} END{print n+0}' "$OUT/raw.tsv"; }
# fig CASE SERVER FIELD: median, or FAILED(n) when n runs had errors or lost messages
fig() { local f; f=$(fails "$1" "$2"); if [ "$f" -gt 0 ]; then echo "FAILED($f)"; else col "$1" "$2" "$3" | median; fi; }
row() {  # row LABEL REF PET [unit-format]
  case "$2$3" in
    *FAILED*|*-*) printf '%-34s %12s %12s %8s\n' "$1" "$2" "$3" "-" ;;
    *) printf '%-34s %12.1f %12.1f %7.2fx\n' "$1" "$2" "$3" "$(div "$3" "$2")" ;;
  esac
}
summary() {
  local runs cases c kind label pet
  runs=$(awk -F'\t' 'NR>1 && $1>n {n=$1} END{print n+0}' "$OUT/raw.tsv")
  cases=$(awk -F'\t' 'NR>1 && !seen[$2]++ {print $2}' "$OUT/raw.tsv")
  echo
  echo "Submission on 465 (implicit TLS, AUTH PLAIN), median of $runs runs; ratio = Petrel / Postfix"
  echo "(rates: above 1 = Petrel faster; ms, CPU and memory: below 1 = Petrel lower)"
  printf '%-34s %12s %12s %8s\n' case postfix petrel ratio
  for c in $cases; do
    kind=$(awk -F'\t' -v c="$c" 'NR>1 && $2==c {print $3; exit}' "$OUT/raw.tsv")
    label=$(awk -F'\t' -v c="$c" 'NR>1 && $2==c {if ($3=="handshakes") printf "%d conc", $5; else printf "%d sess x %d/sess x %d KiB", $5, $7, $8/1024; exit}' "$OUT/raw.tsv")
    echo "$kind, $label"
    if [ "$kind" = handshakes ]; then
      row "  handshakes/s" "$(fig "$c" ref 12)" "$(fig "$c" petrel 12)"
      row "  p50 ms" "$(fig "$c" ref 13)" "$(fig "$c" petrel 13)"
      row "  p99 ms" "$(fig "$c" ref 14)" "$(fig "$c" petrel 14)"
      row "  server CPU ms per handshake" "$(fig "$c" ref 18)" "$(fig "$c" petrel 18)"
    else
      row "  250s/s at the client" "$(fig "$c" ref 12)" "$(fig "$c" petrel 12)"
      row "  relayed/s (sink has them all)" "$(fig "$c" ref 17)" "$(fig "$c" petrel 17)"
      row "  p50 ms per message" "$(fig "$c" ref 13)" "$(fig "$c" petrel 13)"
      row "  p99 ms per message" "$(fig "$c" ref 14)" "$(fig "$c" petrel 14)"
      row "  server CPU ms per message" "$(fig "$c" ref 18)" "$(fig "$c" petrel 18)"
      pet=$(awk -F'\t' -v c="$c" 'NR>1 && $2==c && $4=="petrel-nodkim"' "$OUT/raw.tsv")
      if [ -n "$pet" ]; then
        row "  no DKIM key: 250s/s" "$(fig "$c" ref 12)" "$(fig "$c" petrel-nodkim 12)"
        row "  no DKIM key: relayed/s" "$(fig "$c" ref 17)" "$(fig "$c" petrel-nodkim 17)"
        row "  no DKIM key: CPU ms per message" "$(fig "$c" ref 18)" "$(fig "$c" petrel-nodkim 18)"
      fi
    fi
  done
  echo "load (1-min average at the start of each case): $(awk -F'\t' 'NR>1 {print $22}' "$OUT/raw.tsv" | sort -g | awk '{a[NR]=$1} END{ if (NR) printf "%s-%s, median %s", a[1], a[NR], a[int((NR+1)/2)] }')"
  echo
  local MC MB mc im
  IFS=: read -r MC MB <<<"$MEM_CASE"
  mc=$(awk -F'\t' -v k="$MC" -v b="$MB" 'NR>1 && $3=="messages" && $5==k && $8==b {print $2; exit}' "$OUT/raw.tsv")
  im() { awk -F'\t' -v s="$1" -v k="$2" 'NR>1 && $2==s {print $k}' "$OUT/idle.tsv" | median; }
  echo "Memory, summed over every process of each server (median of $runs runs; MiB)"
  printf '%-34s %12s %12s %8s\n' "" postfix petrel ratio
  row "idle Pss" "$(im ref 4)" "$(im petrel 4)"
  row "idle RSS" "$(im ref 3)" "$(im petrel 3)"
  printf '%-34s %12s %12s\n' "idle processes" "$(im ref 5)" "$(im petrel 5)"
  if [ -n "$mc" ]; then
    row "peak Pss, messages $MC sess x $((MB/1024)) KiB" "$(col "$mc" ref 20 | median)" "$(col "$mc" petrel 20 | median)"
    row "peak RSS, messages $MC sess x $((MB/1024)) KiB" "$(col "$mc" ref 19 | median)" "$(col "$mc" petrel 19 | median)"
    printf '%-34s %12s %12s\n' "peak processes" "$(col "$mc" ref 21 | median)" "$(col "$mc" petrel 21 | median)"
  fi
  row "peak Pss over all cases and runs" "$(awk -F'\t' 'NR>1&&$4=="ref"{print $20}' "$OUT/raw.tsv" | sort -g | tail -1)" "$(awk -F'\t' 'NR>1&&$4=="petrel"{print $20}' "$OUT/raw.tsv" | sort -g | tail -1)"
  echo
  echo "raw rows: $OUT/raw.tsv $OUT/idle.tsv   machine: $OUT/env.txt   client errors: $OUT/client.log"
  if ls "$OUT"/pprof-*-top.txt >/dev/null 2>&1; then echo "profiles: $(ls "$OUT"/pprof-*.txt | tr '\n' ' ')"; fi
}

if [ "${SUMMARY_ONLY:-0}" = 1 ]; then
  [ -f "$OUT/raw.tsv" ] || die "SUMMARY_ONLY=1: no $OUT/raw.tsv"
  summary; exit 0
fi

[ "$(id -u)" = 0 ] || die "must run as root (Postfix and Dovecot need it)"
command -v go >/dev/null || die "go not found in PATH"
"$PS" install || die "installing postfix/dovecot-core/openssl failed"
[ -x "$SINK" ] || die "$SINK missing (package postfix)"
fstype=$(findmnt -n -o FSTYPE --target "$BENCH_DIR" 2>/dev/null || stat -f -c %T "$BENCH_DIR")
case $fstype in tmpfs|ramfs) die "$BENCH_DIR is on $fstype; fsync would cost nothing there (set BENCH_DIR)";; esac
BIN=$BENCH_DIR/bin
REF=$BENCH_DIR/ref
PET=$BENCH_DIR/petrel
mkdir -p "$BIN"

# ---------------------------------------------------------------- cleanup: only what we started
PETREL_PID=""; SAMPLER_PID=""; DNS_PID=""; REF_SINK_PID=""; PET_SINK_PID=""
cleanup() {
  for p in $SAMPLER_PID $DNS_PID $REF_SINK_PID $PET_SINK_PID; do kill -TERM "$p" 2>/dev/null; done
  stop_petrel
  "$PS" stop "$REF" >/dev/null 2>&1
  [ "${KEEP_DATA:-0}" = 1 ] || rm -rf "$REF" "$PET" "$PET.log" "$BENCH_DIR"/sink-*.out
}
trap 'cleanup; exit 130' INT TERM
trap cleanup EXIT

# ---------------------------------------------------------------- build
log "building petrel, petrelprof (CGO_ENABLED=0), benchtool and submitload from $REPO"
(cd "$REPO" && CGO_ENABLED=0 go build -o "$BIN/petrel" ./cmd/petrel && CGO_ENABLED=0 go build -o "$BIN/petrelprof" ./bench/petrelprof \
  && go build -o "$BIN/benchtool" ./bench/benchtool && go build -o "$BIN/submitload" ./bench/submitload) || die "go build failed"
BT=$BIN/benchtool
SL=$BIN/submitload

{
  echo "date: $(date -u +%FT%TZ)"
  echo "kernel: $(uname -r)"
  echo "cpus: $(nproc) ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'))"
  echo "memory: $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "bench dir: $BENCH_DIR on $(df -P "$BENCH_DIR" | awk 'NR==2{print $1}') ($fstype)"
  echo "go: $(go version | cut -d' ' -f3-)"
  echo "postfix: $(/usr/sbin/postconf -d -h mail_version 2>/dev/null || dpkg-query -W -f='${Version}' postfix) (deb $(dpkg-query -W -f='${Version}' postfix))"
  echo "dovecot: $(/usr/sbin/dovecot --version)"
  echo "openssl: $(openssl version)"
  echo "petrel: $(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null)$(cd "$REPO" && git diff --quiet HEAD -- . 2>/dev/null || echo ' (+ uncommitted changes)')"
  echo "settings: RUNS=$RUNS HS_CASES=\"$HS_CASES\" MSG_CASES=\"$MSG_CASES\" NODKIM_CASES=\"$NODKIM_CASES\" WARMUP=$WARMUP PETREL_ROUNDS=$PETREL_ROUNDS PS_SCHEME=$PS_SCHEME PETREL_LOG_LEVEL=$PETREL_LOG_LEVEL DNS_STUB=$DNS_STUB"
  echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/env.txt" >&2

# ---------------------------------------------------------------- sinks
# start_sink PORT FILE: smtp-sink -c prints "sess=N quit=N mesg=N" at every event to FILE
start_sink() {
  "$SINK" -c -u nobody "127.0.0.1:$1" 512 >"$2" 2>&1 &
  echo $!
}
sink_count() { tail -c 200 "$1" 2>/dev/null | tr '\r' '\n' | awk -F'mesg=' 'NF>1 {n=$2+0} END{print n+0}'; }
REF_SINK_OUT=$BENCH_DIR/sink-ref.out
PET_SINK_OUT=$BENCH_DIR/sink-petrel.out
REF_SINK_PID=$(start_sink "$REF_SINK" "$REF_SINK_OUT")
PET_SINK_PID=$(start_sink "$PETREL_SINK" "$PET_SINK_OUT")
sleep 0.3
kill -0 "$REF_SINK_PID" 2>/dev/null && kill -0 "$PET_SINK_PID" 2>/dev/null || { cat "$REF_SINK_OUT" "$PET_SINK_OUT" >&2; die "smtp-sink did not start"; }

# ---------------------------------------------------------------- Petrel
USERS=$(seq -s, -f 'user%g@example.test' 1 10)
PETREL_ENV=(env -i PATH="$PATH" HOME="${HOME:-/root}" DATA_DIR="$PET" DOMAIN=example.test
  HOSTNAMES=mail.example.test SECRET_KEY=bench-secret-key-0123456789abcdef TLS_FLAVOR=cert
  PORTS=25,465 LISTEN_25=127.0.0.1:$PETREL_SMTP LISTEN_465=127.0.0.1:$PETREL_SMTPS
  RELAYHOST="[127.0.0.1]:$PETREL_SINK" CREDENTIAL_ROUNDS=$PETREL_ROUNDS
  MESSAGE_RATELIMIT_EXEMPTION="$USERS" LOG_LEVEL=$PETREL_LOG_LEVEL)
if [ -n "$DNS_STUB" ]; then
  PETREL_ENV+=(RESOLVER_ADDRESS="$DNS_STUB")
  start_dns_stub "$DNS_STUB" "$BENCH_DIR/dns.log"
fi

# dkim_keys: how many DKIM keys Petrel's store holds
dkim_keys() { sqlite3 -readonly "$PET/main.db" "SELECT count(*) FROM dkim_key"; }

# petrel_users: a fresh DATA_DIR with user1..user10@example.test (and example.test's DKIM key)
petrel_users() {
  rm -rf "$PET"; mkdir -p "$PET"
  for i in $(seq 1 10); do
    echo "Bench-Password-$i" | "${PETREL_ENV[@]}" CREDENTIAL_ROUNDS=4 "$BIN/petrel" user "user$i" example.test - >/dev/null \
      || die "petrel user user$i failed"
  done
  # The keys live in the store (dkim_key, sealed with SECRET_KEY), not in files.
  [ "$(dkim_keys)" -gt 0 ] || log "WARNING: Petrel made no DKIM key; it will not sign"
}
start_ref() {
  "$PS" config "$REF" >/dev/null 2>&1 || die "writing the reference config failed"
  "$PS" start "$REF" >"$REF.start.log" 2>&1 || { cat "$REF.start.log" >&2; die "reference did not start"; }
  for _ in $(seq 1 100); do
    "$SL" handshakes -addr 127.0.0.1:$PS_SMTPS -c 1 -n 1 -t 2s >/dev/null 2>&1 && return 0; sleep 0.2
  done
  cat "$REF.start.log" >&2; tail "$REF/postfix/maillog" >&2; die "reference does not accept logins on $PS_SMTPS"
}

# ---------------------------------------------------------------- one case
# run_case SERVER KIND RUN CASENO CONC TOTAL PER BYTES: appends a row to $OUT/raw.tsv
run_case() {
  local srv=$1 kind=$2 run=$3 cno=$4 C=$5 N=$6 PER=$7 B=$8
  local addr roots sinkout memlog before res rc t0 t1 tend cur last lastchange c0 c1 l1 relayed
  case $srv in
    ref) addr=127.0.0.1:$PS_SMTPS; roots=$("$PS" roots "$REF"); sinkout=$REF_SINK_OUT ;;
    *) addr=127.0.0.1:$PETREL_SMTPS; roots=$PETREL_PID; sinkout=$PET_SINK_OUT ;;
  esac
  memlog=$OUT/mem.r$run.c$cno.$srv
  l1=$(load1)
  before=$(sink_count "$sinkout")
  "$BT" mem -i 500ms $roots >"$memlog" & SAMPLER_PID=$!
  echo "== run $run case $cno $srv: submitload $kind -addr $addr -c $C -n $N -m $PER -s $B" >>"$OUT/client.log"
  c0=$("$BT" cpu $roots)
  t0=$(now)
  res=$(timeout "$CASE_TIMEOUT" "$SL" "$kind" -addr "$addr" -c "$C" -n "$N" -m "$PER" -s "$B" -users 10 2>>"$OUT/client.log")
  rc=$?
  t1=$(now)
  echo "$res" >>"$OUT/client.log"
  [ -n "$res" ] || res="RESULT	$kind	$C	0	$N	0	0	0	0	0"
  relayed=0; tend=$t1
  if [ "$kind" = messages ]; then
    # wait until the sink has every message answered 250 (or no progress for $STALL s)
    local ok; ok=$(cut -f4 <<<"$res")
    last=-1; lastchange=$t1
    while :; do
      cur=$(sink_count "$sinkout"); tend=$(now)
      [ $((cur - before)) -ge "$ok" ] && break
      if [ "$cur" != "$last" ]; then last=$cur; lastchange=$tend; fi
      awk -v a="$tend" -v b="$lastchange" -v s="$STALL" 'BEGIN{exit !(a-b>s)}' && { log "$srv: relaying made no progress for ${STALL}s"; break; }
      sleep 0.05
    done
    relayed=$((cur - before))
  fi
  c1=$("$BT" cpu $roots)
  sleep 0.6; kill -TERM "$SAMPLER_PID" 2>/dev/null; wait "$SAMPLER_PID" 2>/dev/null; SAMPLER_PID=""
  awk -v run=$run -v cno=$cno -v kind=$kind -v srv=$srv -v C=$C -v N=$N -v PER=$PER -v B=$B -v res="$res" \
      -v relayed=$relayed -v t0=$t0 -v te=$tend -v c0=$c0 -v c1=$c1 -v memlog="$memlog" -v l1=$l1 'BEGIN{
    split(res, r, "\t")   # RESULT mode workers ok errors seconds rate p50 p99 max
    rss = 0; pss = 0; n = 0
    while ((getline line < memlog) > 0) { split(line, f, " "); if (f[3] > rss) rss = f[3]; if (f[4] > pss) pss = f[4]; if (f[2] > n) n = f[2] }
    rs = te - t0; rr = (kind == "messages" && rs > 0) ? relayed / rs : 0
    ops = r[4] + 0
    printf "%d\t%d\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%d\t%.3f\t%.1f\t%.3f\t%.1f\t%.1f\t%d\t%s\n", run, cno, kind, srv, C, N, PER, B, ops, r[5], r[6], r[7], r[8], r[9], relayed, (kind == "messages" ? rs : 0), rr, (ops > 0 ? (c1 - c0) * 1000 / ops : 0), rss/1024, pss/1024, n, l1
  }' >>"$OUT/raw.tsv"
  tail -1 "$OUT/raw.tsv" | awk -F'\t' '{
    if ($3 == "handshakes") printf "  run %s case %s %-13s handshakes %3d conc: %5d ok %d err, %7.1f/s p50 %6.2f ms p99 %7.2f ms, cpu %.2f ms each (load %s)\n", $1,$2,$4,$5,$9,$10,$12,$13,$14,$18,$22
    else printf "  run %s case %s %-13s messages %3d sess x %d/sess x %6d B: %5d ok %d err, %7.1f/s at client, relayed %5d %7.1f/s, p50 %6.2f ms p99 %7.2f ms, cpu %.2f ms/msg, peak Pss %.0f MiB (load %s)\n", $1,$2,$4,$5,$7,$8,$9,$10,$12,$15,$17,$13,$14,$18,$20,$22 }' >&2
  [ "$rc" = 0 ] || log "WARNING: submitload exited $rc against $srv (see $OUT/client.log)"
  return 0
}

warm_up() {
  [ "$WARMUP" -gt 0 ] || return 0
  "$SL" messages -addr 127.0.0.1:$PS_SMTPS -c 10 -n "$WARMUP" -m 5 -users 10 >/dev/null 2>>"$OUT/client.log" || log "WARNING: reference warm-up had errors"
  "$SL" messages -addr 127.0.0.1:$PETREL_SMTPS -c 10 -n "$WARMUP" -m 5 -users 10 >/dev/null 2>>"$OUT/client.log" || log "WARNING: petrel warm-up had errors"
  # let both queues drain before the first case
  wait_sink "$REF_SINK_OUT" $((REF_BASE + WARMUP))
  wait_sink "$PET_SINK_OUT" $((PET_BASE + WARMUP))
  sleep 1
}
# wait_sink FILE N: until that sink has counted N messages (at most 60 s)
wait_sink() {
  for _ in $(seq 1 600); do [ "$(sink_count "$1")" -ge "$2" ] && return 0; sleep 0.1; done
  log "WARNING: $1 stayed at $(sink_count "$1") of $2 messages"
}

# ---------------------------------------------------------------- runs
printf 'run\tcase\tkind\tserver\tconc\ttotal\tper_session\tbytes\tok\terrors\tclient_s\tclient_rate\tp50_ms\tp99_ms\trelayed\trelayed_s\trelayed_rate\tcpu_ms_per_op\tpeak_rss_mib\tpeak_pss_mib\tmax_procs\tload1\n' >"$OUT/raw.tsv"
printf 'run\tserver\tidle_rss_mib\tidle_pss_mib\tidle_procs\tload1\n' >"$OUT/idle.tsv"
: >"$OUT/client.log"

for run in $(seq 1 "$RUNS"); do
  log "run $run of $RUNS (load $(cut -d' ' -f1-3 /proc/loadavg))"
  "$PS" stop "$REF" >/dev/null 2>&1; rm -rf "$REF" "$PET" "$PET.log"
  start_ref
  petrel_users
  start_petrel "$BIN/petrel"
  sleep "$IDLE_SETTLE"
  l1=$(load1)
  read -r _ ref_n ref_rss ref_pss < <("$BT" mem -n 1 $("$PS" roots "$REF"))
  read -r _ pet_n pet_rss pet_pss < <("$BT" mem -n 1 $PETREL_PID)
  printf '%d\tref\t%.1f\t%.1f\t%d\t%s\n' "$run" "$(div "$ref_rss" 1024)" "$(div "$ref_pss" 1024)" "$ref_n" "$l1" >>"$OUT/idle.tsv"
  printf '%d\tpetrel\t%.1f\t%.1f\t%d\t%s\n' "$run" "$(div "$pet_rss" 1024)" "$(div "$pet_pss" 1024)" "$pet_n" "$l1" >>"$OUT/idle.tsv"
  log "  idle Pss: postfix+dovecot $((ref_pss/1024)) MiB in $ref_n processes, petrel $((pet_pss/1024)) MiB"
  REF_BASE=$(sink_count "$REF_SINK_OUT"); PET_BASE=$(sink_count "$PET_SINK_OUT")
  warm_up
  if [ $((run % 2)) = 1 ]; then order="ref petrel"; else order="petrel ref"; fi
  cno=0
  for c in $HS_CASES; do
    cno=$((cno + 1)); IFS=: read -r C N <<<"$c"
    for srv in $order; do run_case "$srv" handshakes "$run" "$cno" "$C" "$N" 1 4096; done
  done
  for c in $MSG_CASES; do
    cno=$((cno + 1)); IFS=: read -r C N PER B <<<"$c"
    for srv in $order; do run_case "$srv" messages "$run" "$cno" "$C" "$N" "$PER" "$B"; done
  done
  if [ -n "$NODKIM_CASES" ]; then
    # the same Petrel data without the DKIM key: Petrel then sends unsigned
    stop_petrel
    sqlite3 "$PET/main.db" "DELETE FROM dkim_key" || die "removing Petrel's DKIM key failed"
    start_petrel "$BIN/petrel"
    [ "$(dkim_keys)" = 0 ] || die "Petrel has a DKIM key again after its restart"
    b=$(sink_count "$PET_SINK_OUT")
    "$SL" messages -addr 127.0.0.1:$PETREL_SMTPS -c 10 -n 50 -m 5 -users 10 >/dev/null 2>>"$OUT/client.log"
    wait_sink "$PET_SINK_OUT" $((b + 50))
    for c in $NODKIM_CASES; do
      IFS=: read -r C N PER B <<<"$c"
      # the case number of the same case with DKIM, so the summary puts them together
      k=$(awk -F'\t' -v C="$C" -v N="$N" -v P="$PER" -v B="$B" 'NR>1 && $3=="messages" && $5==C && $6==N && $7==P && $8==B {print $2; exit}' "$OUT/raw.tsv")
      [ -n "$k" ] || { cno=$((cno + 1)); k=$cno; }
      run_case petrel-nodkim messages "$run" "$k" "$C" "$N" "$PER" "$B"
    done
  fi
  stop_petrel
  "$PS" stop "$REF" >/dev/null 2>&1
done

# ---------------------------------------------------------------- profile
if [ "$PROFILE" = 1 ]; then
  IFS=: read -r C N PER B <<<"$PROFILE_CASE"
  log "profile: petrelprof under messages $C sess x $N x $B B, $PER per session (load $(load1))"
  petrel_users
  start_petrel "$BIN/petrelprof" PPROF_OUT="$OUT/petrel.cpu.pprof"
  b=$(sink_count "$PET_SINK_OUT")
  "$SL" messages -addr 127.0.0.1:$PETREL_SMTPS -c 10 -n "$WARMUP" -m 5 -users 10 >/dev/null 2>>"$OUT/client.log"
  wait_sink "$PET_SINK_OUT" $((b + WARMUP))
  before=$(sink_count "$PET_SINK_OUT")
  kill -USR1 "$PETREL_PID"; sleep 0.2
  res=$("$SL" messages -addr 127.0.0.1:$PETREL_SMTPS -c "$C" -n "$N" -m "$PER" -s "$B" -users 10 2>>"$OUT/client.log")
  for _ in $(seq 1 600); do [ $(( $(sink_count "$PET_SINK_OUT") - before )) -ge "$N" ] && break; sleep 0.05; done
  kill -USR2 "$PETREL_PID"; sleep 0.5
  mv "$OUT/petrel.cpu.pprof" "$OUT/petrel-msg.cpu.pprof"   # the next SIGUSR1 recreates it
  log "  $(cut -f4,7 <<<"$res" | awk '{printf "%d messages, %.1f/s at the client", $1, $2}'), $(( $(sink_count "$PET_SINK_OUT") - before )) relayed (profiling on; relaying included)"
  IFS=: read -r C N <<<"$PROFILE_HS"
  log "profile: petrelprof under handshakes $C conc x $N"
  kill -USR1 "$PETREL_PID"; sleep 0.2
  res=$("$SL" handshakes -addr 127.0.0.1:$PETREL_SMTPS -c "$C" -n "$N" -users 10 2>>"$OUT/client.log")
  kill -USR2 "$PETREL_PID"; sleep 0.5
  mv "$OUT/petrel.cpu.pprof" "$OUT/petrel-hs.cpu.pprof"
  log "  $(cut -f4,7 <<<"$res" | awk '{printf "%d handshakes, %.1f/s", $1, $2}') (profiling on)"
  stop_petrel
  for p in msg hs; do
    (cd "$REPO" && go tool pprof -top -nodecount=45 "$BIN/petrelprof" "$OUT/petrel-$p.cpu.pprof") >"$OUT/pprof-$p-top.txt" 2>&1
    (cd "$REPO" && go tool pprof -top -cum -nodecount=70 "$BIN/petrelprof" "$OUT/petrel-$p.cpu.pprof") >"$OUT/pprof-$p-cum.txt" 2>&1
  done
  rm -rf "$PET"
fi

summary | tee "$OUT/summary.txt"
