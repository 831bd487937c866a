"""Settings come from MLSD_* variables, typed, and refuse unsafe production defaults."""

import pytest
from pydantic import ValidationError

from services.common.settings import PlatformSettings


def test_settings_are_read_from_prefixed_environment_variables(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSD_REDIS_URL", "redis://cache:6379/1")
    monkeypatch.setenv("MLSD_KAFKA_TOPIC_PARTITIONS", "12")
    settings = PlatformSettings()
    assert settings.redis_url == "redis://cache:6379/1"
    assert settings.kafka_topic_partitions == 12


def test_a_wrongly_typed_variable_fails_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSD_KAFKA_TOPIC_PARTITIONS", "many")
    with pytest.raises(ValidationError, match="kafka_topic_partitions"):
        PlatformSettings()


def test_production_refuses_loopback_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSD_ENVIRONMENT", "production")
    with pytest.raises(ValidationError, match="MLSD_REDIS_URL must name a real host"):
        PlatformSettings()


def test_production_accepts_real_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSD_ENVIRONMENT", "production")
    monkeypatch.setenv("MLSD_REDIS_URL", "redis://redis.internal:6379/0")
    monkeypatch.setenv("MLSD_KAFKA_BOOTSTRAP_SERVERS", "kafka-0.internal:9092")
    assert PlatformSettings().environment == "production"
