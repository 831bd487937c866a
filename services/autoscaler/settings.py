"""The autoscaler's settings: which service, its budget, bounds, hysteresis and where to look."""

from __future__ import annotations

from pydantic import Field

from services.common.settings import PlatformSettings


class AutoscalerSettings(PlatformSettings):
    """MLSD_AUTOSCALER_PORT (the service's port), MLSD_AUTOSCALER_P99_BUDGET_MS, ..."""

    service_name: str = Field("autoscaler", pattern=r"^[a-z][a-z0-9_]*$")
    autoscaler_port: int = Field(8030, ge=1, le=65535,
                                 description="the port the scaled service's workers serve")
    autoscaler_route: str = Field("/v1/recommendations/{user_id:path}",
                                  description="the route whose p99 is held to the budget")
    autoscaler_p99_budget_ms: float = Field(100.0, gt=0)
    autoscaler_queue_budget: int = Field(
        10, ge=0, description="requests queued in the balancer before the window counts as over")
    autoscaler_min_workers: int = Field(1, ge=1, le=64)
    autoscaler_max_workers: int = Field(4, ge=1, le=64)
    autoscaler_interval_s: float = Field(2.0, gt=0, description="one observation window")
    autoscaler_up_after: int = Field(2, ge=1, description="windows over budget in a row")
    autoscaler_down_after: int = Field(
        30, ge=1, description="windows well under it in a row (a minute at 2 s): calm under the "
                              "same load is no reason to remove a worker, and removing one too "
                              "soon brings the overload back")
    autoscaler_cooldown_s: float = Field(10.0, ge=0)
    autoscaler_haproxy_socket: str | None = Field(
        None, description="HAProxy's stats socket; unset: the queue is not measured (0)")
    autoscaler_haproxy_backend: str = "recommender"
