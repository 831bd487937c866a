"""Where the lake is: MLSD_LAKE_ROOT, read by the sink that writes it and the jobs that read it."""

from __future__ import annotations

from pathlib import Path

from services.common.settings import PlatformSettings


class LakeStoreSettings(PlatformSettings):
    """MLSD_LAKE_ROOT: the lake's root directory (.state/lake locally, a volume in compose)."""

    lake_root: Path = Path(".state/lake")
