#!/bin/bash
# postfix-submission.sh — private Postfix 3.7 submission instance (port 465, implicit TLS, SASL
# through a Dovecot 2.3 auth-only instance) relaying everything to one RELAYHOST, on loopback.
#
# Usage:  postfix-submission.sh install            # apt-get postfix, dovecot-core, openssl, sqlite3 if missing (root)
#         postfix-submission.sh config DIR         # write the config under DIR (start does it if missing)
#         postfix-submission.sh start  DIR         # start Dovecot (auth only), then Postfix
#         postfix-submission.sh stop   DIR         # stop both and wait for every process of both trees
#         postfix-submission.sh status DIR         # print PIDs of both process trees
#         postfix-submission.sh pids   DIR         # one PID per line: every postfix+dovecot process
#         postfix-submission.sh roots  DIR         # the two master PIDs (postfix, dovecot)
#         postfix-submission.sh queue  DIR         # files in Postfix's incoming/active/deferred queues
#
# Settings (environment): PS_SMTPS=12465 (smtpd, implicit TLS)  PS_RELAY=[127.0.0.1]:12526 (relayhost, e.g. smtp-sink)  PS_NUSERS=20
#   PS_PASS_FMT=Bench-Password-%d (password of user<i>@example.test; printf format)
#   PS_SCHEME=PLAIN (Dovecot password scheme of the passwd-file: PLAIN, or e.g. BLF-CRYPT)
# This file is separate from postfix-dovecot.sh (the inbound reference) and uses its own ports
# and directories, so both can run at once.
#
# How close to Mailu (2024.06) this is, and why:
#   Mailu's 465: the front container's Dovecot `submission-login` terminates TLS, asks the admin
#   app (HTTP, login.lua -> /internal/auth/email) to check the password, then proxies the
#   session to Postfix's internal smtpd on 10025 (XCLIENT LOGIN=...), which runs
#     smtpd_client_restrictions = $check_ratelimit, reject_unlisted_sender,
#                                 reject_authenticated_sender_login_mismatch, permit
#     cleanup_service_name = outclean (header_checks that drop Received, User-Agent, X-Mailer,
#                                      X-Originating-IP, X-Enigmail, X-Pgp-Agent)
#   then rspamd (milter) DKIM-signs, and qmgr -> smtp delivers to RELAYHOST or the MX.
#   Here: Postfix's own smtpd terminates TLS on 465 (smtpd_tls_wrappermode=yes, a self-signed
#   ECDSA P-256 certificate like the one Petrel generates, TLS 1.2+) and checks the password with
#   smtpd_sasl_type=dovecot against a Dovecot auth-only instance (passwd-file, one process tree:
#   master, auth, anvil, log, config, stats). That is one proxy hop and the admin app's HTTP call
#   fewer than Mailu, and no rspamd (so no DKIM signature, no rate limit): the reference is
#   cheaper than a real Mailu on this path, never dearer. Kept from Mailu: the sender must be the
#   login (reject_authenticated_sender_login_mismatch via smtpd_sender_login_maps), the sender
#   must exist (reject_unlisted_sender), the outclean header filter (regexp: instead of pcre:,
#   which needs postfix-pcre), relayhost, default fsync (Postfix fsyncs the queue file before
#   answering 250 to the final dot), logging every message through postlogd to a file.
#   Known effect: after the TLS handshake smtpd writes the two TLS 1.3 session tickets and the 220
#   greeting in three small writes without TCP_NODELAY, so Nagle holds the greeting until the
#   client's delayed ACK (~40 ms on Linux loopback). A single sequential client therefore sees
#   ~40 ms per connection that is not CPU (strace of smtpd: 79+79+59-byte writes, then the next
#   read 46 ms later). tls_ssl_options = NO_TICKET and smtpd_tls_session_cache_timeout = 0 did not
#   remove it. Mailu's 465 is terminated by Dovecot, not by Postfix, so this is Postfix-on-465's
#   cost, not Mailu's; the concurrent cases are not bound by it.
#   Relaying to RELAYHOST: smtp(8) without TLS (smtp-sink offers no STARTTLS; Petrel's relay
#   client also finds none), connection cache on demand (Postfix's default).
# Must run as root (Postfix mail_owner=postfix; Dovecot's auth process runs as dovecot).
set -euo pipefail

PS_SMTPS=${PS_SMTPS:-12465}
PS_RELAY=${PS_RELAY:-[127.0.0.1]:12526}
PS_NUSERS=${PS_NUSERS:-20}
PS_PASS_FMT=${PS_PASS_FMT:-Bench-Password-%d}
PS_SCHEME=${PS_SCHEME:-PLAIN}
DOMAIN=example.test

die() { echo "postfix-submission.sh: $*" >&2; exit 1; }

cmd=${1:-}; DIR=${2:-}
[ "$cmd" = install ] || { [ -n "$DIR" ] || die "usage: $0 install|config|start|stop|status|pids|roots|queue DIR"; }
[ "$(id -u)" = 0 ] || die "must run as root"

if [ "$cmd" = install ]; then
  if [ -x /usr/sbin/postfix ] && [ -x /usr/sbin/dovecot ] && [ -x /usr/sbin/smtp-sink ] && command -v openssl >/dev/null \
    && command -v sqlite3 >/dev/null; then
    exit 0
  fi
  export DEBIAN_FRONTEND=noninteractive
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  echo "postfix postfix/mailname string localhost" | debconf-set-selections
  apt-get install -y -q postfix dovecot-core openssl sqlite3 >&2
  exit 0
fi

DIR=$(readlink -m "$DIR")
PF=$DIR/postfix; DC=$DIR/dovecot

tree_pids() {  # PID $1 and all its descendants
  [ -d /proc/$1 ] || return 0
  ps -e -o pid=,ppid= | awk -v root="$1" '{par[$1]=$2} END {for (p in par) {q=p; while (q!="" && q!=0) {if (q==root) {print p; break}; q=par[q]}}}' | sort -n
}
pf_master() { [ -f $PF/spool/pid/master.pid ] && tr -d ' \n' < $PF/spool/pid/master.pid || true; }
dc_master() { [ -f $DC/run/master.pid ] && tr -d ' \n' < $DC/run/master.pid || true; }

write_config() {
  mkdir -p $PF/etc $PF/spool $PF/data $PF/tls $DC/run $DC/state
  chown postfix: $PF/data
  if [ ! -f $PF/tls/cert.pem ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
      -subj "/CN=mail.$DOMAIN" -addext "subjectAltName=DNS:mail.$DOMAIN" \
      -keyout $PF/tls/key.pem -out $PF/tls/cert.pem >/dev/null 2>&1 || die "openssl req failed"
    chmod 600 $PF/tls/key.pem
  fi
  # ---------------- Postfix ----------------
  cat > $PF/etc/main.cf <<EOF
compatibility_level = 3.6
queue_directory = $PF/spool
data_directory = $PF/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = $PF/maillog
maillog_file_prefixes = $PF
myhostname = mail.$DOMAIN
mydomain = $DOMAIN
myorigin = \$mydomain
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
# Mailu: mynetworks = 127.0.0.1/32 [::1]/128 SUBNET; the 465 service below does not use it
mynetworks = 127.0.0.1/32
alias_maps =
alias_database =
biff = no
# the local domain's users, so that reject_unlisted_sender has something to check
virtual_mailbox_domains = $DOMAIN
virtual_mailbox_maps = texthash:$PF/etc/vmailbox
virtual_transport = discard:local mail is not part of the submission benchmark
smtpd_sender_login_maps = texthash:$PF/etc/senders
# Mailu: relayhost = {{ RELAYHOST }}
relayhost = $PS_RELAY
smtp_host_lookup = native
disable_dns_lookups = yes
smtp_tls_security_level = may
smtpd_tls_cert_file = $PF/tls/cert.pem
smtpd_tls_key_file = $PF/tls/key.pem
smtpd_tls_mandatory_protocols = >=TLSv1.2
smtpd_tls_protocols = >=TLSv1.2
smtpd_sasl_type = dovecot
smtpd_sasl_path = $DC/run/auth-postfix
smtpd_sasl_authenticated_header = no
EOF
  : > $PF/etc/vmailbox; : > $PF/etc/senders
  for i in $(seq 1 $PS_NUSERS); do
    echo "user$i@$DOMAIN $DOMAIN/user$i/" >> $PF/etc/vmailbox
    echo "user$i@$DOMAIN user$i@$DOMAIN" >> $PF/etc/senders
  done
  # Mailu: core/postfix/conf/outclean_header_filter.cf (pcre there)
  cat > $PF/etc/outclean_header_filter.cf <<'EOF'
/^[[:space:]]*Received:[[:space:]]*from[^(]*\([^)]*\)(.*)$/ REPLACE Received: from authenticated-user (mail.example.test [127.0.0.1])${1}
/^[[:space:]]*User-Agent:/ IGNORE
/^[[:space:]]*X-Enigmail/ IGNORE
/^[[:space:]]*X-Mailer:/ IGNORE
/^[[:space:]]*X-Originating-IP:/ IGNORE
/^[[:space:]]*X-Pgp-Agent:/ IGNORE
/^[[:space:]]*Mime-Version:[[:space:]]*([0-9.]*)[[:space:]]*\(.*\)/ REPLACE MIME-Version: ${1}
EOF
  # master.cf: Debian's stock service list, nothing chrooted; smtpd only on 465 with Mailu's
  # submission restrictions (core/postfix/conf/master.cf, the 10025 service)
  cat > $PF/etc/master.cf <<EOF
127.0.0.1:$PS_SMTPS inet n - n - - smtpd
  -o smtpd_tls_wrappermode=yes
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_client_restrictions=reject_unlisted_sender,reject_authenticated_sender_login_mismatch,permit
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
  -o smtpd_recipient_restrictions=
  -o cleanup_service_name=outclean
pickup     unix  n - n 60   1 pickup
cleanup    unix  n - n -    0 cleanup
outclean   unix  n - n -    0 cleanup
  -o header_checks=regexp:$PF/etc/outclean_header_filter.cf
  -o nested_header_checks=
qmgr       unix  n - n 300  1 qmgr
tlsmgr     unix  - - n 1000? 1 tlsmgr
rewrite    unix  - - n -    - trivial-rewrite
bounce     unix  - - n -    0 bounce
defer      unix  - - n -    0 bounce
trace      unix  - - n -    0 bounce
verify     unix  - - n -    1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n -    - proxymap
proxywrite unix  - - n -    1 proxymap
smtp       unix  - - n -    - smtp
relay      unix  - - n -    - smtp
showq      unix  n - n -    - showq
error      unix  - - n -    - error
retry      unix  - - n -    - error
discard    unix  - - n -    - discard
local      unix  - n n -    - local
virtual    unix  - n n -    - virtual
lmtp       unix  - - n -    - lmtp
anvil      unix  - - n -    1 anvil
scache     unix  - - n -    1 scache
postlog    unix-dgram n - n - 1 postlogd
EOF
  # ---------------- Dovecot: authentication only ----------------
  cat > $DC/dovecot.conf <<EOF
protocols = none
listen = 127.0.0.1
base_dir = $DC/run
state_dir = $DC/state
log_path = $DC/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_username_chars =
passdb {
  driver = passwd-file
  args = scheme=$PS_SCHEME username_format=%u $DC/users
}
userdb {
  driver = static
  args = uid=65534 gid=65534 home=/nonexistent
}
service auth {
  # Postfix's usual Dovecot SASL set-up: a UNIX socket
  unix_listener auth-postfix {
    mode = 0660
    user = postfix
    group = postfix
  }
}
EOF
  : > $DC/users
  for i in $(seq 1 $PS_NUSERS); do
    # shellcheck disable=SC2059
    pw=$(printf "$PS_PASS_FMT" "$i")
    if [ "$PS_SCHEME" = PLAIN ]; then
      echo "user$i@$DOMAIN:{PLAIN}$pw" >> $DC/users
    else
      echo "user$i@$DOMAIN:$(doveadm pw -s "$PS_SCHEME" -p "$pw")" >> $DC/users
    fi
  done
  chmod 640 $DC/users; chgrp dovecot $DC/users
}

case "$cmd" in
config)
  write_config
  ;;
start)
  [ -z "$(pf_master)" ] || [ ! -d /proc/$(pf_master) ] || die "postfix already running in $DIR"
  [ -f $PF/etc/main.cf ] && [ -f $DC/dovecot.conf ] || write_config
  /usr/sbin/dovecot -c $DC/dovecot.conf
  script -qec "/usr/sbin/postfix -c $PF/etc start" /dev/null  # tty so fatal errors reach stderr
  for _ in $(seq 1 50); do
    [ -n "$(pf_master)" ] && [ -n "$(dc_master)" ] && break; sleep 0.1
  done
  echo "postfix master pid $(pf_master)  smtps 127.0.0.1:$PS_SMTPS  relayhost $PS_RELAY  (config $PF/etc, log $PF/maillog)"
  echo "dovecot master pid $(dc_master)  auth $DC/run/auth-postfix  (log $DC/dovecot.log)"
  ;;
stop)
  p=$(pf_master); d=$(dc_master)
  all="$( { [ -n "$p" ] && tree_pids $p; [ -n "$d" ] && tree_pids $d; } | tr '\n' ' ' || true)"
  [ -f $PF/etc/main.cf ] && /usr/sbin/postfix -c $PF/etc stop >/dev/null 2>&1 || true
  [ -f $DC/dovecot.conf ] && /usr/sbin/dovecot -c $DC/dovecot.conf stop >/dev/null 2>&1 || true
  left=""
  for _ in $(seq 1 100); do   # up to 20 s for every process of both trees to go
    left=""; for q in $all; do [ -d /proc/$q ] && left="$left $q"; done
    [ -z "$left" ] && break; sleep 0.2
  done
  for q in $left; do kill -KILL $q 2>/dev/null || true; done
  echo stopped
  ;;
roots)
  echo "$(pf_master) $(dc_master)"
  ;;
queue)
  find $PF/spool/incoming $PF/spool/active $PF/spool/deferred -type f 2>/dev/null | wc -l
  ;;
status)
  echo "postfix: $(p=$(pf_master); [ -n "$p" ] && tree_pids $p | tr '\n' ' ')"
  echo "dovecot: $(d=$(dc_master); [ -n "$d" ] && tree_pids $d | tr '\n' ' ')"
  ;;
pids)
  p=$(pf_master); d=$(dc_master)
  [ -n "$p" ] && tree_pids $p; [ -n "$d" ] && tree_pids $d
  ;;
*) die "unknown command $cmd" ;;
esac
