"""Shared set-up of the benchmarks: a PostgreSQL cluster and a Redis on loopback, a migrated database
with the demo organisations, and the environment that starts the service the way production does.
Everything is started here and stopped by ``Stack.close`` — nothing outlives a benchmark run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from helpers import PgCluster, free_port  # noqa: E402 - re-exported for the benchmarks

from service.config import Settings, load_secrets  # noqa: E402
from service.db import make_engine  # noqa: E402
from service.migrate import upgrade  # noqa: E402
from service.organisations.service import create_organisation  # noqa: E402
from service.runtime import Runtime, build_runtime  # noqa: E402


@dataclass
class Stack:
    cluster: PgCluster = field(default_factory=PgCluster)
    data_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="rh-bench-")))
    redis_port: int = field(default_factory=free_port)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Production keeps rate-limit counters in Redis (shared by all api processes); so do the benchmarks.
        redis = ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", ""]
        self.processes.append(subprocess.Popen(redis, stdout=subprocess.DEVNULL))

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
        runtime = build_runtime(settings)
        with runtime.sessions() as session:
            for org in runtime.policy.organisations:
                create_organisation(session, org.slug, org.display_name, org.kind)
            session.commit()
        return runtime

    def env(self, url: str, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "RUECKHALT_DATA_DIR": str(self.data_dir),
            "RUECKHALT_DATABASE_URL": url,
            "RUECKHALT_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
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
        self.cluster.stop()
