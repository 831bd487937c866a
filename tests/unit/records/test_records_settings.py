"""MLSD_POSTGRES_*: the password never shows, production refuses the local defaults."""

from __future__ import annotations

import pytest
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
