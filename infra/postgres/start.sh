#!/usr/bin/env bash
# Run PostgreSQL in the foreground (supervisord and the test harness own the process). The first
# start creates the cluster: initdb with the project's role and password, then its database.
# PostgreSQL refuses to run as root: as root, the server runs as the `postgres` OS user (setpriv
# execs it in place, so SIGTERM from the supervisor reaches the server itself: a smart shutdown).
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PG_PORT="${MLSD_POSTGRES_PORT:-5433}"
PG_DATA="${POSTGRES_DATA_DIR:-$REPO_ROOT/.state/postgres}"
PG_USER="${MLSD_POSTGRES_USER:-mlsd}"
PG_DB="${MLSD_POSTGRES_DB:-mlsd}"
PG_PASSWORD="${MLSD_POSTGRES_PASSWORD:-mlsd}"

# Debian's postgresql puts its binaries in /usr/lib/postgresql/<major>/bin, off the PATH.
if ! command -v postgres >/dev/null; then
  newest="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
  [[ -n "$newest" ]] && PATH="$newest:$PATH"
fi
command -v postgres >/dev/null && command -v initdb >/dev/null || {
  echo "postgres not found: run 'make setup' as root, or install Debian's postgresql package" >&2
  exit 1
}

as_owner=()
if [[ "$(id -u)" == 0 ]]; then
  as_owner=(setpriv --reuid=postgres --regid=postgres --init-groups --)
fi
mkdir -p "$PG_DATA"
if [[ "$(id -u)" == 0 ]]; then
  chown postgres:postgres "$PG_DATA"
  "${as_owner[@]}" test -x "$PG_DATA" || {
    echo "the postgres user cannot reach $PG_DATA: a parent folder is closed to it" >&2; exit 1; }
fi
chmod 700 "$PG_DATA"

if [[ ! -s "$PG_DATA/PG_VERSION" ]]; then
  pwfile="$(mktemp)"
  trap 'rm -f "$pwfile"' EXIT
  printf '%s\n' "$PG_PASSWORD" > "$pwfile"
  [[ "$(id -u)" == 0 ]] && chown postgres "$pwfile"
  # Connections over TCP need the password (scram); the server's own socket, in the data
  # folder, is for its owner only.
  "${as_owner[@]}" initdb -D "$PG_DATA" -U "$PG_USER" --pwfile="$pwfile" -E UTF8 --no-locale \
    --auth-host=scram-sha-256 --auth-local=trust >/dev/null
  echo "CREATE DATABASE \"$PG_DB\" OWNER \"$PG_USER\"" \
    | "${as_owner[@]}" postgres --single -D "$PG_DATA" -c log_min_messages=warning \
      -c log_checkpoints=off postgres >/dev/null
  echo "postgres: cluster created in $PG_DATA (role $PG_USER, database $PG_DB)"
fi
exec "${as_owner[@]}" postgres -D "$PG_DATA" -p "$PG_PORT" -c listen_addresses=127.0.0.1 \
  -c unix_socket_directories="$PG_DATA" -c max_connections=100 -c shared_buffers=128MB \
  -c log_min_messages=warning -c log_checkpoints=off -c log_connections=off
