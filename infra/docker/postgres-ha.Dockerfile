# The cluster profile's PostgreSQL nodes (docker-compose.yml: postgres-monitor, postgres-1,
# postgres-2): the image of the single `postgres` service with pg_auto_failover added, the
# version `make setup` installs from Debian for the local cluster topology
# (docs/adr/0010-postgres-primary-and-standby.md). infra/postgres/ha-node.sh runs each node.
FROM postgres:15.18-bookworm

RUN apt-get update \
    && apt-get install -y --no-install-recommends \
       pg-auto-failover-cli=2.0-2+b1 postgresql-15-auto-failover=2.0-2+b1 \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/lib/postgresql/ha && chown postgres:postgres /var/lib/postgresql/ha

USER postgres
