"""One settings class for the whole service (environment prefix ``RUECKHALT_``).

Two modes share one code path: the embedded default (SQLite, secrets generated into the data folder, no
servers needed) and production (PostgreSQL, Redis, secrets from the environment). Production refuses to
start without real secrets, because a generated or demo pepper would make receipts guessable from a dump
plus the file system.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Names of the service secrets. Each is 32 random bytes; each has exactly one purpose so that a leak of one
# (say the rate-limit key, which every request touches) reveals nothing about receipts or statistics.
SECRET_NAMES = ("lookup_pepper", "statistics_key", "session_key", "ratelimit_key", "audit_key")
SECRET_BYTES = 32


class Mode(StrEnum):
    embedded = "embedded"
    production = "production"


class ConfigurationError(RuntimeError):
    """The service cannot start safely with these settings; the message says what to fix."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RUECKHALT_", extra="ignore")

    mode: Mode = Mode.embedded
    data_dir: Path = Path("var")
    database_url: str | None = None
    policies_dir: Path = PROJECT_ROOT / "policies"
    demo: bool = False

    # Secrets: in production they must come from the environment (base64 or hex of >= 32 bytes).
    lookup_pepper: SecretStr | None = None
    statistics_key: SecretStr | None = None
    session_key: SecretStr | None = None
    ratelimit_key: SecretStr | None = None
    audit_key: SecretStr | None = None

    # Redis for rate limits across processes (production); without it the database keeps the counters.
    redis_url: str | None = None
    broker_url: str | None = None

    # Limits that keep a flood or an oversized upload from hurting everyone else.
    max_json_body_bytes: int = Field(default=256 * 1024, ge=1024)
    max_upload_body_bytes: int = Field(default=60 * 1024 * 1024, ge=1024)
    max_attachment_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    max_image_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    max_attachments_per_report: int = Field(default=10, ge=0)
    intake_limit_per_hour: int = Field(default=30, ge=1)
    receipt_limit_per_hour: int = Field(default=20, ge=1)
    # Staff sign-in: per client address, and per account whatever the address (a botnet guessing one
    # account from many addresses meets the second). Counted per attempt, successful or not.
    login_limit_per_hour: int = Field(default=60, ge=1)
    login_account_limit_per_hour: int = Field(default=10, ge=1)

    # Behind a TLS proxy the cookies get the Secure flag and HSTS is sent.
    behind_tls: bool = False

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'rueckhalt.db').resolve()}"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")


@dataclass(frozen=True)
class Secrets:
    lookup_pepper: bytes
    statistics_key: bytes
    session_key: bytes
    ratelimit_key: bytes
    audit_key: bytes


def _decode_secret(name: str, value: str) -> bytes:
    raw: bytes | None = None
    text = value.strip()
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raw = None
    if raw is None or len(raw) < SECRET_BYTES:
        raise ConfigurationError(
            f"RUECKHALT_{name.upper()} must be at least {SECRET_BYTES} random bytes, hex or base64 encoded"
        )
    if len(set(raw)) < 8:
        raise ConfigurationError(f"RUECKHALT_{name.upper()} is not random (too few distinct bytes)")
    return raw


def _generated_secret(folder: Path, name: str) -> bytes:
    """Read or create a secret file with 0600 permissions (embedded mode only)."""
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    path = folder / f"{name}.key"
    if path.exists():
        return _decode_secret(name, path.read_text())
    value = secrets.token_bytes(SECRET_BYTES)
    # O_EXCL: two processes starting at once must not overwrite each other's freshly written secret.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _decode_secret(name, path.read_text())
    with os.fdopen(fd, "w") as handle:
        handle.write(value.hex() + "\n")
    return value


def load_secrets(settings: Settings) -> Secrets:
    values: dict[str, bytes] = {}
    for name in SECRET_NAMES:
        configured: SecretStr | None = getattr(settings, name)
        if configured is not None:
            values[name] = _decode_secret(name, configured.get_secret_value())
        elif settings.mode is Mode.production:
            raise ConfigurationError(
                f"production mode needs RUECKHALT_{name.upper()} (generate one with: "
                "python -c 'import secrets; print(secrets.token_hex(32))')"
            )
        else:
            values[name] = _generated_secret(settings.data_dir / "secrets", name)
    if len(set(values.values())) != len(values):
        raise ConfigurationError("the service secrets must all differ from each other")
    return Secrets(**values)


def check_production(settings: Settings) -> None:
    """Refuse configurations that are fine for a demo but dangerous with real reports."""
    if settings.mode is not Mode.production:
        return
    if settings.demo:
        raise ConfigurationError("demo data is refused in production mode")
    if settings.database_url is None or settings.is_sqlite:
        raise ConfigurationError("production mode needs RUECKHALT_DATABASE_URL pointing at PostgreSQL")
    load_secrets(settings)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
