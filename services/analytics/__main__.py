"""`python -m services.analytics`: the reports from the lake under reports/analytics/."""

from __future__ import annotations

import argparse
from pathlib import Path

from services.analytics.report import write_reports
from services.common.lake.settings import LakeStoreSettings
from services.common.lake.sql import open_lake


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services.analytics")
    parser.add_argument("--out", type=Path, default=Path("reports/analytics"))
    parser.add_argument("--lake-root", type=Path, default=None,
                        help="the lake to read (default: MLSD_LAKE_ROOT, .state/lake)")
    args = parser.parse_args()
    root = args.lake_root or LakeStoreSettings().lake_root
    if not root.is_dir():
        raise SystemExit(f"no lake at {root}: start the stack (make run) so the lake sink "
                         "writes it, or pass --lake-root")
    with open_lake(root) as con:
        for path in write_reports(con, args.out, root):
            print(path)


if __name__ == "__main__":
    main()
