"""The console's routes: pages, the fragments the page's script swaps in, and saved plots."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from pydantic import ValidationError

from services.console import charts, presets
from services.console.demos import run_preset, watch_and_wait
from services.console.diagram import ARROWS, HEIGHT, WIDTH, arrow_points
from services.console.forms import BadInput, list_query, readable, score_body
from services.console.load_results import load_results
from services.console.loadrun import LoadBusy, LoadOutOfBounds, LoadRequest, bounded
from services.console.service import Console
from services.console.verdicts import interval_scale, verdict

router = APIRouter(include_in_schema=False)


def console(request: Request) -> Console:
    found: Console = request.app.state.console
    return found


Ctx = Annotated[Console, Depends(console)]


def page(c: Console, request: Request, name: str, status: int = 200, **values: Any) -> Response:
    return c.templates.TemplateResponse(request, name, values, status_code=status)


def problem(c: Console, request: Request, message: str, status: int) -> Response:
    return page(c, request, "problem.html", status, message=message)


async def form_of(request: Request) -> dict[str, str]:
    """A form as the page's script posts it (URL-encoded). Read here rather than through
    Starlette's form parser, which needs python-multipart for the same three lines."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return dict(parse_qsl(body, keep_blank_values=True))


# --- Pages ------------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
async def architecture(request: Request, c: Ctx) -> Response:
    return page(c, request, "architecture.html", **await _board(c))


@router.get("/recommendations", response_class=HTMLResponse)
async def recommendations_page(request: Request, c: Ctx, user: str | None = None,
                               k: str | None = None) -> Response:
    return page(c, request, "recommendations.html", users=c.settings.console_users,
                user=user or "", k=k or "10")


@router.get("/fraud", response_class=HTMLResponse)
async def fraud_page(request: Request, c: Ctx) -> Response:
    return page(c, request, "fraud.html", presets=presets.PRESETS,
                example=presets.build("ordinary", run="manual")[0])


@router.get("/experiments", response_class=HTMLResponse)
async def experiments_page(request: Request, c: Ctx) -> Response:
    try:
        found = await c.stack.experiments()
        results = {e["key"]: await c.stack.results(e["key"]) for e in found}
    except c.errors as error:
        return page(c, request, "experiments.html", experiments=[], error=str(error))
    return page(c, request, "experiments.html", experiments=found, results=results,
                verdicts={k: verdict(r) for k, r in results.items()},
                scales={k: interval_scale(r) for k, r in results.items()}, error=None)


@router.get("/load", response_class=HTMLResponse)
async def load_page(request: Request, c: Ctx) -> Response:
    found = load_results(c.settings.console_reports_dir, c.evaluation_dir)
    return page(c, request, "load.html", results=found, run=c.runner.current,
                chart=_live_chart(c), max_s=c.settings.console_load_max_duration_s,
                max_rps=c.settings.console_load_max_rps, file_url=c.file_url)


@router.get("/files/{path:path}")
async def saved_plot(path: str, c: Ctx) -> Response:
    """A load plot: PNG files under the load reports or docs/evaluation, nothing else."""
    found = c.plot_file(path)
    if found is None:
        return Response("no such plot", status_code=404, media_type="text/plain")
    return FileResponse(found, media_type="image/png")


# --- Fragments --------------------------------------------------------------------------------


@router.get("/fragments/board", response_class=HTMLResponse)
async def board_fragment(request: Request, c: Ctx) -> Response:
    return page(c, request, "board.html", **await _board(c))


async def _board(c: Console) -> dict[str, Any]:
    states = await c.board.read()
    drawn = {s.box.name for s in states}
    return {"states": states, "width": WIDTH, "height": HEIGHT, "source": c.board.source,
            "arrows": [(*arrow_points(a, b), label) for a, b, label in ARROWS
                       if a in drawn and b in drawn]}


@router.get("/fragments/recommendations", response_class=HTMLResponse)
async def recommendations_fragment(request: Request, c: Ctx, user: str | None = None,
                                   k: str | None = None) -> Response:
    try:
        query = list_query(user, k)
        answer = await c.stack.recommendations(query.user, query.k)
    except BadInput as error:
        return problem(c, request, str(error), 422)
    except c.errors as error:
        return problem(c, request, str(error), c.status_of(error))
    return page(c, request, "recs_list.html", answer=answer, k=query.k, watch=None)


@router.post("/fragments/watch", response_class=HTMLResponse)
async def watch_fragment(request: Request, c: Ctx) -> Response:
    form = await form_of(request)
    try:
        query = list_query(form.get("user"), form.get("k"))
        if not form.get("content_id", "").strip():
            raise BadInput("content_id: required (the title to watch)")
        outcome = await watch_and_wait(c.stack, query.user, form["content_id"].strip(),
                                       query.k, c.settings.console_watch_wait_s)
    except BadInput as error:
        return problem(c, request, str(error), 422)
    except c.errors as error:
        return problem(c, request, str(error), c.status_of(error))
    return page(c, request, "recs_list.html", answer=outcome.after, k=query.k, watch=outcome,
                watched=form["content_id"].strip())


@router.post("/fragments/score", response_class=HTMLResponse)
async def score_fragment(request: Request, c: Ctx) -> Response:
    form = await form_of(request)
    try:
        body = score_body(form)
        decision = await c.stack.score(body)
    except BadInput as error:
        return problem(c, request, str(error), 422)
    except c.errors as error:
        return problem(c, request, str(error), c.status_of(error))
    return _decision(c, request, [(body, decision)], title="Your transaction")


@router.post("/fragments/preset/{key}", response_class=HTMLResponse)
async def preset_fragment(key: str, request: Request, c: Ctx) -> Response:
    if key not in presets.BY_KEY:
        return problem(c, request, f"no preset {key!r}; presets: {', '.join(presets.BY_KEY)}",
                       404)
    try:
        steps = await run_preset(c.stack, key)
    except c.errors as error:
        return problem(c, request, str(error), c.status_of(error))
    return _decision(c, request, [(s.request, s.decision) for s in steps],
                     title=presets.BY_KEY[key].title)


def _decision(c: Console, request: Request, steps: list[tuple[dict[str, Any], dict[str, Any]]],
              title: str) -> Response:
    final = steps[-1][1]
    reasons = final["reasons"]
    return page(c, request, "decision.html", title=title, steps=steps, decision=final,
                gauge=charts.gauge_end(final["risk_score"]),
                bars=list(zip(reasons, charts.bar_widths([r["contribution"] for r in reasons]),
                              strict=True)))


@router.post("/fragments/load", response_class=HTMLResponse)
async def start_load(request: Request, c: Ctx) -> Response:
    form = await form_of(request)
    try:
        wanted = bounded(LoadRequest.model_validate(form), c.settings.console_load_max_duration_s,
                         c.settings.console_load_max_rps)
        await c.runner.start(wanted)
    except ValidationError as error:
        return problem(c, request, readable(error), 422)
    except LoadOutOfBounds as error:
        return problem(c, request, str(error), 422)
    except LoadBusy as error:
        return problem(c, request, str(error), 409)
    return page(c, request, "load_live.html", run=c.runner.current, chart=_live_chart(c))


@router.get("/fragments/load", response_class=HTMLResponse)
async def load_fragment(request: Request, c: Ctx) -> Response:
    return page(c, request, "load_live.html", run=c.runner.current, chart=_live_chart(c))


def _live_chart(c: Console) -> charts.LineChart | None:
    run = c.runner.current
    if run is None:
        return None
    return charts.line_chart([(p.t_s, p.p99_ms) for p in run.points], run.budget_ms,
                             run.request.duration_s + 2)

