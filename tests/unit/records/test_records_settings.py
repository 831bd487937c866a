"""MLSD_POSTGRES_*: the password never shows, production refuses the local defaults, one server
or several (the one taking writes)."""

from __future__ import annotations

import pytest
from psycopg.conninfo import conninfo_to_dict
from pydantic import SecretStr, ValidationError

from services.common.records.settings import PostgresSettings


def test_the_password_is_in_the_conninfo_and_nowhere_else(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSD_POSTGRES_PASSWORD", "s3cret-value")
    settings = PostgresSettings()
    assert "s3cret-value" in settings.conninfo("test")
    for shown in (repr(settings), str(settings), settings.address,
                  settings.model_dump_json()):
        assert "s3cret-value" not in shown


def test_production_refuses_a_loopback_host_and_the_local_password() -> None:
    with pytest.raises(ValidationError, match="POSTGRES_HOST"):
        PostgresSettings(environment="production", postgres_password=SecretStr("x" * 20))
    with pytest.raises(ValidationError, match="POSTGRES_PASSWORD"):
        PostgresSettings(environment="production", postgres_host="db.internal")
    PostgresSettings(environment="production", postgres_host="db.internal",
                     postgres_password=SecretStr("x" * 20))


def test_a_pool_whose_minimum_is_above_its_maximum_is_refused() -> None:
    with pytest.raises(ValidationError, match="POOL_MIN"):
        PostgresSettings(postgres_pool_min=5, postgres_pool_max=2)


def test_one_server_is_named_as_before() -> None:
    settings = PostgresSettings(postgres_port=5999)
    assert settings.address == "postgresql://127.0.0.1:5999/mlsd"
    info = conninfo_to_dict(settings.conninfo("test"))
    assert (info["host"], info["port"]) == ("127.0.0.1", "5999")
    assert "target_session_attrs" not in info


def test_several_servers_are_tried_in_turn_for_the_one_that_takes_writes() -> None:
    settings = PostgresSettings(postgres_hosts="127.0.0.1:25501,127.0.0.1:25502")
    info = conninfo_to_dict(settings.conninfo("test"))
    assert info["host"] == "127.0.0.1,127.0.0.1" and info["port"] == "25501,25502"
    assert info["target_session_attrs"] == "read-write"
    assert settings.address == "postgresql://127.0.0.1:25501,127.0.0.1:25502/mlsd"


@pytest.mark.parametrize("hosts", ["db1", "db1:5432,", "db1:5432;db2:5432", "db1:port"])
def test_a_hosts_list_that_is_not_host_port_pairs_is_refused(hosts: str) -> None:
    with pytest.raises(ValidationError, match="postgres_hosts"):
        PostgresSettings(postgres_hosts=hosts)


def test_production_refuses_a_loopback_server_in_the_hosts_list() -> None:
    with pytest.raises(ValidationError, match="POSTGRES_HOST"):
        PostgresSettings(environment="production", postgres_password=SecretStr("x" * 20),
                         postgres_host="db.internal", postgres_hosts="db1:5432,127.0.0.1:5432")
