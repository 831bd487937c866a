#!/usr/bin/env bash
# Exit 0 when the broker answers a metadata request (not just an open port).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
PYTHON="${PYTHON:-$REPO_ROOT/.venv/bin/python}"
exec "$PYTHON" -m services.common.probe kafka "$KAFKA_HOST:$KAFKA_PORT"
