"""Settings come from MLSD_* variables, typed, and refuse unsafe production defaults."""

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

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
    monkeypatch.setenv("MLSD_REDIS_PASSWORD", "x" * 24)
    assert PlatformSettings().environment == "production"


@pytest.mark.parametrize("password", [None, "", "short"])
def test_production_refuses_to_start_without_a_real_redis_password(
        monkeypatch: pytest.MonkeyPatch, password: str | None) -> None:
    monkeypatch.setenv("MLSD_ENVIRONMENT", "production")
    monkeypatch.setenv("MLSD_REDIS_URL", "redis://redis.internal:6379/0")
    monkeypatch.setenv("MLSD_KAFKA_BOOTSTRAP_SERVERS", "kafka-0.internal:9092")
    if password is not None:
        monkeypatch.setenv("MLSD_REDIS_PASSWORD", password)
    with pytest.raises(ValidationError, match=r"MLSD_REDIS_PASSWORD .* at least 16 characters"):
        PlatformSettings()


def test_secrets_are_read_from_files_in_the_secrets_dir(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "mlsd_redis_password").write_text("from-a-mounted-file-0123\n")
    monkeypatch.setenv("MLSD_SECRETS_DIR", str(tmp_path))
    monkeypatch.setenv("MLSD_ENVIRONMENT", "production")
    monkeypatch.setenv("MLSD_REDIS_URL", "redis://redis.internal:6379/0")
    monkeypatch.setenv("MLSD_KAFKA_BOOTSTRAP_SERVERS", "kafka-0.internal:9092")
    settings = PlatformSettings()
    assert settings.redis_password is not None
    assert settings.redis_password.get_secret_value() == "from-a-mounted-file-0123"
    assert "from-a-mounted-file" not in repr(settings)
    monkeypatch.setenv("MLSD_REDIS_PASSWORD", "the-environment-wins-0123")
    assert PlatformSettings().redis_password == SecretStr("the-environment-wins-0123")
