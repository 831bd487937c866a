"""The console's settings: its address, where each service answers, the load button's bounds."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from services.common.settings import PlatformSettings


class ConsoleSettings(PlatformSettings):
    """MLSD_CONSOLE_HOST, MLSD_CONSOLE_PORT, MLSD_CONSOLE_URLS, ...

    Each service's address comes from that service's own settings (MLSD_FRAUD_PORT, ...), as
    `make run` starts it; MLSD_CONSOLE_URLS overrides some by name where the console reaches them
    under other names (Compose: {"fraud": "http://fraud:8040"}).
    """

    service_name: str = Field("console", pattern=r"^[a-z][a-z0-9_]*$")
    console_host: str = "127.0.0.1"
    console_port: int = Field(8060, ge=1, le=65535)
    console_urls: dict[str, str] = Field(
        default_factory=dict, description="service name -> base URL, overriding the settings'")
    console_timeout_s: float = Field(
        2.0, gt=0, le=30, description="deadline of one call to a service")
    console_scrape_interval_s: float = Field(
        3.0, gt=0, le=60, description="how often every /metrics is read for the diagram")
    console_prometheus_url: str | None = Field(
        None, description="a Prometheus scraping the stack (Compose: http://prometheus:9090): "
                          "the diagram's rates and p99 come from it; without one, from the "
                          "console's own reads of each /metrics")
    console_watch_wait_s: float = Field(
        5.0, gt=0, le=30, description="how long a watch waits for the next list to change")
    console_load_max_duration_s: float = Field(
        60.0, gt=0, le=60, description="the load button's longest run")
    console_load_max_rps: float = Field(
        300.0, gt=0, le=1000, description="the load button's highest arrival rate")
    console_load_worlds_dir: Path | None = Field(
        None, description="the synthetic worlds the load driver draws traffic from: "
                          "<dir>/transactions, <dir>/viewing (default: the driver's own, "
                          ".state/worlds/...)")
    console_reports_dir: Path = Field(
        Path("reports"), description="where `make load` and `make load-sweep` write")
    console_users: tuple[str, ...] = Field(
        ("u42", "user_123", "new-visitor-1"),
        description="the ids offered on the recommendations page: a seeded viewer of the "
                    "synthetic world, the brief's example, a stranger (MovieLens: 196, ...)")
