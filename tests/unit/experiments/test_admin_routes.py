"""Every route that changes what operators control refuses a request without the admin token.

The routes are found, not listed: each service's api module is imported and every route that
writes (POST, PUT, PATCH, DELETE) is either behind its service's admin token or named below as a
public write with the reason. A new write route that is neither fails here, so it cannot ship
open by accident. Each admin route is then called without a token and with a wrong one.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from fastapi import APIRouter
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import SecretStr

import services
from services.common.bus.memory import InMemoryBroker, InMemoryPublisher
from services.common.models import ModelRepository
from services.common.models.testing import logistic_model
from services.designs.experiments.store import InMemoryDefinitionStore
from services.experiments import api as experiments_api
from services.experiments.app import create_app as experiments_app
from services.experiments.settings import ExperimentsSettings
from services.modelserver import api as modelserver_api
from services.modelserver.app import create_app as modelserver_app
from services.modelserver.settings import ModelServerSettings
from tests.harness import REPO_ROOT
from tests.support.experiments_fakes import FakeCounts, FakeHistory, FakeRedis

TOKEN = "a-test-admin-token-of-some-length"
WRITES = {"POST", "PUT", "PATCH", "DELETE"}

# Writes anyone may send, and why they are not operator actions.
PUBLIC_WRITES = {
    ("ingest", "POST", "/v1/events"): "the product's event intake (watches, transactions)",
    ("fraud", "POST", "/v1/score"): "scoring a transaction: the service's purpose",
    ("modelserver", "POST", "/v2/models/{name}/infer"): "inference (Open Inference Protocol)",
    ("modelserver", "POST", "/v2/models/{name}/versions/{version}/infer"): "inference",
    # the demo console: a local page that drives the demo; it binds loopback and is not part
    # of a production deployment (docs/console.md)
    ("console", "POST", "/fragments/watch"): "demo: posts one watch through ingest",
    ("console", "POST", "/fragments/score"): "demo: scores one transaction through fraud",
    ("console", "POST", "/fragments/preset/{key}"): "demo: fills the form with a preset",
    ("console", "POST", "/fragments/load"): "demo: a short load run against the local stack",
}
ADMIN_DEPENDENCIES = {experiments_api.require_admin, modelserver_api.require_admin}


def service_routes() -> Iterator[tuple[str, APIRoute]]:
    """(service, route) for every route of every services/<name>/api.py router."""
    for package in pkgutil.iter_modules(services.__path__):
        if not (Path(services.__path__[0]) / package.name / "api.py").exists():
            continue
        module = importlib.import_module(f"services.{package.name}.api")
        for value in vars(module).values():
            if isinstance(value, APIRouter):
                for route in value.routes:
                    if isinstance(route, APIRoute):
                        yield package.name, route


def requires_admin(route: APIRoute) -> bool:
    calls = {dependency.call for dependency in route.dependant.dependencies}
    for dependency in route.dependant.dependencies:
        calls |= {sub.call for sub in dependency.dependencies}
    return bool(calls & ADMIN_DEPENDENCIES)


def admin_routes() -> list[tuple[str, str, str]]:
    found = [(service, method, route.path) for service, route in service_routes()
             if requires_admin(route) for method in sorted(route.methods)]
    return sorted(set(found))


def test_every_write_route_is_behind_the_admin_token_or_named_as_public() -> None:
    open_writes = sorted({(service, method, route.path)
                          for service, route in service_routes()
                          for method in route.methods & WRITES
                          if not requires_admin(route)})
    unexplained = [write for write in open_writes if write not in PUBLIC_WRITES]
    assert not unexplained, ("write routes without the admin token; guard them with the "
                             f"service's require_admin or name them in PUBLIC_WRITES: "
                             f"{unexplained}")
    assert set(PUBLIC_WRITES) <= set(open_writes), "PUBLIC_WRITES names a route that is gone"


def test_the_operator_routes_are_the_admin_ones() -> None:
    # experiments create/replace and stop/start, model promotion and rollback: what the issue
    # calls admin endpoints, each found behind a token
    assert {("experiments", "PUT", "/v1/experiments/{key}"),
            ("experiments", "PUT", "/v1/experiments/{key}/status"),
            ("modelserver", "POST", "/v1/admin/models/{name}/promote"),
            ("modelserver", "POST", "/v1/admin/models/{name}/rollback")} <= set(admin_routes())


@pytest.fixture(scope="module")
def clients(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, TestClient]]:
    repository = ModelRepository(tmp_path_factory.mktemp("models"))
    for bias in (-1.0, 1.0):
        repository.register("fraud", logistic_model([0.0, 0.0], bias), feature_names=("a", "b"),
                            metrics={}, training_data_hash="h", description=f"bias {bias}")
    models = modelserver_app(ModelServerSettings(model_repository=repository.root,
                                                 model_server_admin_token=SecretStr(TOKEN)))
    experiments = experiments_app(
        ExperimentsSettings(environment="test", experiments_admin_token=TOKEN,
                            experiments_file=REPO_ROOT / "config/experiments/experiments.toml",
                            experiments_refresh_interval_s=60),
        redis_client=cast(Any, FakeRedis()), store=InMemoryDefinitionStore(),
        counts=FakeCounts(), publisher=InMemoryPublisher(InMemoryBroker()),
        history=FakeHistory())
    with TestClient(models) as m, TestClient(experiments) as e:
        yield {"modelserver": m, "experiments": e}


def concrete(path: str) -> str:
    values = {"key": "rec-algorithm", "name": "fraud", "version": "1"}
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


@pytest.mark.parametrize(("service", "method", "path"), admin_routes())
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", "Basic dXNlcjpwYXNz"])
def test_an_admin_route_refuses_a_missing_or_wrong_token_and_says_what_it_needs(
        clients: dict[str, TestClient], service: str, method: str, path: str,
        authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = clients[service].request(method, concrete(path), json={}, headers=headers)
    assert response.status_code in (401, 403), (response.status_code, response.text)
    message = response.json().get("detail") or response.json().get("error")
    assert re.search(r"token|Bearer", str(message)), message
    if response.status_code == 401:
        assert response.headers.get("www-authenticate", "Bearer").startswith("Bearer")


def test_with_the_token_the_admin_routes_do_their_work(
        clients: dict[str, TestClient]) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    promoted = clients["modelserver"].post("/v1/admin/models/fraud/promote",
                                           json={"version": 2}, headers=auth)
    assert promoted.status_code == 200, promoted.text
    stopped = clients["experiments"].put("/v1/experiments/rec-algorithm/status",
                                         json={"status": "stopped"}, headers=auth)
    assert stopped.status_code == 200, stopped.text
