#!/usr/bin/env bash
# Fault 1 with the active controller killed, in turns with two election timeouts
# (broker_crash_runs.sh says which).
# Usage: benchmarks/controller_election_runs.sh [ROUNDS]   (default 2: four runs)
exec "$(dirname "$0")/broker_crash_runs.sh" controller_election "$@"
