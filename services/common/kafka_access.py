"""How a process reaches Kafka: the brokers, and the SASL credentials when the cluster asks them.

Every Kafka client of the platform is built from one KafkaAccess (`settings.kafka_access()`):
the two bus adapters, the admin helpers, the readiness probe. A bare bootstrap list is the
single-node stack's PLAINTEXT broker, as before; the cluster topology authenticates every client
with SCRAM-SHA-512 (docs/reliability.md, "Kafka with authentication"), over TLS with SASL_SSL:
both clients then verify the broker's certificate against `ssl_cafile` and its name against
the address they dialled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import SecretStr

SecurityProtocol = Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]


@dataclass(frozen=True)
class KafkaAccess:
    """The brokers and how to authenticate to them; the password stays a SecretStr (its repr,
    and so this object's, shows '**********') until a client's configuration is built."""

    bootstrap_servers: str
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    username: str | None = None
    password: SecretStr | None = None
    # SASL_SSL: the certificate authority that signed the brokers' certificates (PEM); none:
    # the system's trust store
    ssl_cafile: str | None = None

    def __post_init__(self) -> None:
        if self.authenticates and not (self.username and self.password
                                       and self.password.get_secret_value()):
            raise ValueError(f"Kafka over {self.security_protocol} needs a username and a "
                             "password (MLSD_KAFKA_USERNAME, MLSD_KAFKA_PASSWORD)")

    @classmethod
    def of(cls, target: KafkaTarget) -> KafkaAccess:
        """`target` itself, or a bare bootstrap list as an unauthenticated (PLAINTEXT) access."""
        return target if isinstance(target, KafkaAccess) else cls(target)

    @property
    def authenticates(self) -> bool:
        return self.security_protocol != "PLAINTEXT"

    @property
    def encrypts(self) -> bool:
        return self.security_protocol == "SASL_SSL"

    def python_config(self) -> dict[str, Any]:
        """kafka-python's keyword arguments (KafkaProducer, KafkaConsumer, KafkaAdminClient)."""
        config: dict[str, Any] = {"bootstrap_servers": self.bootstrap_servers,
                                  "security_protocol": self.security_protocol}
        if self.authenticates:
            config |= {"sasl_mechanism": self.sasl_mechanism,
                       "sasl_plain_username": self.username,
                       "sasl_plain_password": self._secret()}
        if self.encrypts:  # the broker's certificate checked, and its name against the address
            config |= {"ssl_check_hostname": True,
                       **({"ssl_cafile": self.ssl_cafile} if self.ssl_cafile else {})}
        return config

    def librdkafka_config(self) -> dict[str, str]:
        """librdkafka's properties (confluent-kafka's Producer, Consumer, AdminClient)."""
        config = {"bootstrap.servers": self.bootstrap_servers,
                  "security.protocol": self.security_protocol.lower()}
        if self.authenticates:
            config |= {"sasl.mechanisms": self.sasl_mechanism,
                       "sasl.username": self.username or "",
                       "sasl.password": self._secret()}
        if self.encrypts:
            config |= {"ssl.endpoint.identification.algorithm": "https",
                       "enable.ssl.certificate.verification": "true",
                       **({"ssl.ca.location": self.ssl_cafile} if self.ssl_cafile else {})}
        return config

    def _secret(self) -> str:
        return self.password.get_secret_value() if self.password else ""


KafkaTarget = str | KafkaAccess
"""What the bus's helpers accept: a KafkaAccess, or a bare bootstrap list (PLAINTEXT, the
single-node stack and the tests on it)."""
