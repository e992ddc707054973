#!/bin/bash
# postfix-dovecot.sh — private Postfix 3.7 + Dovecot 2.3 anchor instance on loopback.
#
# Usage:  postfix-dovecot.sh install            # apt-get the Debian packages if missing (root)
#         postfix-dovecot.sh config DIR         # write the config under DIR (start does it if missing)
#         postfix-dovecot.sh start  DIR         # start both daemons (writing the config first if needed)
#         postfix-dovecot.sh stop   DIR         # stop both (postfix -c .. stop / dovecot -c .. stop)
#         postfix-dovecot.sh status DIR         # print PIDs of both process trees
#         postfix-dovecot.sh pids   DIR         # one PID per line: every postfix+dovecot process
#         postfix-dovecot.sh roots  DIR         # the two master PIDs (postfix, dovecot)
#         postfix-dovecot.sh count  DIR USER    # "N NEWEST_CTIME": Maildir files of USER (new+cur)
#                                               #   and the ctime (epoch s, set when Dovecot
#                                               #   renames it out of tmp/) of the newest one
#
# Copied from shared/bench/postfix-dovecot.sh; changes: install is idempotent and also installs
# sqlite3 (the Petrel side counts rows with it), config/roots/count commands, start only writes
# the config when there is none (so timing a start measures the daemons, not this script),
# stop waits for every process of both trees (not just the masters) so that a following run
# starts clean.
#
# Mail path (Mailu's real path, minus rspamd/antivirus/quota/fts):
#   smtp-source -> Postfix smtpd 127.0.0.1:$PB_SMTP -> cleanup -> queue (fsync'd)
#     -> qmgr -> lmtp(8) client -> Dovecot LMTP 127.0.0.1:$PB_LMTP (TCP, like Mailu's
#        "virtual_transport = lmtp:inet:front:2525") -> Maildir DIR/mail/<user>@example.test
#   Dovecot IMAP on 127.0.0.1:$PB_IMAP (plaintext + AUTH PLAIN/LOGIN allowed) reads the same Maildirs.
#   With PB_IMAPS set (bench/imap.sh), also IMAP over implicit TLS on 127.0.0.1:$PB_IMAPS: ssl = yes
#   with a self-signed ECDSA P-256 certificate made by openssl under DIR/dovecot, and Mailu's front
#   TLS settings (proxy.conf: TLSv1.2 minimum, no session tickets). In Mailu the front Dovecot proxy
#   terminates TLS and asks admin over HTTP for every login, then proxies to the backend Dovecot;
#   here one Dovecot does TLS, auth (passwd-file, {PLAIN}) and IMAP, a cheaper path than Mailu's.
#   PB_LOGIN_MIN_AVAIL (default: unset, Dovecot's 0) sets imap-login's process_min_avail.
#   PB_MAIL_FSYNC (default: unset, Dovecot's optimized) sets mail_fsync; imap.sh fills its
#   10,000-message mailbox with never, then rewrites the config and restarts with the default.
#   PB_FTS=xapian (default: unset, no full-text search) loads fts and fts_xapian (Debian's
#   dovecot-fts-xapian, which install then also installs) with fts_xapian = $PB_FTS_XAPIAN
#   (default "partial=3 full=20 verbose=0"), fts_enforced = yes and fts_autoindex = no: the index
#   is built by `doveadm index` (bench/ftsxapian.sh), not after each delivery.
# Durability: all fsync settings are left at their defaults (Postfix fsyncs queue files before
#   the 250 reply; Dovecot mail_fsync=optimized fsyncs each delivered Maildir file before LMTP 250).
# Users: user1..user20@example.test, password "$PB_PASS" (default: secret).
# Must run as root (Postfix mail_owner=postfix, Dovecot drops to $PB_VMAIL for mail access).
set -euo pipefail

PB_SMTP=${PB_SMTP:-12525}
PB_IMAP=${PB_IMAP:-10143}
PB_LMTP=${PB_LMTP:-10024}
PB_IMAPS=${PB_IMAPS:-0}               # 0: no implicit-TLS IMAP listener and ssl = no
PB_LOGIN_MIN_AVAIL=${PB_LOGIN_MIN_AVAIL:-}
PB_MAIL_FSYNC=${PB_MAIL_FSYNC:-}
PB_FTS=${PB_FTS:-}
PB_FTS_XAPIAN=${PB_FTS_XAPIAN:-partial=3 full=20 verbose=0}
PB_PASS=${PB_PASS:-secret}
PB_VMAIL=${PB_VMAIL:-benchmail}      # owner of the Maildirs (uid must be >= 1000)
PB_VMAIL_UID=${PB_VMAIL_UID:-1501}
PB_NUSERS=${PB_NUSERS:-20}
DOMAIN=example.test

die() { echo "postfix-dovecot.sh: $*" >&2; exit 1; }

cmd=${1:-}; DIR=${2:-}
[ "$cmd" = install ] || { [ -n "$DIR" ] || die "usage: $0 config|start|stop|status|pids|roots|count DIR"; }
[ "$(id -u)" = 0 ] || die "must run as root"

if [ "$cmd" = install ]; then
  if [ -x /usr/sbin/postfix ] && [ -x /usr/sbin/dovecot ] && [ -x /usr/sbin/smtp-source ] \
     && [ -e /usr/lib/dovecot/lmtp ] && [ -e /usr/lib/dovecot/imap ] && command -v sqlite3 >/dev/null \
     && { [ "$PB_FTS" != xapian ] || [ -e /usr/lib/dovecot/modules/lib21_fts_xapian_plugin.so ]; }; then
    exit 0
  fi
  export DEBIAN_FRONTEND=noninteractive
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  echo "postfix postfix/mailname string localhost" | debconf-set-selections
  apt-get install -y -q postfix dovecot-imapd dovecot-lmtpd sqlite3 $( [ "$PB_FTS" = xapian ] && echo dovecot-fts-xapian) >&2
  exit 0
fi

DIR=$(readlink -m "$DIR")
PF=$DIR/postfix; DC=$DIR/dovecot; MAIL=$DIR/mail

tree_pids() {  # PID $1 and all its descendants (no /proc/PID/task/*/children on this kernel)
  [ -d /proc/$1 ] || return 0
  ps -e -o pid=,ppid= | awk -v root="$1" '{par[$1]=$2} END {for (p in par) {q=p; while (q!="" && q!=0) {if (q==root) {print p; break}; q=par[q]}}}' | sort -n
}
pf_master() { [ -f $PF/spool/pid/master.pid ] && tr -d ' \n' < $PF/spool/pid/master.pid || true; }
dc_master() { [ -f $DC/run/master.pid ] && tr -d ' \n' < $DC/run/master.pid || true; }

write_config() {
  id "$PB_VMAIL" >/dev/null 2>&1 || useradd -M -d /nonexistent -s /usr/sbin/nologin -u "$PB_VMAIL_UID" "$PB_VMAIL"
  mkdir -p $PF/etc $PF/spool $PF/data $DC/run $DC/state $MAIL
  chown "$PB_VMAIL": $MAIL
  chown postfix: $PF/data
  # ---------------- Postfix ----------------
  cat > $PF/etc/main.cf <<EOF
compatibility_level = 3.6
queue_directory = $PF/spool
data_directory = $PF/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = $PF/maillog
maillog_file_prefixes = $PF
myhostname = mx.example.test
mydomain = example.test
myorigin = \$mydomain
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.1/32
alias_maps =
alias_database =
biff = no
smtpd_helo_required = yes
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
virtual_mailbox_domains = $DOMAIN
virtual_mailbox_maps = texthash:$PF/etc/vmailbox
virtual_alias_maps =
virtual_transport = lmtp:inet:127.0.0.1:$PB_LMTP
lmtp_host_lookup = native
smtp_host_lookup = native
disable_dns_lookups = yes
EOF
  if [ -n "${PB_MILTER:-}" ]; then
    # Mailu's main.cf: rspamd's proxy as the milter, tempfail when it fails.
    cat >> $PF/etc/main.cf <<EOF
smtpd_milters = inet:$PB_MILTER
non_smtpd_milters = \$smtpd_milters
milter_protocol = 6
milter_mail_macros = i {mail_addr} {client_addr} {client_name} {auth_authen}
milter_default_action = tempfail
EOF
  fi
  : > $PF/etc/vmailbox
  for i in $(seq 1 $PB_NUSERS); do echo "user$i@$DOMAIN $DOMAIN/user$i/" >> $PF/etc/vmailbox; done
  # master.cf: Debian's stock service list, but nothing chrooted and smtpd only on loopback:PORT
  cat > $PF/etc/master.cf <<EOF
127.0.0.1:$PB_SMTP inet n - n - - smtpd
pickup     unix  n - n 60   1 pickup
cleanup    unix  n - n -    0 cleanup
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
  # ---------------- Dovecot ----------------
  local ssl_conf="ssl = no"
  if [ "$PB_IMAPS" != 0 ]; then
    command -v openssl >/dev/null || die "PB_IMAPS needs openssl for the self-signed certificate"
    [ -s $DC/key.pem ] || openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -keyout $DC/key.pem -out $DC/cert.pem -days 365 -subj /CN=mail.example.test \
      -addext subjectAltName=DNS:mail.example.test >/dev/null 2>&1 || die "openssl could not make a certificate"
    # Mailu front (core/nginx/dovecot/proxy.conf): TLSv1.2+, client cipher order, no tickets
    ssl_conf="ssl = yes
ssl_cert = <$DC/cert.pem
ssl_key = <$DC/key.pem
ssl_min_protocol = TLSv1.2
ssl_prefer_server_ciphers = no
ssl_options = no_compression no_ticket"
  fi
  local fts_conf=""
  if [ "$PB_FTS" = xapian ]; then
    # default_vsz_limit as Mailu sets it: xapian needs more than Dovecot's 256M
    fts_conf="default_vsz_limit = 2G
mail_plugins = \$mail_plugins fts fts_xapian
plugin {
  fts = xapian
  fts_xapian = $PB_FTS_XAPIAN
  fts_autoindex = no
  fts_enforced = yes
}"
  elif [ -n "$PB_FTS" ]; then
    die "PB_FTS=$PB_FTS: only xapian is known"
  fi
  cat > $DC/dovecot.conf <<EOF
protocols = imap lmtp
listen = 127.0.0.1
base_dir = $DC/run
state_dir = $DC/state
log_path = $DC/dovecot.log
$ssl_conf
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_username_chars =
# Mailu: mail_location = maildir:/mail/%u, mail_home = /mail/%u, mailbox_list_index = yes
mail_location = maildir:$MAIL/%u
mail_home = $MAIL/%u
mailbox_list_index = yes
maildir_stat_dirs = yes
$( [ -n "$PB_MAIL_FSYNC" ] && echo "mail_fsync = $PB_MAIL_FSYNC")
first_valid_uid = 1000
mail_max_userip_connections = 100
$fts_conf
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $DC/users
}
userdb {
  driver = static
  args = uid=$PB_VMAIL gid=$PB_VMAIL
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $PB_IMAP
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $PB_IMAPS
    ssl = yes
  }
  # Mailu runs the login processes in high-performance mode
  service_count = 0
$( [ -n "$PB_LOGIN_MIN_AVAIL" ] && echo "  process_min_avail = $PB_LOGIN_MIN_AVAIL")
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $PB_LMTP
  }
}
protocol lmtp {
  postmaster_address = postmaster@$DOMAIN
}
EOF
  : > $DC/users
  for i in $(seq 1 $PB_NUSERS); do echo "user$i@$DOMAIN:{PLAIN}$PB_PASS" >> $DC/users; done
}

case "$cmd" in
config)
  write_config
  ;;
start)
  [ -z "$(pf_master)" ] || [ ! -d /proc/$(pf_master) ] || die "postfix already running in $DIR"
  [ -f $PF/etc/main.cf ] && [ -f $DC/dovecot.conf ] || write_config
  /usr/sbin/dovecot -c $DC/dovecot.conf
  # `postfix start` creates the queue subdirectories (postfix-script check) on first start
  script -qec "/usr/sbin/postfix -c $PF/etc start" /dev/null  # tty so fatal errors reach stderr
  for _ in $(seq 1 50); do
    [ -n "$(pf_master)" ] && [ -n "$(dc_master)" ] && break; sleep 0.1
  done
  echo "postfix master pid $(pf_master)  smtp 127.0.0.1:$PB_SMTP  (config $PF/etc, log $PF/maillog)"
  echo "dovecot master pid $(dc_master)  imap 127.0.0.1:$PB_IMAP  lmtp 127.0.0.1:$PB_LMTP  (log $DC/dovecot.log)"
  echo "maildirs: $MAIL/userN@$DOMAIN/{new,cur}   users: user1..user$PB_NUSERS@$DOMAIN / $PB_PASS"
  ;;
stop)
  p=$(pf_master); d=$(dc_master)
  all="$( { [ -n "$p" ] && tree_pids $p; [ -n "$d" ] && tree_pids $d; } | tr '\n' ' ' || true)"
  [ -f $PF/etc/main.cf ] && /usr/sbin/postfix -c $PF/etc stop >/dev/null 2>&1 || true
  [ -f $DC/dovecot.conf ] && /usr/sbin/dovecot -c $DC/dovecot.conf stop >/dev/null 2>&1 || true
  for _ in $(seq 1 100); do   # up to 20 s for every process of both trees to go
    left=""; for q in $all; do [ -d /proc/$q ] && left="$left $q"; done
    [ -z "$left" ] && break; sleep 0.2
  done
  # a straggler (e.g. an lmtp process stuck on a lock) is ended by its PID
  for q in $left; do kill -KILL $q 2>/dev/null || true; done
  echo stopped
  ;;
roots)
  echo "$(pf_master) $(dc_master)"
  ;;
count)
  u=${3:?usage: $0 count DIR USER}
  find $MAIL/$u/new $MAIL/$u/cur -maxdepth 1 -type f -printf '%C@\n' 2>/dev/null \
    | awk 'BEGIN{n=0;m=0} {n++; if ($1>m) m=$1} END {printf "%d %.3f\n", n, m}'
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
