#!/bin/bash
# inbound.sh — inbound SMTP on port 25: Postfix + Dovecot (Mailu's engines) against Petrel, in
# the same run, with Postfix's smtp-source; plus resident memory, start-up time and a CPU profile.
#
# Usage (root; installs postfix, dovecot-imapd, dovecot-lmtpd and sqlite3 when missing):
#   bench/inbound.sh                      # RUNS=3 full runs, then the profile step
#   RUNS=1 CASES="2:50:4096" PROFILE=0 bench/inbound.sh     # quick smoke test
#
# What one run does:
#   1. starts a fresh reference (bench/lib/postfix-dovecot.sh: Postfix smtpd -> Dovecot LMTP ->
#      Maildir, default fsync) and a fresh Petrel (DATA_DIR under $BENCH_DIR, users
#      user1..user20@example.test created before `petrel serve`), timing each from exec to the
#      220 greeting on its port 25;
#   2. after $IDLE_SETTLE s, samples idle memory (sum of VmRSS and of Pss from
#      /proc/P/smaps_rollup over every process of each server), then sends $WARMUP unmeasured
#      messages to user20 on each so that no case pays for workers being spawned;
#   3. for every case SESSIONS:MESSAGES:BYTES in $CASES runs smtp-source against both servers one
#      after the other (which goes first alternates from run to run). Case number i sends to
#      user<i>@example.test so each case starts with an empty mailbox. Only what reached the
#      mailbox counts:
#        reference: files in user<i>'s Maildir new/ + cur/; the clock stops at the mtime of the
#                   newest file (Postfix answers 250 once the message is in its queue; delivery
#                   to Dovecot follows);
#        Petrel:    rows in `message` for user<i>'s mailboxes, read with sqlite3; Petrel answers
#                   250 only after the group commit that holds the message has been fsynced, so
#                   the clock stops when smtp-source exits.
#      Memory is sampled every 0.5 s during each case; CPU used by each server's process tree
#      (children reaped by the masters included, smtp-source excluded) is read before and after.
#   4. stops Petrel (SIGTERM) and the reference, starts each again on the same data to time a
#      warm start, and stops them again.
# Afterwards the medians over the runs are printed: case, reference msgs/s, Petrel msgs/s,
# ratio, then memory, CPU per message and start-up time. Raw rows go to $OUT/raw.tsv.
#
# Profile step (PROFILE=1): a fresh Petrel built from bench/petrelprof (cmd/petrel's serve with
# a CPU profile switch) takes the $PROFILE_CASE load; `go tool pprof -top` goes to
# $OUT/pprof-*.txt. When `perf record -e cpu-clock` works, the real petrel binary is also
# sampled under the same load (user and kernel stacks) into $OUT/perf-*.txt, and when the
# syscall tracepoints work, $OUT/syscalls.txt gets system calls per delivered message.
#
# Settings (environment):
#   RUNS=3  CASES="1:2000:4096 10:2000:4096 50:4000:4096 1:1000:65536 10:1000:65536 50:2000:65536
#                  50:4000:4096:d 50:2000:65536:d"   (SESSIONS:MESSAGES:BYTES[:d]; d: smtp-source -d,
#                  each session keeps its connection for all its messages)
#   BENCH_DIR=/var/tmp/petrel-bench (must be on a real disk, not tmpfs)   OUT=$BENCH_DIR/results
#   IDLE_SETTLE=5  WARMUP=200 (unmeasured messages to each server before the cases; 0: none)
#   STALL=30 (s without delivery progress before a case gives up)
#   MEM_CASE=10:4096 (SESSIONS:BYTES of the case whose peak memory is reported)
#   PROFILE=1  PROFILE_CASE=10:4000:4096
#   SYSCALL_CASES="1:2000:4096 10:2000:4096 50:4000:4096 10:1000:65536" (perf stat of Petrel's
#     fsync/write/pwrite64/accept4 calls per delivered message, when syscall tracepoints work)
#   SUMMARY_ONLY=1: print the summary of the rows already in $OUT/raw.tsv and stop
#   KEEP_DATA=1: keep both servers' data directories (Maildirs, main.db) after the run
#   PETREL_LOG_LEVEL=WARNING   SMTP_SOURCE=/usr/sbin/smtp-source   SRC_OPTS= (e.g. -d)
#   PB_SMTP=12525 PB_LMTP=10024 PB_IMAP=10143 (reference ports)   PETREL_SMTP=12625 PETREL_SMTPS=12665
#   DNS_STUB=127.0.0.1:10053: `benchtool dns` answers from /etc/hosts there and Petrel gets
#     RESOLVER_ADDRESS=$DNS_STUB, standing in for the resolver Mailu runs beside its servers.
#     Petrel looks up the client's PTR and forward-confirms it over DNS on every connection
#     (absolute names, which Go does not match against /etc/hosts), where Postfix reads
#     /etc/hosts through nsswitch; without the stub the benchmark would measure the machine's
#     upstream DNS. DNS_STUB= (empty) uses the system resolver.
#   CASE_TIMEOUT=900 (s; smtp-source is stopped after that)
#   PETREL_EXTRA_ENV="K=V ...": more settings for Petrel (e.g. LISTEN_443=127.0.0.1:22643 when
#     another program holds :443)
#   RSPAMD=1: both servers scan with one private rspamd (bench/lib/rspamd.sh): Postfix through
#     the milter (Mailu's main.cf), Petrel through ANTISPAM_ADDRESS (HTTP /checkv2)
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib/common.sh"
REPO=$(cd "$HERE/.." && pwd)
PD=$HERE/lib/postfix-dovecot.sh

RUNS=${RUNS:-3}
CASES=${CASES:-"1:2000:4096 10:2000:4096 50:4000:4096 1:1000:65536 10:1000:65536 50:2000:65536 50:4000:4096:d 50:2000:65536:d"}
BENCH_DIR=${BENCH_DIR:-/var/tmp/petrel-bench}
OUT=${OUT:-$BENCH_DIR/results}
IDLE_SETTLE=${IDLE_SETTLE:-5}
WARMUP=${WARMUP:-200}
STALL=${STALL:-30}
MEM_CASE=${MEM_CASE:-10:4096}
PROFILE=${PROFILE:-1}
PROFILE_CASE=${PROFILE_CASE:-10:4000:4096}
SYSCALL_CASES=${SYSCALL_CASES:-"1:2000:4096 10:2000:4096 50:4000:4096 10:1000:65536"}
# Case numbers name the recipient (user<i>); user20 takes the warm-up.
[ "$(wc -w <<<"$CASES")" -le 19 ] || die "at most 19 cases"
PETREL_LOG_LEVEL=${PETREL_LOG_LEVEL:-WARNING}
SMTP_SOURCE=${SMTP_SOURCE:-/usr/sbin/smtp-source}
SRC_OPTS=${SRC_OPTS:-}
export PB_SMTP=${PB_SMTP:-12525} PB_LMTP=${PB_LMTP:-10024} PB_IMAP=${PB_IMAP:-10143}
PETREL_SMTP=${PETREL_SMTP:-12625}
PETREL_SMTPS=${PETREL_SMTPS:-12665}
DNS_STUB=${DNS_STUB-127.0.0.1:10053}
CASE_TIMEOUT=${CASE_TIMEOUT:-900}
SENDER=bench@example.org
HELO=bench-client.example.org

die() { echo "inbound.sh: $*" >&2; exit 1; }
load1() { cut -d' ' -f1 /proc/loadavg; }

[ "$(id -u)" = 0 ] || die "must run as root (Postfix and Dovecot need it)"
command -v go >/dev/null || die "go not found in PATH"
"$PD" install || die "installing postfix/dovecot/sqlite3 failed"
[ -x "$SMTP_SOURCE" ] || die "$SMTP_SOURCE missing (package postfix)"

mkdir -p "$BENCH_DIR" || die "cannot create $BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
OUT=$(mkdir -p "$OUT" && cd "$OUT" && pwd)
fstype=$(findmnt -n -o FSTYPE --target "$BENCH_DIR" 2>/dev/null || stat -f -c %T "$BENCH_DIR")
case $fstype in tmpfs|ramfs) die "$BENCH_DIR is on $fstype; fsync would cost nothing there (set BENCH_DIR)";; esac
BIN=$BENCH_DIR/bin
REF=$BENCH_DIR/ref
PET=$BENCH_DIR/petrel
mkdir -p "$BIN"

# ---------------------------------------------------------------- summary (medians over runs)
# col CASENO SERVER FIELD [ok]: one value per run; "ok" keeps only runs that delivered everything.
col() { awk -F'\t' -v c="$1" -v s="$2" -v k="$3" -v ok="${4:-}" 'NR>1 && $2==c && $3==s && (ok=="" || $7>=$5) {print $k}' "$OUT/raw.tsv"; }
# rate CASENO SERVER: the median msgs/s, or "FAILED" with how many runs fell short.
rate() {
  local bad all
  all=$(col "$1" "$2" 9 | wc -l); bad=$(awk -F'\t' -v c="$1" -v s="$2" 'NR>1 && $2==c && $3==s && $7<$5 {n++} END{print n+0}' "$OUT/raw.tsv")
  if [ "$bad" -gt 0 ]; then echo "FAILED($bad/$all)"; else col "$1" "$2" 9 | median; fi
}
summary() {
  local cno c S M L O r p rc pc fc label mc MS ML RUNS
  RUNS=$(awk -F'\t' 'NR>1 && $1>n {n=$1} END{print n+0}' "$OUT/raw.tsv")
  echo
  echo "Inbound SMTP on port 25, smtp-source, messages delivered to the mailbox per second (median of $RUNS runs)"
  printf '%-27s %15s %9s %7s %9s %9s %7s %11s\n' case "postfix+dovecot" petrel ratio "ref cpu" "pet cpu" "cpu" "foreign"
  printf '%-27s %15s %9s %7s %9s %9s %7s %11s\n' "" "msgs/s" "msgs/s" "" "ms/msg" "ms/msg" ratio "CPU %"
  cno=0
  for c in $CASES; do
    cno=$((cno + 1)); IFS=: read -r S M L O <<<"$c"
    label="$S sess x $M x $((L/1024)) KiB$([ "${O:-}" = d ] && echo " -d")"
    r=$(rate $cno ref); p=$(rate $cno petrel)
    rc=$(col $cno ref 13 ok | median); pc=$(col $cno petrel 13 ok | median)
    fc=$(awk -F'\t' -v c=$cno 'NR>1 && $2==c {print $19}' "$OUT/raw.tsv" | sort -g | awk '{a[NR]=$1} END{ if (NR) printf "%d-%d", a[1], a[NR] }')
    case "$r$p" in
      *FAILED*) printf '%-27s %15s %9s %7s %9s %9s %7s %11s\n' "$label" "$r" "$p" "-" "$rc" "$pc" "-" "$fc" ;;
      *) printf '%-27s %15.1f %9.1f %6.2fx %9.2f %9.2f %6.1fx %11s\n' "$label" "$r" "$p" "$(div "$p" "$r")" "$rc" "$pc" "$(div "$rc" "$pc")" "$fc" ;;
    esac
  done
  echo "cpu: CPU time of the server's processes per delivered message (postfix+dovecot: every process,"
  echo "  reaped workers included); foreign CPU: share of both cores used by other programs during the"
  echo "  case (lowest-highest over the runs). FAILED(n/N): n of N runs did not deliver every message"
  echo "  (see $OUT/smtp-source.log)."
  echo
  IFS=: read -r MS ML <<<"$MEM_CASE"
  mc=0; cno=0; for c in $CASES; do cno=$((cno+1)); IFS=: read -r S M L O <<<"$c"; [ "$S:$L" = "$MS:$ML" ] && [ -z "${O:-}" ] && mc=$cno; done
  sm() { awk -F'\t' -v s="$1" -v k="$2" 'NR>1 && $2==s {print $k}' "$OUT/startmem.tsv" | median; }
  echo "Memory, summed over every process of each server (median of $RUNS runs; MiB)"
  printf '%-36s %16s %16s %8s\n' "" "postfix+dovecot" petrel ratio
  printf '%-36s %16.1f %16.1f %7.2fx\n' "idle Pss" "$(sm ref 6)" "$(sm petrel 6)" "$(div "$(sm petrel 6)" "$(sm ref 6)")"
  printf '%-36s %16.1f %16.1f %7.2fx\n' "idle RSS" "$(sm ref 5)" "$(sm petrel 5)" "$(div "$(sm petrel 5)" "$(sm ref 5)")"
  printf '%-36s %16s %16s\n' "idle processes" "$(sm ref 7)" "$(sm petrel 7)"
  if [ "$mc" -gt 0 ]; then
    local rp pp rr pr
    rp=$(col $mc ref 15 | median); pp=$(col $mc petrel 15 | median); rr=$(col $mc ref 14 | median); pr=$(col $mc petrel 14 | median)
    printf '%-36s %16.1f %16.1f %7.2fx\n' "peak Pss, $MS sessions x $((ML/1024)) KiB" "$rp" "$pp" "$(div "$pp" "$rp")"
    printf '%-36s %16.1f %16.1f %7.2fx\n' "peak RSS, $MS sessions x $((ML/1024)) KiB" "$rr" "$pr" "$(div "$pr" "$rr")"
    printf '%-36s %16s %16s\n' "peak processes" "$(col $mc ref 16 | median)" "$(col $mc petrel 16 | median)"
  fi
  printf '%-36s %16.1f %16.1f\n' "peak Pss over all cases and runs" "$(awk -F'\t' 'NR>1&&$3=="ref"{print $15}' "$OUT/raw.tsv" | sort -g | tail -1)" "$(awk -F'\t' 'NR>1&&$3=="petrel"{print $15}' "$OUT/raw.tsv" | sort -g | tail -1)"
  echo
  echo "Start-up, exec to the 220 greeting on port 25 (median of $RUNS runs; ms)"
  printf '%-36s %16.1f %16.1f\n' "cold (fresh data directory)" "$(sm ref 3)" "$(sm petrel 3)"
  printf '%-36s %16.1f %16.1f\n' "warm (restart on the same data)" "$(sm ref 4)" "$(sm petrel 4)"
  echo
  echo "raw rows: $OUT/raw.tsv  $OUT/startmem.tsv   machine: $OUT/env.txt"
  if [ "$PROFILE" = 1 ]; then echo "profile: $OUT/pprof-top.txt $OUT/pprof-cum.txt $( [ -f "$OUT/perf-sym.txt" ] && echo "$OUT/perf-{dso,sym,children}.txt")"; fi
  if [ -f "$OUT/syscalls.txt" ]; then echo; echo "Petrel system calls per delivered message"; cat "$OUT/syscalls.txt"; fi
}

if [ "${SUMMARY_ONLY:-0}" = 1 ]; then
  [ -f "$OUT/raw.tsv" ] || die "SUMMARY_ONLY=1: no $OUT/raw.tsv"
  trap - EXIT; summary; exit 0
fi

# ---------------------------------------------------------------- cleanup: only what we started
PETREL_PID=""
SAMPLER_PID=""
PERF_PID=""
DNS_PID=""
cleanup() {
  for p in $SAMPLER_PID $PERF_PID $DNS_PID; do kill -TERM "$p" 2>/dev/null; done
  [ -n "${RS_DIR:-}" ] && "$HERE/lib/rspamd.sh" stop "$RS_DIR"
  stop_petrel
  "$PD" stop "$REF" >/dev/null 2>&1
  # the mail stores are large and worthless afterwards; $OUT stays
  [ "${KEEP_DATA:-0}" = 1 ] || rm -rf "$REF" "$PET" "$PET.log" "$REF.start.log" "$OUT/.times0" "$OUT/.times1" "$OUT/.perfstat"
}
trap 'cleanup; exit 130' INT TERM
trap cleanup EXIT

# ---------------------------------------------------------------- build
# CGO_ENABLED=0: the static, pure-Go binary Petrel ships as (README), as the other scripts build it.
log "building petrel, petrelprof (CGO_ENABLED=0), benchtool and fsyncbench from $REPO"
(cd "$REPO" && CGO_ENABLED=0 go build -o "$BIN/petrel" ./cmd/petrel && go build -o "$BIN/benchtool" ./bench/benchtool \
  && CGO_ENABLED=0 go build -o "$BIN/petrelprof" ./bench/petrelprof && go build -o "$BIN/fsyncbench" ./bench/fsyncbench) \
  || die "go build failed"
BT=$BIN/benchtool

# ---------------------------------------------------------------- machine and versions
{
  echo "date: $(date -u +%FT%TZ)"
  echo "kernel: $(uname -r)"
  echo "cpus: $(nproc) ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'))"
  echo "memory: $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "bench dir: $BENCH_DIR on $(df -P "$BENCH_DIR" | awk 'NR==2{print $1}') ($fstype $(findmnt -n -o OPTIONS --target "$BENCH_DIR" 2>/dev/null))"
  echo "go: $(go version | cut -d' ' -f3-)"
  echo "postfix: $(/usr/sbin/postconf -d -h mail_version 2>/dev/null) (deb $(dpkg-query -W -f='${Version}' postfix))"
  echo "dovecot: $(/usr/sbin/dovecot --version)"
  echo "sqlite3 CLI: $(sqlite3 --version | cut -d' ' -f1)"
  echo "petrel: $(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null)$(cd "$REPO" && git diff --quiet HEAD -- . 2>/dev/null || echo ' (+ uncommitted changes)')"
  echo "settings: RUNS=$RUNS CASES=\"$CASES\" SRC_OPTS=\"$SRC_OPTS\" PETREL_LOG_LEVEL=$PETREL_LOG_LEVEL DNS_STUB=$DNS_STUB"
} | tee "$OUT/env.txt" >&2

# ---------------------------------------------------------------- Petrel
PETREL_ENV=(env -i PATH="$PATH" HOME="${HOME:-/root}" DATA_DIR="$PET" DOMAIN=example.test
  HOSTNAMES=mail.example.test SECRET_KEY=bench-secret-key-0123456789abcdef
  PORTS=25,465 LISTEN_25=127.0.0.1:$PETREL_SMTP LISTEN_465=127.0.0.1:$PETREL_SMTPS CREDENTIAL_ROUNDS=4
  LOG_LEVEL=$PETREL_LOG_LEVEL ${PETREL_EXTRA_ENV:-})
if [ -n "$DNS_STUB" ]; then
  PETREL_ENV+=(RESOLVER_ADDRESS="$DNS_STUB")
  start_dns_stub "$DNS_STUB" "$BENCH_DIR/dns.log"
fi

# RSPAMD=1: both servers scan every message with one shared rspamd (bench/lib/rspamd.sh):
# Postfix through its milter on 11332 (Mailu's main.cf), Petrel over HTTP /checkv2 on 11333
# (ANTISPAM_ADDRESS).
if [ "${RSPAMD:-0}" = 1 ]; then
  RS_DIR=$BENCH_DIR/rspamd
  RS_DNS=${DNS_STUB:-127.0.0.1:53} "$HERE/lib/rspamd.sh" start "$RS_DIR" || die "rspamd did not start"
  PETREL_ENV+=(ANTISPAM_ADDRESS=${RS_NORMAL:-127.0.0.1:11333})
  export PB_MILTER=${RS_PROXY:-127.0.0.1:11332}
  log "rspamd: $(rspamd --version 2>&1 | head -1), milter for the reference, /checkv2 for Petrel"
  # rspamd compiles its hyperscan databases in the background after start: let it finish.
  sleep "${RS_SETTLE:-45}"
fi

# petrel_users: a fresh DATA_DIR with user1..user20@example.test (before serve, as the tests do).
petrel_users() {
  rm -rf "$PET"; mkdir -p "$PET"
  for i in $(seq 1 20); do
    echo "Bench-Password-$i" | "${PETREL_ENV[@]}" "$BIN/petrel" user "user$i" example.test - >/dev/null \
      || die "petrel user user$i failed"
  done
}


# petrel_count USER: "N" messages in USER's mailboxes.
petrel_count() {
  sqlite3 -cmd '.timeout 10000' "$PET/main.db" \
    "SELECT count(*) FROM message WHERE mailbox_id IN (SELECT id FROM mailbox WHERE user_email = '$1');"
}

# ---------------------------------------------------------------- reference
# start_ref: starts Dovecot then Postfix (postfix-dovecot.sh start: `dovecot -c`, then
# `postfix -c .. start`, which runs postfix-script's checks and the master); sets STARTUP_MS, the
# ms from exec to Postfix's 220 greeting. The config is written beforehand, untimed.
start_ref() {
  "$PD" config "$REF" >/dev/null 2>&1 || die "writing the reference config failed"
  local t0; t0=$(now)
  "$PD" start "$REF" >"$REF.start.log" 2>&1 || { cat "$REF.start.log" >&2; die "reference did not start"; }
  STARTUP_MS=$("$BT" wait220 -t 60s -since "$t0" 127.0.0.1:$PB_SMTP) || die "postfix did not greet"
}
ref_roots() { "$PD" roots "$REF"; }

# ---------------------------------------------------------------- one case
# busy_ticks: machine-wide busy CPU (user+nice+system+irq+softirq+steal) in USER_HZ ticks.
busy_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat; }
# children_cpu FILE: user+sys seconds of this shell's waited-for children, from `times` output.
children_cpu() { awk 'NR==2{ split($1,u,/[ms]/); split($2,s,/[ms]/); print u[1]*60+u[2]+s[1]*60+s[2] }' "$1"; }

# run_case SERVER S M L OPTS USER RUN CASENO: appends a row to $OUT/raw.tsv. OPTS "d" adds
# smtp-source -d (one connection per session, reused for every message).
run_case() {
  local srv=$1 S=$2 M=$3 L=$4 opts=$5 user=$6 run=$7 cno=$8
  local addr roots before cur last lastchange t0 t1 tend delivered rc l1 c0 c1 j0 j1 tw memlog src
  if [ "$srv" = ref ]; then addr=127.0.0.1:$PB_SMTP; roots=$(ref_roots); else addr=127.0.0.1:$PETREL_SMTP; roots=$PETREL_PID; fi
  memlog=$OUT/mem.r$run.c$cno.$srv
  src="$SRC_OPTS"; [ "$opts" = d ] && src="$src -d"
  l1=$(load1)
  if [ "$srv" = ref ]; then before=$("$PD" count "$REF" "$user" | cut -d' ' -f1); else before=$(petrel_count "$user"); fi
  "$BT" mem -i 500ms $roots >"$memlog" & SAMPLER_PID=$!
  echo "== run $run case $cno $srv: $SMTP_SOURCE $src -s $S -m $M -l $L -f $SENDER -t $user -M $HELO $addr" >>"$OUT/smtp-source.log"
  c0=$("$BT" cpu $roots); j0=$(busy_ticks)
  t0=$(now)
  times >"$OUT/.times0"
  timeout "$CASE_TIMEOUT" "$SMTP_SOURCE" $src -s "$S" -m "$M" -l "$L" -f "$SENDER" -t "$user" -M "$HELO" "$addr" >>"$OUT/smtp-source.log" 2>&1
  rc=$?
  times >"$OUT/.times1"
  t1=$(now)
  if [ "$srv" = ref ]; then
    # wait until everything is in the Maildir (or no progress for $STALL s)
    last=-1; lastchange=$t1
    while :; do
      read -r cur tend < <("$PD" count "$REF" "$user")
      [ "$cur" -ge $((before + M)) ] && break
      if [ "$cur" != "$last" ]; then last=$cur; lastchange=$(now); fi
      awk -v a="$(now)" -v b="$lastchange" -v s="$STALL" 'BEGIN{exit !(a-b>s)}' && { log "reference: no progress for ${STALL}s"; break; }
      sleep 0.2
    done
    delivered=$((cur - before))
  else
    cur=$(petrel_count "$user"); tend=$t1
    delivered=$((cur - before))
  fi
  j1=$(busy_ticks); tw=$(now); c1=$("$BT" cpu $roots)
  sleep 0.6; kill -TERM "$SAMPLER_PID" 2>/dev/null; wait "$SAMPLER_PID" 2>/dev/null; SAMPLER_PID=""
  # foreign CPU: what the rest of the machine (other users of these 2 cores) used meanwhile,
  # as a share of all cores: busy ticks minus the server's and smtp-source's CPU.
  awk -v run=$run -v cno=$cno -v srv=$srv -v S=$S -v M=$M -v L=$L -v d=$delivered -v t0=$t0 -v t1=$t1 -v te=$tend \
      -v rc=$rc -v l1=$l1 -v c0=$c0 -v c1=$c1 -v memlog="$memlog" -v opts="$opts" \
      -v j0=$j0 -v j1=$j1 -v tw=$tw -v ncpu=$(nproc) -v cli=$(awk -v a="$(children_cpu "$OUT/.times0")" -v b="$(children_cpu "$OUT/.times1")" 'BEGIN{print b-a}') 'BEGIN{
    e = te - t0; if (e <= 0) e = t1 - t0
    rss = 0; pss = 0; n = 0
    while ((getline line < memlog) > 0) { split(line, f, " "); if (f[3] > rss) rss = f[3]; if (f[4] > pss) pss = f[4]; if (f[2] > n) n = f[2] }
    srvcpu = c1 - c0; busy = (j1 - j0) / 100; foreign = busy - srvcpu - cli; if (foreign < 0) foreign = 0
    printf "%d\t%d\t%s\t%d\t%d\t%d\t%d\t%.3f\t%.1f\t%.1f\t%d\t%s\t%.2f\t%.1f\t%.1f\t%d\t%s\t%.2f\t%.0f\n", run, cno, srv, S, M, L, d, e, d/e, M/(t1-t0), rc, l1, (d > 0 ? srvcpu*1000/d : 0), rss/1024, pss/1024, n, (opts == "" ? "-" : opts), (d > 0 ? cli*1000/d : 0), 100*foreign/((tw-t0)*ncpu)
  }' >>"$OUT/raw.tsv"
  tail -1 "$OUT/raw.tsv" | awk -F'\t' '{printf "  run %s case %s %-6s %3d sessions%s %5d x %6d B: delivered %5d in %7.2fs = %7.1f msgs/s (accept %7.1f/s, rc %s, load %s, foreign CPU %s%%, server cpu %.2f ms/msg, client %.2f, peak Pss %.0f MiB)\n", $1,$2,$3,$4,($17=="d"?" -d":""),$5,$6,$7,$8,$9,$10,$11,$12,$19,$13,$18,$15}' >&2
  [ "$delivered" -lt "$M" ] && log "WARNING: $srv delivered $delivered of $M (smtp-source said: $(grep -v '^==' "$OUT/smtp-source.log" | tail -1))"
  return 0
}

# warm_up: $WARMUP messages (10 sessions, 4 KiB) to user20 on both servers, not measured, so
# that the first case does not pay for Postfix spawning its smtpd/cleanup/lmtp workers and
# Dovecot its LMTP processes (or for Petrel's first connections and SQLite page cache).
warm_up() {
  [ "$WARMUP" -gt 0 ] || return 0
  local n _
  "$SMTP_SOURCE" -s 10 -m "$WARMUP" -l 4096 -f "$SENDER" -t user20@example.test -M "$HELO" 127.0.0.1:$PB_SMTP >/dev/null 2>&1
  "$SMTP_SOURCE" -s 10 -m "$WARMUP" -l 4096 -f "$SENDER" -t user20@example.test -M "$HELO" 127.0.0.1:$PETREL_SMTP >/dev/null 2>&1
  for _ in $(seq 1 150); do
    read -r n _ < <("$PD" count "$REF" user20@example.test)
    [ "$n" -ge "$WARMUP" ] && break; sleep 0.2
  done
  sleep 1
}

# ---------------------------------------------------------------- runs
printf 'run\tcase\tserver\tsessions\tmsgs\tbytes\tdelivered\tseconds\tmsgs_per_s\taccept_per_s\tsrc_rc\tload1\tcpu_ms_per_msg\tpeak_rss_mib\tpeak_pss_mib\tmax_procs\topts\tclient_cpu_ms_per_msg\tforeign_cpu_pct\n' >"$OUT/raw.tsv"
printf 'run\tserver\tcold_start_ms\twarm_start_ms\tidle_rss_mib\tidle_pss_mib\tidle_procs\tload1\n' >"$OUT/startmem.tsv"
: >"$OUT/smtp-source.log"

for run in $(seq 1 "$RUNS"); do
  log "run $run of $RUNS (load $(cut -d' ' -f1-3 /proc/loadavg))"
  "$PD" stop "$REF" >/dev/null 2>&1; rm -rf "$REF" "$PET" "$PET.log"
  start_ref; ref_cold=$STARTUP_MS
  petrel_users
  start_petrel "$BIN/petrel"; pet_cold=$STARTUP_MS
  sleep "$IDLE_SETTLE"
  read -r _ ref_n ref_rss ref_pss < <("$BT" mem -n 1 $(ref_roots))
  read -r _ pet_n pet_rss pet_pss < <("$BT" mem -n 1 $PETREL_PID)
  log "  start-up: reference ${ref_cold} ms, petrel ${pet_cold} ms; idle Pss: reference $((ref_pss/1024)) MiB in $ref_n processes, petrel $((pet_pss/1024)) MiB"
  warm_up
  cno=0
  for c in $CASES; do
    cno=$((cno + 1))
    IFS=: read -r S M L O <<<"$c"
    if [ $((run % 2)) = 1 ]; then order="ref petrel"; else order="petrel ref"; fi
    for srv in $order; do
      run_case "$srv" "$S" "$M" "$L" "${O:-}" "user$cno@example.test" "$run" "$cno"
      # Proof that the messages went through rspamd: its own counter.
      [ "${RSPAMD:-0}" = 1 ] && log "  rspamd after $srv: $(curl -s -H 'Password: mailu' "http://${RS_CONTROLLER:-127.0.0.1:11334}/stat" | grep -o '"scanned":[0-9]*')"
    done
  done
  # warm start: same data, stop and start again
  l1=$(load1)
  stop_petrel
  start_petrel "$BIN/petrel"; pet_warm=$STARTUP_MS
  stop_petrel
  "$PD" stop "$REF" >/dev/null 2>&1
  start_ref; ref_warm=$STARTUP_MS
  "$PD" stop "$REF" >/dev/null 2>&1
  log "  warm start-up: reference ${ref_warm} ms, petrel ${pet_warm} ms"
  printf '%d\tref\t%s\t%s\t%.1f\t%.1f\t%d\t%s\n' "$run" "$ref_cold" "$ref_warm" "$(div "$ref_rss" 1024)" "$(div "$ref_pss" 1024)" "$ref_n" "$l1" >>"$OUT/startmem.tsv"
  printf '%d\tpetrel\t%s\t%s\t%.1f\t%.1f\t%d\t%s\n' "$run" "$pet_cold" "$pet_warm" "$(div "$pet_rss" 1024)" "$(div "$pet_pss" 1024)" "$pet_n" "$l1" >>"$OUT/startmem.tsv"
done

# ---------------------------------------------------------------- profile
if [ "$PROFILE" = 1 ]; then
  IFS=: read -r S M L <<<"$PROFILE_CASE"
  log "profile: petrelprof under $S sessions x $M x $L B (load $(load1))"
  petrel_users
  start_petrel "$BIN/petrelprof" PPROF_OUT="$OUT/petrel.cpu.pprof"
  kill -USR1 "$PETREL_PID"; sleep 0.2
  t0=$(now)
  "$SMTP_SOURCE" $SRC_OPTS -s "$S" -m "$M" -l "$L" -f "$SENDER" -t user1@example.test -M "$HELO" 127.0.0.1:$PETREL_SMTP >>"$OUT/smtp-source.log" 2>&1
  t1=$(now)
  kill -USR2 "$PETREL_PID"; sleep 0.5
  log "  pprof run: $(petrel_count user1@example.test) delivered, $(awk -v a=$t0 -v b=$t1 -v m=$M 'BEGIN{printf "%.1f msgs/s", m/(b-a)}') (with profiling on)"
  stop_petrel
  (cd "$REPO" && go tool pprof -top -nodecount=40 "$BIN/petrelprof" "$OUT/petrel.cpu.pprof") >"$OUT/pprof-top.txt" 2>&1
  (cd "$REPO" && go tool pprof -top -cum -nodecount=60 "$BIN/petrelprof" "$OUT/petrel.cpu.pprof") >"$OUT/pprof-cum.txt" 2>&1
  if command -v perf >/dev/null && perf record -e cpu-clock -o "$OUT/perf.probe" -- true >/dev/null 2>&1; then
    log "profile: perf record -e cpu-clock -g on the petrel binary, same load"
    petrel_users
    start_petrel "$BIN/petrel"
    perf record -e cpu-clock -F 999 -g -p "$PETREL_PID" -o "$OUT/perf.data" >/dev/null 2>"$OUT/perf-record.log" & PERF_PID=$!
    sleep 0.5
    "$SMTP_SOURCE" $SRC_OPTS -s "$S" -m "$M" -l "$L" -f "$SENDER" -t user1@example.test -M "$HELO" 127.0.0.1:$PETREL_SMTP >>"$OUT/smtp-source.log" 2>&1
    kill -INT "$PERF_PID"; wait "$PERF_PID" 2>/dev/null; PERF_PID=""
    stop_petrel
    perf report -i "$OUT/perf.data" --stdio --no-children --sort dso -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -15 >"$OUT/perf-dso.txt"
    perf report -i "$OUT/perf.data" --stdio --no-children --sort sym -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -50 >"$OUT/perf-sym.txt"
    perf report -i "$OUT/perf.data" --stdio --children --sort sym -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -60 >"$OUT/perf-children.txt"
    rm -f "$OUT/perf.probe"
  fi
  # system calls per delivered message (fsync, socket writes, WAL pwrites, accepts), from the
  # kernel's syscall tracepoints, on the real binary
  if command -v perf >/dev/null && perf stat -e syscalls:sys_enter_fsync -o /dev/null -- true >/dev/null 2>&1; then
    log "profile: system calls per message (perf stat on syscall tracepoints)"
    petrel_users
    start_petrel "$BIN/petrel"
    printf '%-28s %8s %8s %8s %8s %8s\n' case fsync fdatasync write pwrite64 accept4 >"$OUT/syscalls.txt"
    cno=0
    for c in $SYSCALL_CASES; do
      cno=$((cno + 1)); IFS=: read -r S M L O <<<"$c"
      perf stat -x, -e syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync,syscalls:sys_enter_write,syscalls:sys_enter_pwrite64,syscalls:sys_enter_accept4 \
        -p "$PETREL_PID" -o "$OUT/.perfstat" -- "$SMTP_SOURCE" $SRC_OPTS $([ "${O:-}" = d ] && echo -d) -s "$S" -m "$M" -l "$L" \
        -f "$SENDER" -t "user$cno@example.test" -M "$HELO" 127.0.0.1:$PETREL_SMTP >>"$OUT/smtp-source.log" 2>&1
      awk -F, -v m="$M" -v label="$S sess x $M x $((L/1024)) KiB$([ "${O:-}" = d ] && echo " -d")" '
        $3 ~ /sys_enter_/ { split($3, n, "sys_enter_"); v[n[2]] = $1 / m }
        END { printf "%-28s %8.2f %8.2f %8.2f %8.2f %8.2f\n", label, v["fsync"], v["fdatasync"], v["write"], v["pwrite64"], v["accept4"] }' "$OUT/.perfstat" >>"$OUT/syscalls.txt"
    done
    stop_petrel
    log "  per delivered message:"; sed 's/^/    /' "$OUT/syscalls.txt" >&2
  fi
  rm -rf "$PET"
fi

# ---------------------------------------------------------------- summary
summary | tee "$OUT/summary.txt"
