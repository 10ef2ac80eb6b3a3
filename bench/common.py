"""Shared set-up of the benchmarks: a PostgreSQL cluster and a Redis on loopback, a migrated database
with the demo organisations, and the environment that starts the service the way production does.
Everything is started here and stopped by ``Stack.close`` — nothing outlives a benchmark run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from service.config import Settings, load_secrets
from service.db import make_engine
from service.identity.models import MembershipRole
from service.migrate import upgrade
from service.runtime import Runtime, build_runtime
from tests.support.notification import RedisProcess
from tests.support.stack import PgCluster, free_port
from tests.support.staff import Clock, staff_factory, weak_accounts, with_policy_organisations

ROOT = Path(__file__).resolve().parent.parent

__all__ = ["PgCluster", "Stack", "free_port"]


@dataclass
class Stack:
    # Durable: PostgreSQL with synchronous commits and Redis with its append-only file, as production runs
    # them, for benchmarks that stop or crash a server and count what survived.
    durable: bool = False
    data_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="rh-bench-")))
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    cluster: PgCluster = field(init=False)
    redis: RedisProcess = field(init=False)

    def __post_init__(self) -> None:
        self.cluster = PgCluster(durable_commits=self.durable)
        # Production keeps rate-limit counters in Redis (shared by all api processes); so do the benchmarks.
        folder = self.data_dir / "redis"
        folder.mkdir(parents=True, exist_ok=True)
        self.redis = RedisProcess(folder, free_port(), appendonly=self.durable)
        self.redis.start()

    @property
    def redis_port(self) -> int:
        return self.redis.port

    def database(self, name: str, *, migrated: bool = True) -> str:
        with self.cluster.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = self.cluster.url(name)
        if migrated:
            engine = make_engine(url)
            upgrade(engine)
            engine.dispose()
        return url

    def runtime(self, url: str) -> Runtime:
        """A runtime on ``url`` whose database holds every demo organisation with a key."""
        settings = Settings(data_dir=self.data_dir, database_url=url)
        load_secrets(settings)
        # The recovery keys stay on the runtime: granting an organisation's key to a new member needs them.
        return with_policy_organisations(build_runtime(settings))

    @staticmethod
    def staff(
        runtime: Runtime,
        email: str,
        *,
        member_of: str | None = None,
        coordinator: bool = False,
    ) -> str:
        """A staff account (weak Argon2: set-up only, nobody signs in); returns its user id."""
        memberships = [(member_of, MembershipRole.counsellor)] if member_of else []
        make = staff_factory(runtime, weak_accounts(runtime, Clock()))
        return make(email=email, memberships=memberships, coordinator=coordinator).user_id

    def env(self, url: str, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "RUECKHALT_DATA_DIR": str(self.data_dir),
            "RUECKHALT_DATABASE_URL": url,
            "RUECKHALT_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            # Celery's broker as in production (an api process publishes each report's delivery task to it).
            "RUECKHALT_BROKER_URL": f"redis://127.0.0.1:{self.redis_port}/1",
            "RUECKHALT_INTAKE_LIMIT_PER_HOUR": "100000000",
            "PYTHONPATH": str(ROOT),
            **extra,
        }

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
        self.redis.stop()
        self.cluster.stop()
        # Generated secrets and blobs of a throwaway run: nothing is left behind.
        shutil.rmtree(self.data_dir, ignore_errors=True)
