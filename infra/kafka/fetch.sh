#!/usr/bin/env bash
# Fetch the pinned Kafka broker jars from Maven Central once, into the ignored .cache/ folder.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

if [[ -f "$KAFKA_LIBS/.complete" ]]; then
  exit 0
fi
command -v mvn >/dev/null || { echo "fetch.sh: Maven (mvn) is required to fetch Kafka $KAFKA_VERSION" >&2; exit 1; }
command -v java >/dev/null || { echo "fetch.sh: Java 17+ is required to run Kafka $KAFKA_VERSION" >&2; exit 1; }

echo "fetching Kafka $KAFKA_VERSION jars from Maven Central into $KAFKA_LIBS"
rm -rf "$KAFKA_LIBS"
mkdir -p "$KAFKA_LIBS"
mvn --batch-mode --quiet -Dstyle.color=never -f "$KAFKA_DIR/pom.xml" \
  dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS"
touch "$KAFKA_LIBS/.complete"
echo "Kafka $KAFKA_VERSION: $(ls "$KAFKA_LIBS" | wc -l) jars"
