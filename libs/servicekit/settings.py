"""Settings shared by every service, read from the environment (pydantic-settings), validated at start."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_DIR = REPO_ROOT / ".data"


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    environment: str = Field(default="embedded", alias="PARTY_ENVIRONMENT")
    database_url: str = Field(alias="DATABASE_URL")
    kafka_bootstrap_servers: str = Field(alias="KAFKA_BOOTSTRAP_SERVERS")
    data_dir: Path = Field(default=DEFAULT_DATA_DIR, alias="PARTY_DATA_DIR")
    host: str = Field(default="127.0.0.1", alias="HOST")
    auth_issuer: str = Field(default="party-dev-issuer", alias="AUTH_ISSUER")
    auth_audience: str = Field(default="party-register", alias="AUTH_AUDIENCE")
    auth_jwks_url: str | None = Field(default=None, alias="AUTH_JWKS_URL")
    auth_jwks_file: Path | None = Field(default=None, alias="AUTH_JWKS_FILE")
    relay_lease_ttl_s: float = Field(default=10.0, alias="RELAY_LEASE_TTL_S")
    log_level: str = Field(default="INFO", alias="LOG_LEVEL")

    @model_validator(mode="after")
    def _refuse_dev_issuer_outside_embedded(self) -> ServiceSettings:
        if self.environment != "embedded" and self.auth_jwks_url is None and self.auth_jwks_file is None:
            raise ValueError("AUTH_JWKS_URL or AUTH_JWKS_FILE is required outside the embedded environment")
        if self.environment != "embedded" and self.auth_issuer == "party-dev-issuer":
            raise ValueError("the development issuer is refused outside the embedded environment")
        return self

    @property
    def jwks_file(self) -> Path:
        return self.auth_jwks_file or (self.data_dir / "dev-issuer" / "jwks.json")
