# common.sh — shell helpers the benchmark scripts share (sourced, not run).
# The sourcing script defines die() (with its own name) and, before calling
# start_petrel, sets BT (benchtool), PET (Petrel's DATA_DIR; its log is
# $PET.log), PETREL_ENV (the env command line) and PETREL_SMTP (its port 25).

log() { echo "[$(date +%T)] $*" >&2; }
now() { date +%s.%N; }
# div A B: A/B with 4 decimals; 0 when B is 0 or either is missing ("-" or "")
div() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b == 0 || a == "-" || b == "-" || a == "" || b == "") print 0; else printf "%.4f", a/b }'; }
# median: of the numbers on stdin, one per line; "-" for none
median() { sort -g | awk '{a[NR]=$1} END{ if (NR==0) {print "-"; exit}; if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'; }

# start_dns_stub ADDR LOG: `benchtool dns` answering from /etc/hosts on ADDR; sets DNS_PID
start_dns_stub() {
  "$BT" dns -listen "$1" >"$2" 2>&1 & DNS_PID=$!
  sleep 0.3; kill -0 "$DNS_PID" 2>/dev/null || { cat "$2" >&2; die "DNS stub did not start on $1"; }
}

# start_petrel BINARY [ENV=VALUE...]: starts serve (env execs it, so $! is petrel's PID); sets
# PETREL_PID and STARTUP_MS, the ms from exec to the 220 greeting on port 25. A script may set
# SERVER_PIN (an array such as (taskset -c 1)) to run the server under it; taskset execs too.
start_petrel() {
  local bin=$1; shift
  local t0; t0=$(now)
  "${PETREL_ENV[@]}" "$@" "${SERVER_PIN[@]}" "$bin" serve >>"$PET.log" 2>&1 &
  PETREL_PID=$!
  STARTUP_MS=$("$BT" wait220 -t 60s -since "$t0" 127.0.0.1:$PETREL_SMTP) || { tail -20 "$PET.log" >&2; die "petrel did not start"; }
}

# stop_petrel: SIGTERM (Petrel drains and exits 0) and wait for it.
stop_petrel() {
  [ -n "$PETREL_PID" ] || return 0
  kill -TERM "$PETREL_PID" 2>/dev/null
  wait "$PETREL_PID" 2>/dev/null
  PETREL_PID=""
}
