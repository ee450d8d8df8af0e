#!/usr/bin/env bash
# A three-node RabbitMQ cluster on this machine, beside any broker it already runs.
#
#   rabbitmq-cluster.sh start DIR BASE_PORT   start three nodes and cluster them
#   rabbitmq-cluster.sh start-node DIR N      start node N again (after a kill)
#   rabbitmq-cluster.sh ctl DIR N ARGS...     rabbitmqctl against node N
#   rabbitmq-cluster.sh stop DIR              stop every node and remove DIR
#
# Everything lives under DIR and on 127.0.0.1: node N is "cN-BASE@localhost", takes AMQP
# on BASE+N and Erlang distribution on BASE+10+N, and the cluster's own epmd listens on
# BASE+20 (the machine's epmd, broker and data are never touched). Each node runs as its
# own numeric user id (BASE+N, no account needed) so that a partition can drop exactly
# that node's traffic with iptables' owner match (chaos/faults.py); run as root for that.
# DIR/cluster.env records the ports for the tests and the chaos suite.
set -euo pipefail

RABBIT_BIN=${RABBIT_BIN:-/usr/lib/rabbitmq/bin}
NODES=3

die() { echo "rabbitmq-cluster: $*" >&2; exit 1; }

node_env() {  # node_env DIR BASE N: the environment of node N, one VAR=value a line
  local dir=$1 base=$2 n=$3 home=$1/node$3
  cat <<ENV
HOME=$home
PATH=/usr/sbin:/usr/bin:/sbin:/bin
LANG=C.UTF-8
ERL_EPMD_PORT=$((base + 20))
ERL_EPMD_ADDRESS=127.0.0.1
RABBITMQ_NODENAME=c$n-$base@localhost
RABBITMQ_USE_LONGNAME=false
RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
RABBITMQ_NODE_PORT=$((base + n))
RABBITMQ_DIST_PORT=$((base + 10 + n))
RABBITMQ_CONF_ENV_FILE=$home/rabbitmq-env.conf
RABBITMQ_CONFIG_FILE=$home/rabbitmq.conf
RABBITMQ_ADVANCED_CONFIG_FILE=$home/advanced.config
RABBITMQ_ENABLED_PLUGINS_FILE=$home/enabled_plugins
RABBITMQ_MNESIA_BASE=$home/mnesia
RABBITMQ_LOG_BASE=$home/log
RABBITMQ_PID_FILE=$home/beam.pid
RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}
RABBITMQ_CTL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}
ENV
}

in_env() {  # in_env DIR BASE N COMMAND...: run COMMAND in node N's environment
  local dir=$1 base=$2 n=$3; shift 3
  local -a vars=()
  while IFS= read -r line; do vars+=("$line"); done < <(node_env "$dir" "$base" "$n")
  env -i "${vars[@]}" "$@"
}

base_of() { [ -f "$1/cluster.env" ] || die "no cluster in $1"; sed -n 's/^BASE_PORT=//p' "$1/cluster.env"; }

prepare_node() {
  local dir=$1 base=$2 n=$3 home=$1/node$3 uid=$(($2 + $3))
  mkdir -p "$home/mnesia" "$home/log"
  : > "$home/rabbitmq-env.conf"
  echo '[].' > "$home/enabled_plugins"
  echo '[].' > "$home/advanced.config"
  cat > "$home/rabbitmq.conf" <<CONF
listeners.tcp.1 = 127.0.0.1:$((base + n))
# A node cut off from the other two stops serving rather than diverging (three nodes).
cluster_partition_handling = pause_minority
# Peers are declared down after about this many seconds without traffic (RabbitMQ's
# own Jepsen runs use 15; the default 60 makes a test wait a minute per partition).
net_ticktime = 15
disk_free_limit.absolute = 50MB
vm_memory_high_watermark.relative = 0.25
log.console = false
log.file.level = warning
CONF
  cp "$dir/cookie" "$home/.erlang.cookie"
  chown -R "$uid:$uid" "$home"
  chmod 400 "$home/.erlang.cookie"
}

start_node() {
  local dir=$1 base=$2 n=$3 uid=$(($2 + $3))
  rm -f "$dir/node$n/beam.pid"
  # The open-file limit raised first: about three handles per quorum queue.
  (cd "$dir/node$n" && ulimit -n "$(ulimit -Hn)" && \
    in_env "$dir" "$base" "$n" setpriv --reuid="$uid" --regid="$uid" --clear-groups \
      "$RABBIT_BIN/rabbitmq-server" -detached) >/dev/null 2>&1 || true
  ctl "$dir" "$n" wait --timeout 60 "$dir/node$n/beam.pid" >/dev/null \
    || die "node c$n did not start (see $dir/node$n/log)"
}

ctl() {  # ctl DIR N ARGS...
  local dir=$1 n=$2 base; base=$(base_of "$1"); shift 2
  HOME_CTL="$dir/ctl"
  in_env "$dir" "$base" "$n" HOME="$HOME_CTL" "$RABBIT_BIN/rabbitmqctl" \
    -n "c$n-$base@localhost" "$@"
}

cmd_start() {
  local dir=$1 base=$2
  [ "$(id -u)" = 0 ] || die "run as root (each node runs as its own user id)"
  mkdir -p "$dir/ctl"
  head -c 30 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F > "$dir/cookie"
  cp "$dir/cookie" "$dir/ctl/.erlang.cookie"; chmod 400 "$dir/ctl/.erlang.cookie"
  printf 'BASE_PORT=%s\nEPMD_PORT=%s\n' "$base" "$((base + 20))" > "$dir/cluster.env"
  for n in 1 2 3; do
    printf 'NODE%s_AMQP_PORT=%s\nNODE%s_DIST_PORT=%s\nNODE%s_UID=%s\n' \
      "$n" "$((base + n))" "$n" "$((base + 10 + n))" "$n" "$((base + n))" >> "$dir/cluster.env"
  done
  # The cluster's own epmd, on its own port, so that stopping leaves nothing behind.
  in_env "$dir" "$base" 1 epmd -daemon -address 127.0.0.1 -port "$((base + 20))"
  for n in 1 2 3; do prepare_node "$dir" "$base" "$n"; done
  for n in 1 2 3; do start_node "$dir" "$base" "$n"; done
  for n in 2 3; do
    ctl "$dir" "$n" stop_app >/dev/null
    ctl "$dir" "$n" join_cluster "c1-$base@localhost" >/dev/null
    ctl "$dir" "$n" start_app >/dev/null
  done
  ctl "$dir" 1 await_online_nodes 3 --timeout 60 >/dev/null
  echo "cluster of $NODES nodes up: AMQP on 127.0.0.1:$((base + 1))-$((base + 3))"
}

cmd_stop() {
  local dir=$1 base pid
  [ -f "$dir/cluster.env" ] || { rm -rf "$dir"; return 0; }
  base=$(base_of "$dir")
  for n in 1 2 3; do
    pid=$(cat "$dir/node$n/beam.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill -CONT "$pid" 2>/dev/null || true  # a paused node cannot stop
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
  # Whatever else runs as the nodes' user ids (erl_child_setup, inet_gethost, epmd's
  # children) goes too; the ids are ours alone.
  for n in 1 2 3; do pkill -9 -U "$((base + n))" 2>/dev/null || true; done
  in_env "$dir" "$base" 1 epmd -port "$((base + 20))" -kill >/dev/null 2>&1 || true
  rm -rf "$dir"
}

case "${1:-}" in
  start) [ $# = 3 ] || die "usage: $0 start DIR BASE_PORT"; cmd_start "$2" "$3" ;;
  start-node) [ $# = 3 ] || die "usage: $0 start-node DIR N"; start_node "$2" "$(base_of "$2")" "$3" ;;
  ctl) [ $# -ge 3 ] || die "usage: $0 ctl DIR N ARGS..."; d=$2; n=$3; shift 3; ctl "$d" "$n" "$@" ;;
  stop) [ $# = 2 ] || die "usage: $0 stop DIR"; cmd_stop "$2" ;;
  *) die "usage: $0 start|start-node|ctl|stop ..." ;;
esac
