#!/bin/sh
# Starts a throwaway PostgreSQL server on 127.0.0.1 for the sqlstore tests
# and prints its DSN on stdout (everything else goes to stderr):
#
#   export PETREL_TEST_PG_DSN="$(internal/store/sqlstore/testdata/pg-start.sh)"
#   go test ./internal/store/sqlstore/
#   internal/store/sqlstore/testdata/pg-start.sh stop
#
# Settings: PG_BIN (default: the newest /usr/lib/postgresql/*/bin),
# PG_PORT (default 55432), PG_DIR (default /tmp/petrel-pg-$PG_PORT).
# Running it again while the server is up just prints the DSN. As root the
# server runs as the postgres user (initdb refuses root).
set -eu

PG_PORT=${PG_PORT:-55432}
PG_DIR=${PG_DIR:-/tmp/petrel-pg-$PG_PORT}
if [ -z "${PG_BIN:-}" ]; then
	PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
fi
if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/pg_ctl" ]; then
	echo "pg-start: no PostgreSQL binaries (set PG_BIN)" >&2
	exit 1
fi

as_pg() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

DSN="postgres://postgres@127.0.0.1:$PG_PORT/petrel_test?sslmode=disable"

if [ "${1:-}" = stop ]; then
	if [ -f "$PG_DIR/data/postmaster.pid" ]; then
		as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >&2
	fi
	exit 0
fi

if [ -f "$PG_DIR/data/postmaster.pid" ] && as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" status >/dev/null 2>&1; then
	echo "$DSN"
	exit 0
fi

mkdir -p "$PG_DIR"
if [ "$(id -u)" = 0 ]; then
	chown postgres "$PG_DIR"
fi
if [ ! -f "$PG_DIR/data/PG_VERSION" ]; then
	as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres -A trust -E UTF8 --no-locale >&2
fi
# fsync stays on: the store's durability is part of what is tested.
as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
	-o "-h 127.0.0.1 -p $PG_PORT -k $PG_DIR -c max_connections=200" start >&2
if ! as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc \
	"SELECT 1 FROM pg_database WHERE datname = 'petrel_test'" postgres | grep -q 1; then
	as_pg "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres petrel_test >&2
fi
echo "$DSN"
