"""One settings class for the whole service (environment prefix ``RUECKHALT_``).

Two modes share one code path: the embedded default (SQLite, secrets generated into the data folder, no
servers needed) and production (PostgreSQL, Redis, secrets from the environment). Production refuses to
start without real secrets, because a generated or demo pepper would make receipts guessable from a dump
plus the file system.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Names of the service secrets. Each is 32 random bytes; each has exactly one purpose so that a leak of one
# (say the rate-limit key, which every request touches) reveals nothing about receipts or statistics.
SECRET_NAMES = (
    "lookup_pepper",
    "statistics_key",
    "session_key",
    "ratelimit_key",
    "audit_key",
    # Seals reporters' notification addresses (the worker must read them, the case key is not at hand)
    # and derives each organisation's webhook signing secret.
    "notification_key",
    # Mixed with the Argon2id output of a staff password into the key that seals the staff private key, so a
    # dump alone cannot test a password guess (docs/security.md). Rotated with RUECKHALT_KEY_PEPPER_PREVIOUS.
    "key_pepper",
    # Keys the perpetrator-identifier tokens of the repeat-perpetrator matching (docs/matching.md): whoever
    # holds it and the database can test a guessed name against the tokens, so it is a secret of its own,
    # used by one code path (service/matching), never in a backup, never logged.
    "matching_key",
)
SECRET_BYTES = 32
# Secrets whose previous value the service still reads during (or, for the audit key, after) a rotation
# (`rueckhalt secrets rotate`, service/secrets): RUECKHALT_<NAME>_PREVIOUS, or in embedded mode the file
# DATA_DIR/secrets/<name>.previous that the command writes. Never used to seal, hash or sign anything new.
# The audit key's may hold several values (one per rotation, separated by commas or white space): every
# segment of the audit chain stays verifiable with the key it was written under.
PREVIOUS_NAMES = (
    "lookup_pepper",
    "statistics_key",
    "session_key",
    "audit_key",
    "notification_key",
    "key_pepper",
)


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
    notification_key: SecretStr | None = None
    key_pepper: SecretStr | None = None
    matching_key: SecretStr | None = None
    # During a pepper rotation: the old pepper, so keys sealed under it still open and are re-sealed under
    # the new one at their owner's next sign-in (`rueckhalt secrets status` counts who has not yet).
    key_pepper_previous: SecretStr | None = None
    # The same for the other secrets (PREVIOUS_NAMES; `rueckhalt secrets rotate` says when to set and when to
    # remove each): receipts still found under the old lookup pepper until re-keyed at the reporter's next
    # sign-in; the audit chain's older segments verified under their keys (kept for good).
    lookup_pepper_previous: SecretStr | None = None
    statistics_key_previous: SecretStr | None = None
    session_key_previous: SecretStr | None = None
    audit_key_previous: SecretStr | None = None
    notification_key_previous: SecretStr | None = None

    # Backups (`rueckhalt backup`, docs/backup.md) are encrypted to this public key; its private half stays
    # offline with the operator. Not a secret: the key itself (as `rueckhalt backup keygen` prints it), or a
    # file holding it. The key wins when both are set.
    backup_public_key: str | None = None
    backup_public_key_file: Path | None = None
    # `rueckhalt backup prune` deletes archives older than this. A case purged today lives on in the archives
    # of the days before, so this is how long a purge takes to reach the backups too (docs/backup.md).
    backup_keep_days: int = Field(default=30, ge=1, le=366)

    # Redis for rate limits across processes (production); without it the database keeps the counters.
    redis_url: str | None = None
    # Celery's broker: Redis in production; unset, a SQLite file in the data folder (no server needed).
    broker_url: str | None = None
    # An api process publishes a new report's delivery tasks right after its commit (the outbox relay stays
    # the safety net); off, notifications wait for the relay's next pass.
    publish_after_commit: bool = True
    # Redis hands an unacknowledged task (its worker died) to another worker after this long.
    broker_visibility_timeout_seconds: int = Field(default=3600, ge=1)

    # Where people reach the service: the links in notification mails start with it.
    public_url: str = "http://127.0.0.1:8000"
    # Outgoing mail. Without a host, mail goes to a Maildir under the data folder (embedded default).
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    # starttls (port 587), tls (implicit TLS, port 465) or none (only for a relay on the same host).
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_seconds: float = Field(default=15.0, gt=0)
    # A CA file to trust for the mail server (an internal relay with its own CA); unset: the system's.
    smtp_ca_file: Path | None = None
    mail_from: str = "Rückhalt <noreply@rueckhalt.invalid>"
    # Mails to a reporter's own address are read by others too (office staff, partners, municipal IT): by
    # default their sender name and subject name neither the service nor threats, cases or deadlines. The
    # report form and /fall show the reporter exactly these values, so what they are told is always true.
    reporter_mail_sender_name: str = "Benachrichtigung"
    reporter_mail_subject: str = "Neue Nachricht in Ihrem Postfach"
    # The address they come from; unset: the address of ``mail_from``. Choose one whose domain does not name
    # the service either.
    reporter_mail_address: str | None = None
    # Without the link the mail names no address of the service at all; the reporter signs in as they know.
    reporter_mail_link: bool = True
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    # Task retries: about five, with capped exponential backoff and jitter, then a dead letter.
    task_max_retries: int = Field(default=5, ge=0, le=20)
    task_retry_base_seconds: float = Field(default=10.0, gt=0)
    task_retry_cap_seconds: float = Field(default=600.0, gt=0)
    # Reminders: a reporter's message unanswered this long reminds the holders.
    reporter_waiting_hours: int = Field(default=48, ge=1)
    # A reporter with a notification address is told this many days before the retention purge destroys
    # their closed case, so that they can still download the dossier and their files.
    purge_notice_days: int = Field(default=14, ge=1, le=180)
    # The receipt names the acknowledgement target of the report's routing and, measured over this many
    # weeks, the share of reports acknowledged within their target, but only when at least this many
    # reports were judged (fewer would tell about single cases).
    ack_figure_weeks: int = Field(default=12, ge=1, le=104)
    ack_figure_min_cases: int = Field(default=20, ge=5)

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

    # Body limits per route (service/web.py BodyKind), enforced while the body streams in: JSON calls, page
    # forms without files, and the few forms that take files (max_upload_body_bytes above).
    max_form_body_bytes: int = Field(default=128 * 1024, ge=1024)
    # Pages that edit long texts (knowledge articles): a form, but with room for an article.
    max_long_form_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Sign-in from a browser that signed in to the account before (device cookie): its own allowance, so
    # that guesses from elsewhere never lock the owner out. Unknown browsers are counted per account and
    # client; past ``login_account_limit_per_hour`` attempts on one account from all unknown browsers
    # together, each further one is slowed down (up to this many seconds), not refused.
    login_device_limit_per_hour: int = Field(default=10, ge=1)
    login_account_total_per_hour: int = Field(default=50, ge=1)
    login_slowdown_max_seconds: float = Field(default=5.0, ge=0)
    # Repeat-perpetrator matching (docs/matching.md): at most this many perpetrator identifiers are looked
    # up per hour, service-wide (every process together). Over it, a report is filed all the same and its
    # identifiers wait, sealed, until the reporter next signs in on /fall (or sends them again there), or a
    # counsellor holding the case runs the matching from its page.
    matching_limit_per_hour: int = Field(default=200, ge=1)

    # The operator's Impressum (§ 5 DDG) and privacy notice (Art. 13 GDPR): linked from the footer of every
    # page, public and staff. Production refuses to start without both; embedded mode (the demo) links its
    # own placeholder pages, which say that they are placeholders.
    imprint_url: str | None = None
    privacy_url: str | None = None
    # The public statistics as open data (/statistik/daten, service/statistics/public/opendata.py): who
    # publishes them (the DCAT dct:publisher and the name the CC BY 4.0 licence asks users to credit), and,
    # once GovData has assigned one, the operator's Datenbereitsteller-ID
    # (http://dcat-ap.de/def/contributors/...), which DCAT-AP.de asks of data delivered to GovData directly.
    # Unset, the metadata carry none (never a guess).
    open_data_publisher: str = "Rückhalt"
    open_data_contributor_id: str | None = None

    # Behind a TLS proxy the cookies get the Secure flag (and the __Host- prefix) and HSTS is sent.
    behind_tls: bool = False
    # The proxies in front of the service, as addresses or CIDR ranges, separated by commas or spaces
    # ("10.0.0.5, 172.18.0.0/16"). A request from one of them is taken to come from the right-most address
    # of X-Forwarded-For that is not itself a trusted proxy; from anywhere else, the peer is the client.
    trusted_proxies: str = ""

    # Prometheus metrics (docs/metrics.md): off unless a port is set. They are served by a listener of
    # their own, never by the public application, so no proxy rule can expose them: the api on this port,
    # the worker on the next, the beat on the one after. Loopback by default; in the compose setup the
    # containers' own network (the ports are never published).
    metrics_port: int | None = Field(default=None, ge=1, le=65533)
    metrics_host: str = "127.0.0.1"
    # "json": one JSON object per log line (for a log shipper), with the same content-free filters.
    log_format: Literal["text", "json"] = "text"

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_proxies(cls, value: str) -> str:
        parse_networks(value)
        return value

    @field_validator("reporter_mail_sender_name", "reporter_mail_subject")
    @classmethod
    def _one_line_header(cls, value: str) -> str:
        # A header of every reporter mail: one line, short, something a person can read.
        text = " ".join(value.split())
        if not text or len(text) > 78 or any(not char.isprintable() for char in text):
            raise ValueError("must be one line of 1 to 78 printable characters")
        return text

    @field_validator("open_data_publisher")
    @classmethod
    def _publisher_name(cls, value: str) -> str:
        text = " ".join(value.split())
        if not text or len(text) > 200 or any(not char.isprintable() for char in text):
            raise ValueError("must be one line of 1 to 200 printable characters")
        return text

    @field_validator("open_data_contributor_id")
    @classmethod
    def _contributor_id(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        prefix = "http://dcat-ap.de/def/contributors/"
        if (
            not value.startswith(prefix)
            or len(value) == len(prefix)
            or not value.isascii()
            or any(c.isspace() or c in '<>"{}|^`\\' for c in value)
        ):
            raise ValueError(f"must be the ID GovData assigned, {prefix}<name>")
        return value

    @field_validator("reporter_mail_address")
    @classmethod
    def _mail_address(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        local, at, domain = value.partition("@")
        if not at or not local or "." not in domain or any(c.isspace() or c in '<>,;"' for c in value):
            raise ValueError("must be a plain mail address (name@example.org)")
        return value

    @field_validator("imprint_url", "privacy_url")
    @classmethod
    def _web_address(cls, value: str | None) -> str | None:
        # A link in every footer: only a web address, never javascript: or a path that the proxy might route
        # anywhere. Blank counts as unset (an env file with an empty line).
        if value is None or not value.strip():
            return None
        value = value.strip()
        if not value.startswith(("https://", "http://")) or any(c.isspace() for c in value):
            raise ValueError("must be a web address starting with https:// (or http:// for a local try)")
        return value

    @property
    def trusted_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return parse_networks(self.trusted_proxies)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'rueckhalt.db').resolve()}"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def maildir(self) -> Path:
        return self.data_dir / "maildir"

    @property
    def resolved_broker_url(self) -> str:
        if self.broker_url:
            return self.broker_url
        # kombu's SQLAlchemy transport: a real broker with real delivery, in one file of the data folder.
        return f"sqla+sqlite:///{(self.data_dir / 'broker.sqlite').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")


def parse_networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Addresses and CIDR ranges, separated by commas or white space; a bad one is named, nothing guessed."""
    networks = []
    for item in text.replace(",", " ").split():
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(
                f"RUECKHALT_TRUSTED_PROXIES: {item[:60]!r} is not an IP address or CIDR range"
            ) from None
    return tuple(networks)


@dataclass(frozen=True)
class Secrets:
    lookup_pepper: bytes
    statistics_key: bytes
    session_key: bytes
    ratelimit_key: bytes
    audit_key: bytes
    notification_key: bytes
    key_pepper: bytes
    matching_key: bytes
    # NAME -> the previous values still read (PREVIOUS_NAMES), newest first; absent when none.
    previous: Mapping[str, tuple[bytes, ...]] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Secrets(<{len(SECRET_NAMES)} hidden>)"

    def previous_of(self, name: str) -> tuple[bytes, ...]:
        return tuple(self.previous.get(name, ()))

    def candidates(self, name: str) -> tuple[bytes, ...]:
        """The value to seal, hash or sign with first, then the previous ones that are still read."""
        current: bytes = getattr(self, name)
        return (current, *self.previous_of(name))

    @property
    def key_pepper_previous(self) -> bytes | None:
        previous = self.previous_of("key_pepper")
        return previous[0] if previous else None

    @property
    def key_peppers(self) -> tuple[bytes, ...]:
        """The pepper to seal with first, then the one still accepted during a rotation."""
        return self.candidates("key_pepper")

    @property
    def lookup_peppers(self) -> tuple[bytes, ...]:
        return self.candidates("lookup_pepper")


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


def secrets_folder(settings: Settings) -> Path:
    """Where embedded mode keeps its generated secrets (and `rueckhalt secrets rotate` the previous ones)."""
    return settings.data_dir / "secrets"


def previous_file(folder: Path, name: str) -> Path:
    return folder / f"{name}.previous"


def _previous_values(settings: Settings, name: str) -> tuple[bytes, ...]:
    """RUECKHALT_<NAME>_PREVIOUS, else (embedded mode) the file the rotation wrote; newest first."""
    setting = f"{name}_previous"
    configured: SecretStr | None = getattr(settings, setting)
    if configured is not None:
        text = configured.get_secret_value()
    elif settings.mode is Mode.embedded and previous_file(secrets_folder(settings), name).exists():
        text = previous_file(secrets_folder(settings), name).read_text()
    else:
        return ()
    parts = text.replace(",", " ").split()
    if len(parts) > 1 and name != "audit_key":
        raise ConfigurationError(f"RUECKHALT_{setting.upper()} holds one value (the one before the current)")
    values: list[bytes] = []
    for part in parts:
        value = _decode_secret(setting, part)
        if value not in values:
            values.append(value)
    return tuple(values)


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
            values[name] = _generated_secret(secrets_folder(settings), name)
    if len(set(values.values())) != len(values):
        raise ConfigurationError("the service secrets must all differ from each other")
    previous: dict[str, tuple[bytes, ...]] = {}
    for name in PREVIOUS_NAMES:
        # A previous value equal to its own current one is what a rotation stopped between its two file
        # writes leaves behind (service/secrets/store.py): nothing to fall back to, so it is not one.
        found = tuple(value for value in _previous_values(settings, name) if value != values[name])
        if any(value in values.values() for value in found):
            raise ConfigurationError(
                f"RUECKHALT_{name.upper()}_PREVIOUS must differ from every current secret"
            )
        if found:
            previous[name] = found
    return Secrets(**values, previous=previous)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
