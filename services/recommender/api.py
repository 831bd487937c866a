"""Routes: GET /v1/recommendations/{user_id}?k=10, a user in, an explained list out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from services.common.ids import OpaqueId
from services.recommender.schemas import RecommendationsResponse
from services.recommender.service import CacheUse, RecommenderService


async def service(request: Request) -> RecommenderService:
    value: RecommenderService = request.app.state.recommender
    return value


Service = Annotated[RecommenderService, Depends(service)]
UserId = Annotated[OpaqueId, Path(description="any opaque id, percent-encoded (`/` too); an "
                                               "unknown user is not an error: they get popular "
                                               "and trending titles")]
K = Annotated[int, Query(ge=1, le=100, description="how many titles")]
CacheControl = Annotated[str | None, Header(
    description="`no-cache`: a list computed now, not the cached one; `no-store`: do not keep "
                "it (both: the uncached path, as the load tests measure it)")]

router = APIRouter(tags=["recommendations"])


# `:path`: a user id may hold `/` (sent as %2F, which the server decodes before routing).
@router.get("/v1/recommendations/{user_id:path}", response_model=RecommendationsResponse,
            responses={422: {"description": "k outside 1..100, or a user id that is empty, "
                                            "over 128 characters or holds a control character"}},
            summary="a user's recommendations, each with its type and explanation")
async def recommendations(user_id: UserId, recommender: Service, k: K = 10,
                          cache_control: CacheControl = None
                          ) -> Response | RecommendationsResponse:
    # A cache hit is one async Redis read: answered here, its stored JSON as the body.
    lookup = await recommender.from_cache(user_id, k, CacheUse.from_header(cache_control))
    if lookup.body is not None:
        return Response(lookup.body, media_type="application/json")
    # Redis, numpy and the model call block: off the event loop, in one hop for the pipeline.
    return await run_in_threadpool(recommender.recommend, user_id, k, lookup.then, lookup.part)
