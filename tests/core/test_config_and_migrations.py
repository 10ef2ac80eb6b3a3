"""Settings, generated secrets, and models that do not drift from the migrations."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from service.config import SECRET_NAMES, ConfigurationError, Mode, Settings, check_production, load_secrets
from service.db import make_engine
from service.models import Base


def test_models_and_migrations_do_not_drift(database_url: str) -> None:
    """Given a database migrated to head, then autogenerate finds nothing to add, drop or alter."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
            tables = set(inspect(connection).get_table_names())
    finally:
        engine.dispose()
    assert diff == []
    assert set(Base.metadata.tables) <= tables


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


def test_embedded_secrets_are_generated_once_with_0600(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first = load_secrets(settings)
    second = load_secrets(settings)
    assert first == second
    assert (
        len(
            {
                first.lookup_pepper,
                first.statistics_key,
                first.session_key,
                first.ratelimit_key,
                first.audit_key,
                first.notification_key,
                first.key_pepper,
                first.matching_key,
            }
        )
        == 8
    )
    for path in (tmp_path / "secrets").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "secrets").stat().st_mode) == 0o700


def test_production_refuses_to_start_without_real_secrets(tmp_path: Path) -> None:
    settings = Settings(
        mode=Mode.production, data_dir=tmp_path, database_url="postgresql+psycopg://x@127.0.0.1/x"
    )
    with pytest.raises(ConfigurationError, match="RUECKHALT_LOOKUP_PEPPER"):
        check_production(settings)


def test_production_refuses_weak_or_repeated_secrets(tmp_path: Path) -> None:
    base: dict[str, Any] = {
        "mode": Mode.production,
        "data_dir": tmp_path,
        "database_url": "postgresql+psycopg://x@127.0.0.1/x",
    }
    with pytest.raises(ConfigurationError, match="not random"):
        check_production(
            Settings(
                **base,
                lookup_pepper="00" * 32,
                statistics_key="11" * 32,
                session_key="22" * 32,
                ratelimit_key="33" * 32,
                audit_key="44" * 32,
                notification_key="55" * 32,
                key_pepper="66" * 32,
                matching_key="77" * 32,
            )
        )
    same = bytes(range(32)).hex()
    with pytest.raises(ConfigurationError, match="differ"):
        check_production(
            Settings(
                **base,
                lookup_pepper=same,
                statistics_key=same,
                session_key=same,
                ratelimit_key=same,
                audit_key=same,
                notification_key=same,
                key_pepper=same,
                matching_key=same,
            )
        )


def test_production_refuses_sqlite_and_demo(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="PostgreSQL"):
        check_production(Settings(mode=Mode.production, data_dir=tmp_path))
    with pytest.raises(ConfigurationError, match="demo"):
        check_production(
            Settings(
                mode=Mode.production, demo=True, data_dir=tmp_path, database_url="postgresql+psycopg://x@h/x"
            )
        )


def test_production_needs_redis_as_broker_and_an_https_public_url(tmp_path: Path) -> None:
    secrets = {name: os.urandom(32).hex() for name in SECRET_NAMES}
    base: dict[str, Any] = {
        "mode": Mode.production,
        "data_dir": tmp_path,
        "database_url": "postgresql+psycopg://x@h/x",
        **secrets,
    }
    with pytest.raises(ConfigurationError, match="RUECKHALT_BROKER_URL"):
        check_production(Settings(**base))
    with pytest.raises(ConfigurationError, match="RUECKHALT_PUBLIC_URL"):
        check_production(Settings(**base, broker_url="redis://redis:6379/1"))
    check_production(
        Settings(
            **base,
            broker_url="redis://redis:6379/1",
            public_url="https://rueckhalt.example",
            behind_tls=True,
            trusted_proxies="172.30.0.1",
            imprint_url="https://traeger.example/impressum",
            privacy_url="https://traeger.example/datenschutz",
        )
    )


def test_production_requires_the_matching_key_of_its_own(tmp_path: Path) -> None:
    """The repeat-perpetrator matching key (docs/matching.md) is required in production like the others,
    and must differ from every other secret: it is held apart from them."""
    others = {name: os.urandom(32).hex() for name in SECRET_NAMES if name != "matching_key"}
    base = {"mode": Mode.production, "data_dir": tmp_path, "database_url": "postgresql+psycopg://x@h/x"}
    with pytest.raises(ConfigurationError, match="RUECKHALT_MATCHING_KEY"):
        load_secrets(Settings(**base, **others))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="differ"):
        load_secrets(Settings(**base, **others, matching_key=others["audit_key"]))  # type: ignore[arg-type]
    secrets = load_secrets(Settings(**base, **others, matching_key=os.urandom(32).hex()))  # type: ignore[arg-type]
    assert len(secrets.matching_key) == 32
    # Embedded mode generates it into the data folder with the others.
    assert load_secrets(Settings(data_dir=tmp_path / "embedded")).matching_key
    assert (tmp_path / "embedded" / "secrets" / "matching_key.key").exists()
