#!/usr/bin/env bash
# Fault 1 in turns with ingest's spool on and off (broker_crash_runs.sh says how).
# Usage: benchmarks/ingest_spool_runs.sh [ROUNDS]   (default 2: four runs)
exec "$(dirname "$0")/broker_crash_runs.sh" ingest_spool "$@"
