#!/usr/bin/env bash
# A PostgreSQL primary and a synchronous streaming standby on this machine, beside any
# server it already runs.
#
#   postgres-replicated.sh start DIR BASE_PORT   primary on BASE, standby on BASE+1
#   postgres-replicated.sh promote DIR           promote the standby (after the primary died)
#   postgres-replicated.sh stop DIR              stop both and remove DIR
#
# Both listen on 127.0.0.1 only (sockets in DIR), trust local connections as user
# "postgres", and run as the "postgres" account. Replication is synchronous
# (synchronous_commit = on, the standby named in synchronous_standby_names): a commit the
# client saw is on the standby, so a failover loses nothing that was confirmed. The
# standby itself asks for no synchronous standby: once promoted it runs alone.
# DIR/replicated.env records the ports and the postmaster pids files.
set -euo pipefail

PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
RUN_AS=${PG_USER:-postgres}

die() { echo "postgres-replicated: $*" >&2; exit 1; }
as_pg() { if [ "$(id -un)" = "$RUN_AS" ]; then "$@"; else setpriv --reuid="$RUN_AS" --regid="$RUN_AS" --init-groups env HOME="$DIR" "$@"; fi; }
base_of() { [ -f "$1/replicated.env" ] || die "no servers in $1"; sed -n 's/^PRIMARY_PORT=//p' "$1/replicated.env"; }

cmd_start() {
  DIR=$1; local base=$2 standby=$(($2 + 1))
  mkdir -p "$DIR"; chown "$RUN_AS" "$DIR"; chmod 700 "$DIR"
  printf 'PRIMARY_PORT=%s\nSTANDBY_PORT=%s\n' "$base" "$standby" > "$DIR/replicated.env"
  as_pg "$PG_BIN/initdb" -D "$DIR/primary" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
  cat >> "$DIR/primary/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $base
unix_socket_directories = '$DIR'
wal_level = replica
max_wal_senders = 5
wal_keep_size = 256MB
hot_standby = on
synchronous_commit = on
synchronous_standby_names = 'standby'
fsync = off
max_connections = 200
CONF
  echo "host replication postgres 127.0.0.1/32 trust" >> "$DIR/primary/pg_hba.conf"
  as_pg "$PG_BIN/pg_ctl" -D "$DIR/primary" -l "$DIR/primary.log" -w start >/dev/null
  as_pg "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$base" -U postgres -D "$DIR/standby" -R -X stream --no-sync
  cat >> "$DIR/standby/postgresql.conf" <<CONF
port = $standby
# The name the primary's synchronous_standby_names waits for.
cluster_name = 'standby'
synchronous_standby_names = ''
CONF
  as_pg "$PG_BIN/pg_ctl" -D "$DIR/standby" -l "$DIR/standby.log" -w start >/dev/null
  # Synchronous from here on: wait until the primary sees its standby as such.
  for _ in $(seq 1 60); do
    state=$(as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$base" -U postgres -Atc \
      "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby'" || true)
    [ "$state" = sync ] && { echo "primary 127.0.0.1:$base, synchronous standby 127.0.0.1:$standby"; return 0; }
    sleep 0.5
  done
  die "the standby never became synchronous (see $DIR/*.log)"
}

cmd_promote() {
  DIR=$1
  as_pg "$PG_BIN/pg_ctl" -D "$DIR/standby" -w promote >/dev/null
}

cmd_stop() {
  DIR=$1
  for role in standby primary; do
    if [ -f "$DIR/$role/postmaster.pid" ]; then
      as_pg "$PG_BIN/pg_ctl" -D "$DIR/$role" -m immediate -w stop >/dev/null 2>&1 || {
        pid=$(head -1 "$DIR/$role/postmaster.pid" 2>/dev/null || true)
        [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
      }
    fi
  done
  rm -rf "$DIR"
}

case "${1:-}" in
  start) [ $# = 3 ] || die "usage: $0 start DIR BASE_PORT"; cmd_start "$2" "$3" ;;
  promote) [ $# = 2 ] || die "usage: $0 promote DIR"; cmd_promote "$2" ;;
  stop) [ $# = 2 ] || die "usage: $0 stop DIR"; cmd_stop "$2" ;;
  *) die "usage: $0 start|promote|stop ..." ;;
esac
