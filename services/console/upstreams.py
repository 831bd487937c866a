"""Where each service of the stack answers: read from the services' own settings modules."""

from __future__ import annotations

from dataclasses import dataclass

from services.console.settings import ConsoleSettings
from services.experiments.settings import ExperimentsSettings
from services.fraud.settings import FraudSettings
from services.ingest.settings import IngestSettings
from services.lake.settings import LakeSettings
from services.modelserver.settings import ModelServerSettings
from services.recommender.settings import RecommenderSettings
from services.records.settings import RecordsSettings
from services.stream.settings import StreamSettings


@dataclass(frozen=True)
class Upstream:
    name: str   # as in services/devstack/parts.py and the diagram
    url: str


def _url(host: str, port: int) -> str:
    # A service bound to every interface is reached on loopback from the same machine.
    return f"http://{'127.0.0.1' if host in {'0.0.0.0', '::'} else host}:{port}"


def upstreams(settings: ConsoleSettings) -> dict[str, Upstream]:
    """Every HTTP service by name. Only settings are imported (no service code): the console
    reaches the services through their public APIs, like any client."""
    fraud = FraudSettings()
    found = {
        "ingest": _url(IngestSettings().ingest_host, IngestSettings().ingest_port),
        "model-server": _url(ModelServerSettings().model_server_host,
                             ModelServerSettings().model_server_port),
        "experiments": _url(ExperimentsSettings().experiments_host,
                            ExperimentsSettings().experiments_port),
        "recommender": _url(RecommenderSettings().recommender_host,
                            RecommenderSettings().recommender_port),
        "fraud": _url(fraud.fraud_host, fraud.fraud_port),
        **{f"fraud-stream-{i + 1}": _url(fraud.fraud_host, port)
           for i, port in enumerate(fraud.fraud_stream_ports())},
        "stream": _url(StreamSettings().stream_host, StreamSettings().stream_port),
        "records": _url(RecordsSettings().records_host, RecordsSettings().records_port),
        "lake": _url(LakeSettings().lake_host, LakeSettings().lake_port),
    }
    unknown = settings.console_urls.keys() - found.keys()
    if unknown:
        raise ValueError(f"MLSD_CONSOLE_URLS names no service: {sorted(unknown)}; "
                         f"known: {sorted(found)}")
    return {name: Upstream(name, settings.console_urls.get(name, url).rstrip("/"))
            for name, url in found.items()}
