#!/bin/bash
# rspamd.sh — a private rspamd 3.4 (Debian) + redis-server for bench/inbound.sh RSPAMD=1, set up
# as Mailu runs it: a proxy worker speaking milter on $RS_PROXY with self_scan (Postfix's
# smtpd_milters), a normal worker answering HTTP /checkv2 on $RS_NORMAL (Petrel's
# ANTISPAM_ADDRESS), the controller on $RS_CONTROLLER; stock modules and scores, Bayes and
# greylisting on redis, hyperscan on. DNS goes to $RS_DNS (the bench's stub). Both servers under
# test share this one rspamd.
#
# Usage: rspamd.sh start DIR | stop DIR
set -uo pipefail
RS_PROXY=${RS_PROXY:-127.0.0.1:11332}
RS_NORMAL=${RS_NORMAL:-127.0.0.1:11333}
RS_CONTROLLER=${RS_CONTROLLER:-127.0.0.1:11334}
RS_REDIS_PORT=${RS_REDIS_PORT:-16379}
RS_DNS=${RS_DNS:-127.0.0.1:10053}
RS_WORKERS=${RS_WORKERS:-2}

cmd=$1 dir=$2
case $cmd in
start)
  rm -rf "$dir"; mkdir -p "$dir/local/local.d" "$dir/run" "$dir/db"
  chmod 755 "$dir" "$dir/local" "$dir/local/local.d"
  chown _rspamd: "$dir/run" "$dir/db"
  redis-server --port "$RS_REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
    --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
  cat > "$dir/rspamd.conf" <<CONF
.include "\$CONFDIR/common.conf"
options {
    pidfile = "\$RUNDIR/rspamd.pid";
    .include "\$CONFDIR/options.inc"
    dns { nameserver = ["$RS_DNS"]; timeout = 1s; retransmits = 1; }
}
logging { type = "file"; filename = "$dir/rspamd.log"; level = "warning"; }
worker "normal" {
    bind_socket = "$RS_NORMAL";
    .include "\$CONFDIR/worker-normal.inc"
    count = $RS_WORKERS;
}
worker "rspamd_proxy" {
    bind_socket = "$RS_PROXY";
    # Mailu's worker-proxy.inc (not Debian's, whose upstream is a
    # normal worker on localhost:11333)
    milter = yes;
    timeout = 120s;
    upstream "local" { default = yes; self_scan = yes; }
    count = $RS_WORKERS;
}
worker "controller" {
    bind_socket = "$RS_CONTROLLER";
    .include "\$CONFDIR/worker-controller.inc"
    password = "mailu";
    count = 1;
}
CONF
  echo "servers = \"127.0.0.1:$RS_REDIS_PORT\";" > "$dir/local/local.d/redis.conf"
  # Mailu's milter_headers.conf
  cat > "$dir/local/local.d/milter_headers.conf" <<CONF
use = ["x-spamd-bar", "x-spam-level", "authentication-results"];
skip_local = false;
skip_authenticated = false;
CONF
  rspamd -c "$dir/rspamd.conf" -u _rspamd -g _rspamd --var LOCAL_CONFDIR="$dir/local" \
    --var RUNDIR="$dir/run" --var DBDIR="$dir/db" --var LOGDIR="$dir/run" || exit 1
  for _ in $(seq 1 600); do
    curl -s "http://$RS_NORMAL/ping" 2>/dev/null | grep -q pong && exit 0
    sleep 0.5
  done
  echo "rspamd did not answer on $RS_NORMAL" >&2; tail -20 "$dir/rspamd.log" >&2; exit 1
  ;;
stop)
  [ -f "$dir/run/rspamd.pid" ] && kill -TERM "$(cat "$dir/run/rspamd.pid")" 2>/dev/null
  [ -f "$dir/redis.pid" ] && kill -TERM "$(cat "$dir/redis.pid")" 2>/dev/null
  sleep 1
  ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
