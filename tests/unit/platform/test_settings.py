"""Settings come from MLSD_* variables, typed, and refuse unsafe production defaults."""

import logging
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from services.common.settings import PlatformSettings
from services.common.telemetry import configure_logging


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


def production(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real hosts, and Kafka over SASL_SSL as the services' user (no password yet)."""
    monkeypatch.setenv("MLSD_ENVIRONMENT", "production")
    monkeypatch.setenv("MLSD_REDIS_URL", "redis://redis.internal:6379/0")
    monkeypatch.setenv("MLSD_KAFKA_BOOTSTRAP_SERVERS", "kafka-0.internal:9093")
    monkeypatch.setenv("MLSD_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("MLSD_KAFKA_USERNAME", "mlsd")


def test_production_accepts_real_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    production(monkeypatch)
    monkeypatch.setenv("MLSD_REDIS_PASSWORD", "x" * 24)
    monkeypatch.setenv("MLSD_KAFKA_PASSWORD", "k" * 24)
    assert PlatformSettings().environment == "production"


@pytest.mark.parametrize("password", [None, "", "short"])
def test_production_refuses_to_start_without_a_real_kafka_password(
        monkeypatch: pytest.MonkeyPatch, password: str | None) -> None:
    production(monkeypatch)
    monkeypatch.setenv("MLSD_REDIS_PASSWORD", "x" * 24)
    if password is not None:
        monkeypatch.setenv("MLSD_KAFKA_PASSWORD", password)
    with pytest.raises(ValidationError, match=r"MLSD_KAFKA_PASSWORD"):
        PlatformSettings()


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SASL_PLAINTEXT"])
def test_production_refuses_kafka_without_authentication_and_encryption(
        monkeypatch: pytest.MonkeyPatch, protocol: str) -> None:
    production(monkeypatch)
    monkeypatch.setenv("MLSD_REDIS_PASSWORD", "x" * 24)
    monkeypatch.setenv("MLSD_KAFKA_PASSWORD", "k" * 24)
    monkeypatch.setenv("MLSD_KAFKA_SECURITY_PROTOCOL", protocol)
    with pytest.raises(ValidationError, match="MLSD_KAFKA_SECURITY_PROTOCOL must be SASL_SSL"):
        PlatformSettings()


def test_sasl_without_credentials_fails_at_start_naming_the_variables(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSD_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("MLSD_KAFKA_USERNAME", "mlsd")
    with pytest.raises(ValidationError, match="MLSD_KAFKA_USERNAME and MLSD_KAFKA_PASSWORD"):
        PlatformSettings()


def test_the_kafka_password_is_shown_nowhere_but_in_the_clients_configuration(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSD_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("MLSD_KAFKA_USERNAME", "mlsd")
    monkeypatch.setenv("MLSD_KAFKA_PASSWORD", "the-kafka-secret-0123")
    settings = PlatformSettings()
    access = settings.kafka_access()
    for shown in (repr(settings), str(settings), repr(settings.model_dump()), repr(access),
                  str(access)):
        assert "the-kafka-secret" not in shown
    assert access.python_config()["sasl_plain_password"] == "the-kafka-secret-0123"
    assert access.python_config()["sasl_mechanism"] == "SCRAM-SHA-512"
    assert access.librdkafka_config()["sasl.password"] == "the-kafka-secret-0123"
    assert access.librdkafka_config()["security.protocol"] == "sasl_plaintext"


def test_a_refused_setting_names_its_variable_and_quotes_no_password(
        monkeypatch: pytest.MonkeyPatch) -> None:
    production(monkeypatch)  # no Kafka password: refused
    monkeypatch.setenv("MLSD_REDIS_PASSWORD", "the-redis-secret-0123456")
    monkeypatch.setenv("MLSD_KAFKA_PASSWORD", "short-secret")
    with pytest.raises(ValidationError) as refused:
        PlatformSettings()
    assert "MLSD_KAFKA_PASSWORD" in str(refused.value)
    assert "the-redis-secret" not in str(refused.value)
    assert "short-secret" not in str(refused.value)


def test_at_debug_kafka_pythons_configuration_dump_is_not_logged() -> None:
    """KafkaAdminClient logs its configuration, the SASL password in it, at DEBUG."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        configure_logging("it", "DEBUG")
        assert root.isEnabledFor(logging.DEBUG)
        assert not logging.getLogger("kafka.admin.client").isEnabledFor(logging.DEBUG)
        assert not logging.getLogger("kafka.net.sasl.scram").isEnabledFor(logging.WARNING)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def test_without_sasl_the_clients_get_no_credentials() -> None:
    access = PlatformSettings().kafka_access()
    assert access.python_config() == {"bootstrap_servers": "127.0.0.1:9092",
                                      "security_protocol": "PLAINTEXT"}
    assert access.librdkafka_config() == {"bootstrap.servers": "127.0.0.1:9092",
                                          "security.protocol": "plaintext"}


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
    (tmp_path / "mlsd_kafka_password").write_text("kafka-from-a-mounted-file\n")
    monkeypatch.setenv("MLSD_SECRETS_DIR", str(tmp_path))
    production(monkeypatch)
    settings = PlatformSettings()
    assert settings.redis_password is not None
    assert settings.redis_password.get_secret_value() == "from-a-mounted-file-0123"
    assert settings.kafka_password == SecretStr("kafka-from-a-mounted-file")
    assert "from-a-mounted-file" not in repr(settings)
    monkeypatch.setenv("MLSD_REDIS_PASSWORD", "the-environment-wins-0123")
    assert PlatformSettings().redis_password == SecretStr("the-environment-wins-0123")


def test_with_a_users_folder_a_process_logs_in_as_its_service_or_the_user_named(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cluster topology's user per service: the password file named as the user."""
    (tmp_path / "ingest").write_text("ingest-password\n")
    (tmp_path / "stream").write_text("stream-password\n")
    monkeypatch.setenv("MLSD_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("MLSD_KAFKA_USERS_DIR", str(tmp_path))
    access = PlatformSettings(service_name="ingest").kafka_access()
    assert (access.username, access.password) == ("ingest", SecretStr("ingest-password"))
    monkeypatch.setenv("MLSD_KAFKA_USERNAME", "stream")
    access = PlatformSettings(service_name="stream_rebuild").kafka_access()
    assert (access.username, access.password) == ("stream", SecretStr("stream-password"))
    monkeypatch.setenv("MLSD_KAFKA_PASSWORD", "given")  # a password given wins over the file
    assert PlatformSettings().kafka_access().password == SecretStr("given")


def test_over_sasl_ssl_both_clients_check_the_broker_against_the_ca_and_its_name(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSD_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("MLSD_KAFKA_USERNAME", "fraud")
    monkeypatch.setenv("MLSD_KAFKA_PASSWORD", "p" * 24)
    monkeypatch.setenv("MLSD_KAFKA_SSL_CAFILE", "/run/tls/ca.pem")
    access = PlatformSettings().kafka_access()
    python = access.python_config()
    assert (python["security_protocol"], python["ssl_cafile"], python["ssl_check_hostname"]) \
        == ("SASL_SSL", "/run/tls/ca.pem", True)
    librdkafka = access.librdkafka_config()
    assert librdkafka["security.protocol"] == "sasl_ssl"
    assert librdkafka["ssl.ca.location"] == "/run/tls/ca.pem"
    assert librdkafka["ssl.endpoint.identification.algorithm"] == "https"
    assert librdkafka["enable.ssl.certificate.verification"] == "true"
    # without TLS no TLS setting is sent
    monkeypatch.setenv("MLSD_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    plain = PlatformSettings().kafka_access()
    assert not [k for k in {*plain.python_config(), *plain.librdkafka_config()} if "ssl" in k]


def test_an_empty_users_folder_or_ca_file_is_none_not_the_working_directory(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """docker compose's default profile passes both as "" (${VAR:-}): no users, no TLS."""
    monkeypatch.setenv("MLSD_KAFKA_USERS_DIR", "")
    monkeypatch.setenv("MLSD_KAFKA_SSL_CAFILE", "")
    settings = PlatformSettings()
    assert (settings.kafka_users_dir, settings.kafka_ssl_cafile) == (None, None)
    assert settings.kafka_access().ssl_cafile is None
