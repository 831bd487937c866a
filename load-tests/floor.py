"""The bare-endpoint floor: both designs' endpoints on plain FastAPI under one uvicorn process,
answering fixed bodies the size of the real ones, so a sweep can show what the framework alone
allows beside what a service does.

    .venv/bin/python load-tests/floor.py --port 8099

`POST /v1/score` reads the body (the server receives it either way) and answers a typical
approval; `GET /v1/recommendations/{user_id}?k=10` answers k titles for the user asked about
(the load test checks both). Both bodies are built once, through the services' own response
schemas, so their shape and size follow the real answers.

What the floor leaves out, on purpose: the platform's middleware (`create_service_app`'s request
metrics), parsing and validating the request, the thread hop to the blocking pipeline, and
serialising a response model. It is the same stack underneath as the services (FastAPI on one
uvicorn process, uvloop and httptools when installed, no access log), so the gap between the
floor and a service is what the service does per request, the platform's middleware included.
With --platform the floor runs behind that middleware too (`sweep.py --floor-platform`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Annotated

import uvicorn
from fastapi import APIRouter, FastAPI, Header, Query, Request
from fastapi.responses import Response

from services.common.http import create_service_app
from services.common.telemetry import Metrics
from services.fraud.schemas import ReasonOut, ScoreResponse
from services.recommender.explain import RecommendationType
from services.recommender.schemas import RecommendationsResponse, RecommendedItem, ServedFrom

MAX_K = 100  # what the recommender accepts (viewers.K_RANGE)
JSON = "application/json"


def fraud_answer() -> bytes:
    """A typical approval: the model's score and its top three factors (the policy lists three),
    no rule hits, as the fraud service writes it (about 900 bytes)."""
    factors = [("amount_to_customer_avg_30d", 1.84, 1.02, 0.011),
               ("terminal_risk_30d", 0.031, 0.012, 0.008),
               ("customer_nb_tx_1d", 4.0, 2.0, 0.005)]
    reasons = [ReasonOut(code="ML_SCORE", text="fraud model v3: probability 0.06, weighted x0.7",
                         contribution=0.0423, source="model")]
    reasons += [ReasonOut(code=f"ML_{name.upper()}",
                          text=f"{name} = {value:.4g} (typical {typical:.4g}) raised the fraud "
                               f"probability by {effect:.2f}",
                          contribution=round(0.7 * effect, 4), source="model")
                for name, value, typical, effect in factors]
    answer = ScoreResponse(
        transaction_id="lt-5f0c3a9e2b7d41c88e6a0f1d2c3b4a59", risk_score=0.0423,
        risk_level="low", action="approve", reasons=reasons, ml_score=0.0604, rule_hits=[],
        confidence=0.9, model_version=3, policy_version="2026-11-21.1", degraded=False,
        degraded_reasons=[], replayed=False, processing_time_ms=2.514)
    return answer.model_dump_json().encode()


def recommended_items(count: int = MAX_K) -> list[RecommendedItem]:
    """count titles as the recommender lists them: two genres, a score, a reason."""
    words = ("Little", "Restless", "Savage", "Silent", "Golden", "Broken", "Hidden", "Last")
    nouns = ("Promise", "Protocol", "Storm", "Harbor", "Frontier", "Signal", "Garden", "Road")
    genres = ("Action", "Documentary", "Family", "Thriller", "Animation", "Drama", "Mystery")
    reasons = ((RecommendationType.SIMILAR_TO_WATCHED, "Because you watched The Savage Storm"),
               (RecommendationType.TRENDING, "Trending now"),
               (RecommendationType.DISCOVERY, "Viewers with similar taste liked this"),
               (RecommendationType.POPULAR, "Popular this month"))
    items = []
    for n in range(count):
        title = f"The {words[n % len(words)]} {nouns[n // len(words) % len(nouns)]}"
        kind, explanation = reasons[n % len(reasons)]
        items.append(RecommendedItem(
            content_id=f"t{1000 + n}", title=title,
            genres=[genres[n % len(genres)], genres[(n + 3) % len(genres)]],
            score=round(0.93 - n * 0.004, 4), recommendation_type=kind, explanation=explanation))
    return items


class RecsAnswers:
    """The recommender's answer for any user and k, from parts encoded once: the user id is the
    only thing encoded per request (the load test checks it is the one asked about)."""

    def __init__(self, served_from: ServedFrom = "cache") -> None:
        items = [item.model_dump_json() for item in recommended_items()]
        self._items = [b""] + [f"[{','.join(items[:k])}]".encode() for k in range(1, MAX_K + 1)]
        template = RecommendationsResponse(
            user_id="U", items=[], variant="treatment", experiment="recs-ranker-v2",
            model_version=3, personalization="full", watch_count=42,
            request_id="9b2f6c1e4d8a4f0bb3c5e7a9d1f20486", served_from=served_from, fallbacks=[],
            processing_time_ms=2.1).model_dump_json()
        head, tail = template.split('"items":[]')
        self._head = head.replace('"user_id":"U"', '"user_id":{user}').encode()
        self._tail = tail.encode()

    def body(self, user_id: str, k: int) -> bytes:
        head = self._head.replace(b"{user}", json.dumps(user_id).encode())
        return head + b'"items":' + self._items[k] + self._tail


def create_app(platform: bool = False) -> FastAPI:
    """The floor: the designs' two endpoints and /healthz, nothing else; with platform, behind
    the services' own shell (create_service_app: request metrics middleware, /metrics, probes),
    to see what that shell costs."""
    router = APIRouter()
    score_body = fraud_answer()
    recs = RecsAnswers()
    fresh = RecsAnswers("computed")  # what a client asking `Cache-Control: no-cache` is told

    @router.post("/v1/score")
    async def score(request: Request) -> Response:
        await request.body()
        return Response(score_body, media_type=JSON)

    @router.get("/v1/recommendations/{user_id:path}")
    async def recommendations(user_id: str, k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
                              cache_control: Annotated[str, Header()] = "") -> Response:
        answers = fresh if "no-cache" in cache_control else recs
        return Response(answers.body(user_id, k), media_type=JSON)

    if platform:
        app = create_service_app(title="floor", metrics=Metrics("floor"), readiness={})
    else:
        app = FastAPI(title="floor", openapi_url=None, docs_url=None, redoc_url=None)

        @router.get("/healthz")
        async def healthz() -> Response:
            return Response(b'{"status":"ok"}', media_type=JSON)

    app.include_router(router)
    return app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--platform", action="store_true",
                        help="behind the platform's middleware (create_service_app), as the "
                             "services are")
    args = parser.parse_args(argv)
    # As services.common.http.serve runs the services: no access log, uvicorn's defaults else.
    uvicorn.run(create_app(args.platform), host=args.host, port=args.port, log_level="warning",
                access_log=False)


if __name__ == "__main__":
    main()
