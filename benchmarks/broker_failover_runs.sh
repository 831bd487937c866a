#!/usr/bin/env bash
# Fault 1 in turns with three failover settings (broker_crash_runs.sh says which).
# Usage: benchmarks/broker_failover_runs.sh [ROUNDS]   (default 2: six runs)
exec "$(dirname "$0")/broker_crash_runs.sh" broker_failover "$@"
