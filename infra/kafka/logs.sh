#!/usr/bin/env bash
# Follow the broker's log (the local stack writes it under .state/logs/).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
exec tail -n "${LINES:-100}" -F "$REPO_ROOT/.state/logs/kafka.log"
