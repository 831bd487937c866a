"""`python -m services.lake`: the lake sink with probes on 8065; `... compact`: compact now."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

from services.common.http import serve
from services.common.telemetry import configure_logging
from services.lake.app import create_app
from services.lake.compaction import compact_closed_hours
from services.lake.events import LAKE_TOPICS
from services.lake.settings import LakeSettings


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services.lake")
    parser.add_argument("command", nargs="?", choices=("serve", "compact"), default="serve")
    parser.add_argument("--grace-s", type=float, default=None,
                        help="compact hours that ended this long ago (default: the setting)")
    args = parser.parse_args()
    settings = LakeSettings()
    if args.command == "serve":
        serve(create_app, settings, settings.lake_host, settings.lake_port)
        return
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    grace = settings.lake_compact_grace_s if args.grace_s is None else args.grace_s
    keep = None if settings.lake_keep_days is None else timedelta(days=settings.lake_keep_days)
    done = compact_closed_hours(settings.lake_root, LAKE_TOPICS, datetime.now(UTC),
                                timedelta(seconds=grace), keep)
    print(f"compacted {done.hours} hour(s) from {done.merged_files} part file(s); "
          f"{done.removed_leftovers} leftover(s) removed; {done.expired_days} day(s) expired")


if __name__ == "__main__":
    main()
