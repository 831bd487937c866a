#!/usr/bin/env bash
# One node of the cluster topology's PostgreSQL (docs/adr/0010-postgres-primary-and-standby.md):
# pg_auto_failover's monitor, or a data node (primary or hot standby: the monitor assigns the
# roles). pg_autoctl runs in the foreground and runs its PostgreSQL as a child (supervisord and
# the test harness own the one process). The first start creates the node; every later one runs
# it again, and a node that was primary comes back as a standby if the other took over.
#
#   PG_HA_ROLE          monitor | node
#   PG_HA_NAME          the node's name in the formation (postgres-1, postgres-2)
#   PG_HA_PORT          its PostgreSQL port
#   PG_HA_DIR           its folder: data/ (PGDATA), autoctl/ (pg_autoctl's config and state)
#   or, for data node N of supervisord.cluster.conf: PG_HA_NODE=N, PG_HA_BASE_PORT and
#   PG_HA_STATE_DIR (postgres-N, on port base + N - 1, in STATE_DIR/postgres-N)
#   PG_HA_MONITOR_PORT  (nodes) the monitor's port
#   MLSD_POSTGRES_DB    (nodes) the database the formation serves
#   PG_HA_HOSTNAME, PG_HA_MONITOR_HOST, PG_HA_LISTEN: 127.0.0.1 unless given (docker compose
#   gives each container's name and listens on all its addresses)
#   PG_HA_TRUST_NETWORK (compose): connections from this network are trusted too (samenet)
#
# Failover timing, on the monitor (PG_HA_*_MS) and each node (PG_HA_PARTITION_TIMEOUT_S). The
# monitor checks each node every second and calls one unreachable for 5 s unhealthy, then
# promotes the standby; the new primary takes writes once the old one has had 10 s to demote
# itself, which it does alone after 5 s without the monitor and the standby (pg_autoctl's
# network_partition_timeout, which must stay below primary_demote_timeout: two primaries
# otherwise). pg_auto_failover's defaults (5 s, 20 s, 30 s, 20 s) are for networks across zones.
set -euo pipefail
ROLE="${PG_HA_ROLE:?monitor or node}"
if [[ -n "${PG_HA_NODE:-}" ]]; then
  PG_HA_NAME="postgres-$PG_HA_NODE"
  PG_HA_PORT="$(( ${PG_HA_BASE_PORT:?} + PG_HA_NODE - 1 ))"
  PG_HA_DIR="${PG_HA_STATE_DIR:?}/$PG_HA_NAME"
fi
NAME="${PG_HA_NAME:-$ROLE}"
PORT="${PG_HA_PORT:?its PostgreSQL port}"
DIR="${PG_HA_DIR:?its folder}"
PG_DB="${MLSD_POSTGRES_DB:-mlsd}"

# Debian's binaries, off the PATH. pg_autoctl finds pg_controldata and the rest beside pg_ctl,
# so the real folder comes first, not a symbolic link to pg_ctl alone.
newest="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
[[ -n "$newest" ]] && PATH="$newest:$PATH"
command -v pg_autoctl >/dev/null && command -v pg_ctl >/dev/null || {
  echo "pg_autoctl not found: run 'make setup' as root (Debian's pg-auto-failover-cli and" \
       "postgresql-<major>-auto-failover)" >&2
  exit 1
}

as_owner=()
mkdir -p "$DIR/autoctl"
DIR="$(cd "$DIR" && pwd)"  # pg_autoctl keys its state by the absolute PGDATA
if [[ "$(id -u)" == 0 ]]; then  # PostgreSQL refuses root: the node runs as `postgres`
  as_owner=(setpriv --reuid=postgres --regid=postgres --init-groups --)
  chown postgres:postgres "$DIR" "$DIR/autoctl"
fi
# pg_autoctl keeps its config and state under XDG folders keyed by PGDATA: the node's own
autoctl=(env HOME="$DIR/autoctl" XDG_CONFIG_HOME="$DIR/autoctl/config"
         XDG_DATA_HOME="$DIR/autoctl/data" XDG_RUNTIME_DIR="$DIR/autoctl/run" PATH="$PATH"
         PGDATA="$DIR/data" pg_autoctl)
ctl() { "${as_owner[@]}" "${autoctl[@]}" "$@"; }

# Loopback only unless told. Connections from 127.0.0.1 are trusted (pg_autoctl --auth trust), and
# in compose from the containers' network: see the ADR for what production does instead.
HOSTNAME_="${PG_HA_HOSTNAME:-127.0.0.1}"
common=(--pgdata "$DIR/data" --pgport "$PORT" --hostname "$HOSTNAME_"
        --listen "${PG_HA_LISTEN:-127.0.0.1}"
        --auth trust --no-ssl --pgctl "$(readlink -f "$(command -v pg_ctl)")")
if [[ ! -s "$DIR/data/PG_VERSION" ]]; then
  if [[ "$ROLE" == monitor ]]; then
    ctl create monitor "${common[@]}"
    cat >> "$DIR/data/postgresql.conf" <<EOF
pgautofailover.health_check_period = ${PG_HA_HEALTH_CHECK_PERIOD_MS:-1000}
pgautofailover.health_check_timeout = ${PG_HA_HEALTH_CHECK_TIMEOUT_MS:-1000}
pgautofailover.health_check_retry_delay = ${PG_HA_HEALTH_CHECK_RETRY_DELAY_MS:-500}
pgautofailover.node_considered_unhealthy_timeout = ${PG_HA_UNHEALTHY_TIMEOUT_MS:-5000}
pgautofailover.primary_demote_timeout = ${PG_HA_PRIMARY_DEMOTE_TIMEOUT_MS:-10000}
EOF
  else
    monitor="postgres://autoctl_node@${PG_HA_MONITOR_HOST:-127.0.0.1}:${PG_HA_MONITOR_PORT:?the monitor port}/pg_auto_failover?sslmode=disable"
    # Registers with the monitor and initialises: the first node as the primary (initdb), a later
    # one as its standby (pg_basebackup from the primary; the harness checkpoints the primary so
    # the backup need not wait for the next timed checkpoint).
    ctl create postgres "${common[@]}" --name "$NAME" --dbname "$PG_DB" --monitor "$monitor" \
      --candidate-priority 50 --replication-quorum true
    ctl config set timeout.network_partition_timeout "${PG_HA_PARTITION_TIMEOUT_S:-5}" >/dev/null
  fi
  if [[ -n "${PG_HA_TRUST_NETWORK:-}" ]]; then
    echo "host all all ${PG_HA_TRUST_NETWORK} trust" >> "$DIR/data/pg_hba.conf"
  fi
  echo "postgres-ha: $ROLE $NAME created in $DIR"
fi
exec "${as_owner[@]}" "${autoctl[@]}" run
