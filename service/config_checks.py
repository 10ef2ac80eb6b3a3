"""The refusals at start-up (service/config.py has the settings they read): production mode without its
database, broker, secrets, TLS, trusted proxies or legal links, and embedded mode listening beyond loopback.
"""

from __future__ import annotations

import ipaddress

from service.config import ConfigurationError, Mode, Settings, load_secrets


def check_production(settings: Settings) -> None:
    """Refuse configurations that are fine for a demo but dangerous with real reports."""
    if settings.mode is not Mode.production:
        return
    if settings.demo:
        raise ConfigurationError("demo data is refused in production mode")
    if settings.database_url is None or settings.is_sqlite:
        raise ConfigurationError("production mode needs RUECKHALT_DATABASE_URL pointing at PostgreSQL")
    load_secrets(settings)
    if not (settings.broker_url or "").startswith(("redis://", "rediss://")):
        # The SQLite broker serves one machine; production runs workers beside several api processes.
        raise ConfigurationError("production mode needs RUECKHALT_BROKER_URL pointing at Redis")
    if not settings.public_url.startswith("https://"):
        raise ConfigurationError("production mode needs RUECKHALT_PUBLIC_URL with https:// (links in mails)")
    if not settings.behind_tls:
        # Without it, session cookies travel without the Secure flag and browsers get no HSTS.
        raise ConfigurationError(
            "production mode needs RUECKHALT_BEHIND_TLS=true (the service runs behind a TLS proxy)"
        )
    if not settings.trusted_networks:
        # Behind a proxy every request comes from the proxy: without knowing it, every client would share
        # one rate-limit bucket, and one flooder would silence intake for everyone.
        raise ConfigurationError(
            "production mode behind a TLS proxy needs RUECKHALT_TRUSTED_PROXIES: the address or CIDR range "
            "the proxy connects from (e.g. 172.18.0.1 or 172.18.0.0/16)"
        )
    for name, value in (("IMPRINT_URL", settings.imprint_url), ("PRIVACY_URL", settings.privacy_url)):
        # A service that publishes for the public needs an Impressum (§ 5 DDG) and a privacy notice
        # (Art. 13 GDPR); the embedded placeholders must never stand in for them.
        if value is None or not value.startswith("https://"):
            raise ConfigurationError(
                f"production mode needs RUECKHALT_{name} with https://: the operator's "
                + ("Impressum (§ 5 DDG)" if name == "IMPRINT_URL" else "privacy notice (Art. 13 GDPR)")
                + ", linked from the footer of every page"
            )


def check_listen_address(settings: Settings, host: str) -> None:
    """Embedded mode (generated secrets beside the data, SQLite, no TLS) serves this machine only."""
    if settings.mode is Mode.production:
        return
    try:
        loopback = ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise ConfigurationError(
            "embedded mode listens on loopback only (--host 127.0.0.1); to serve other machines set "
            "RUECKHALT_MODE=production with its secrets, PostgreSQL, Redis and a TLS proxy"
        )
