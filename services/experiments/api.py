"""Routes: definitions (read; write with the admin token), assignments, results and their plot.

Routes are plain `def`: each does blocking Redis I/O, which FastAPI runs on its thread pool.
"""

from __future__ import annotations

import hmac
import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.common.ids import OpaqueId
from services.designs.experiments.definitions import KEY_PATTERN, ExperimentDefinition
from services.experiments.errors import NotPoolable
from services.experiments.schemas import (
    AssignmentOut,
    ErrorResponse,
    ExperimentList,
    ExperimentOut,
    ResultsOut,
    StatusChange,
)
from services.experiments.service import ExperimentsService
from services.experiments.settings import ExperimentsSettings


# Async dependencies run inline on the event loop: a sync one would cost a thread hop each.
async def service(request: Request) -> ExperimentsService:
    value: ExperimentsService = request.app.state.experiments
    return value


_bearer = HTTPBearer(auto_error=False, description="MLSD_EXPERIMENTS_ADMIN_TOKEN")


async def require_admin(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
    """401 without a Bearer token, 403 with a wrong one."""
    settings: ExperimentsSettings = request.app.state.settings
    if credentials is None:
        raise HTTPException(401, "an 'Authorization: Bearer <admin token>' header is required",
                            headers={"WWW-Authenticate": "Bearer"})
    expected = settings.experiments_admin_token.get_secret_value().encode()
    if not hmac.compare_digest(credentials.credentials.encode(), expected):
        raise HTTPException(403, "the admin token is not valid")


Service = Annotated[ExperimentsService, Depends(service)]
Key = Annotated[str, Path(pattern=KEY_PATTERN, description="the experiment's key")]
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "no experiment has this key"},
    422: {"description": "a parameter or field is malformed; `errors` names each"},
    503: {"model": ErrorResponse, "description": "Redis did not answer"},
}
ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    401: {"model": ErrorResponse, "description": "no Bearer token"},
    403: {"model": ErrorResponse, "description": "wrong Bearer token"},
    409: {"model": ErrorResponse, "description": "the change conflicts with what already ran "
                                                 "or with another experiment's namespace range"},
}

router = APIRouter(tags=["experiments"], responses=ERRORS)
admin = APIRouter(tags=["admin"], responses=ADMIN_ERRORS, dependencies=[Depends(require_admin)])


@router.get("/v1/experiments", summary="every definition, sorted by key")
def list_experiments(experiments: Service) -> ExperimentList:
    return ExperimentList(experiments=[ExperimentOut.from_definition(d)
                                       for d in experiments.definitions()])


@router.get("/v1/experiments/{key}", summary="one definition")
def get_experiment(key: Key, experiments: Service) -> ExperimentOut:
    return ExperimentOut.from_definition(experiments.definition(key))


@admin.put("/v1/experiments/{key}", status_code=200,
           responses={201: {"model": ExperimentOut, "description": "created"}},
           summary="create or replace a definition (the body's key must be the path's)")
def put_experiment(key: Key, definition: ExperimentDefinition, experiments: Service,
                   response: Response) -> ExperimentOut:
    if experiments.put(key, definition):
        response.status_code = 201
    return ExperimentOut.from_definition(definition)


@admin.put("/v1/experiments/{key}/status",
           summary="draft -> running -> stopped (and stopped -> running)")
def set_status(key: Key, change: StatusChange, experiments: Service) -> ExperimentOut:
    return ExperimentOut.from_definition(experiments.set_status(key, change.status))


@router.get("/v1/assignments",
            summary="a unit's variation in one experiment, or in every running one (a list)")
def assignments(
        experiments: Service,
        unit_id: Annotated[OpaqueId, Query(description="the hash attribute's value: any "
                                                       "opaque id")],
        experiment: Annotated[str | None, Query(pattern=KEY_PATTERN)] = None,
) -> AssignmentOut | list[AssignmentOut]:
    answered = [AssignmentOut.from_assignment(a)
                for a in experiments.assign(unit_id, experiment)]
    return answered[0] if experiment is not None else answered


@router.get("/v1/experiments/{key}/results",
            summary="per variation: units, conversions, rate with 95 % interval, lift, SRM")
def results(key: Key, experiments: Service) -> ResultsOut:
    return ResultsOut.of(experiments.results(key))


@router.get("/v1/results/pooled",
            summary="replications of one test (same variations, each its own split) as one "
                    "result: their counts summed, then the same statistics")
def pooled_results(experiments: Service, experiment: Annotated[
        list[str], Query(min_length=1, max_length=20,
                         description="the replications' keys, repeated")],
                   until_ms: Annotated[list[int] | None, Query(
                       description="per key, in order: count it as of this instant (epoch ms, "
                                   "when it stopped), not now")] = None) -> ResultsOut:
    for key in experiment:
        if not re.fullmatch(KEY_PATTERN, key):
            raise NotPoolable(f"{key!r} is not an experiment key ({KEY_PATTERN})")
    if until_ms is not None and len(until_ms) != len(experiment):
        raise NotPoolable(f"{len(until_ms)} until_ms for {len(experiment)} experiments: one "
                          "each, in the same order")
    return ResultsOut.of(experiments.pooled_results(experiment, until_ms))


@router.get("/v1/experiments/{key}/results.png", response_class=Response,
            responses={200: {"content": {"image/png": {}}}},
            summary="cumulative conversion rate of each variation over time, 95 % band (PNG)")
def results_plot(key: Key, experiments: Service) -> Response:
    return Response(experiments.results_plot(key), media_type="image/png",
                    headers={"Cache-Control": "no-store"})
