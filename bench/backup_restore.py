"""The restore drill's timings: how long `rueckhalt backup` and `rueckhalt restore` take for N cases with
files.

On a PostgreSQL of its own (loopback): N reports filed through the report form, each with one text file
(``--file-kib``), then a backup through the same function the command runs, then a restore into a new empty
database and data folder (holding only the secrets), which checks every chunk, the manifest's MAC and the
audit chain. Prints the figures and writes them to bench/results/backup_restore.json (make bench-backup).

Usage: python -m bench.backup_restore --cases 200   (1000 for the issue's drill)
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from bench.common import PgCluster
from service.app import create_app
from service.backup.restore import restore_backup
from service.backup.service import write_backup
from service.cases.models import Case
from service.config import Settings, load_secrets
from service.crypto import generate_keypair
from service.db import make_engine
from service.evidence.models import Attachment
from service.migrate import upgrade
from service.runtime import build_runtime
from tests.support.staff import with_policy_organisations

ROOT = Path(__file__).resolve().parent.parent

_FIELD = re.compile(r'name="(csrf_token|submission_token)" value="([^"]+)"')


def file_cases(settings: Settings, count: int, file_bytes: int) -> float:
    runtime = with_policy_organisations(build_runtime(settings))
    line = b"Verlauf einer Drohung, Zeile fuer Zeile gesichert.\n"
    evidence = (line * (file_bytes // len(line) + 1))[:file_bytes]
    started = time.perf_counter()
    try:
        with TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1") as client:
            for number in range(count):
                tokens = dict(_FIELD.findall(client.get("/melden").text))
                response = client.post(
                    "/melden",
                    data={
                        **tokens,
                        "land": "09",
                        "district_ags": "09162",
                        "type_codes": ["A3a"],
                        "description": f"Drohbrief Nummer {number} im Briefkasten.",
                        "channel": "letter",
                        "urgency": "normal",
                        "consent_counselling": "1",
                    },
                    files=[("attachments", (f"Beweis-{number}.txt", evidence, "text/plain"))],
                )
                assert response.status_code == 201, response.status_code
    finally:
        runtime.dispose()
    return time.perf_counter() - started


def counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return {
                "cases": int(connection.scalar(select(func.count()).select_from(Case)) or 0),
                "attachments": int(connection.scalar(select(func.count()).select_from(Attachment)) or 0),
            }
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--file-kib", type=int, default=100, help="size of each case's file")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="rh-bench-backup-"))
    cluster = PgCluster()
    try:
        with cluster.admin() as conn:
            conn.execute('CREATE DATABASE "bench_source"')
            conn.execute('CREATE DATABASE "bench_restored"')
        source_url, target_url = cluster.url("bench_source"), cluster.url("bench_restored")
        engine = make_engine(source_url)
        upgrade(engine)
        engine.dispose()
        source = Settings(data_dir=folder / "source", database_url=source_url, intake_limit_per_hour=10**8)
        filing_s = file_cases(source, args.cases, args.file_kib * 1024)
        private, public = generate_keypair()
        secrets = load_secrets(source)

        started = time.perf_counter()
        made = write_backup(source, secrets, public, folder / "backup.rhbk")
        backup_s = time.perf_counter() - started

        target = Settings(data_dir=folder / "restored", database_url=target_url)
        target.data_dir.mkdir()
        shutil.copytree(source.data_dir / "secrets", target.data_dir / "secrets")
        started = time.perf_counter()
        restored = restore_backup(target, secrets, private, made.path)
        restore_s = time.perf_counter() - started
        assert restored.audit.ok
        before, after = counts(source_url), counts(target_url)
        assert before == after, (before, after)

        results: dict[str, Any] = {
            "cases": args.cases,
            "file_bytes": args.file_kib * 1024,
            "filing_s": round(filing_s, 2),
            "backup_s": round(backup_s, 2),
            "restore_s": round(restore_s, 2),
            "archive_bytes": made.archive_bytes,
            "blob_bytes": made.blob_bytes,
            "blobs": made.blobs,
            "audit_events_checked": restored.audit.checked,
            "rows_restored": after,
            "database": "postgresql",
        }
        print(
            f"{args.cases} cases with a {args.file_kib} KiB file each (filed in {filing_s:.1f} s): "
            f"backup {backup_s:.2f} s ({made.archive_bytes / 1e6:.1f} MB archive), restore {restore_s:.2f} s "
            f"(verified, audit chain of {restored.audit.checked} events intact); {after['cases']} cases and "
            f"{after['attachments']} attachments back"
        )
        out = ROOT / "bench" / "results" / "backup_restore.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2))
        print(f"written to {out.relative_to(ROOT)}")
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
