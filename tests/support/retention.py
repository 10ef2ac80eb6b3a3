"""Helpers of the retention tests (tests/retention): reports as users file them, closure set-up, and
censuses of rows and blob files to compare before and after a purge."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

import service.models  # noqa: F401 - every table in the metadata, for the censuses below
from service.auth.models import WebSession
from service.cases.models import Case
from service.db import Base
from service.evidence.models import Attachment
from service.extract.models import StatisticsExtract
from service.runtime import Runtime
from tests.support.forms import report_body

REPORT = report_body(
    district_ags="09162",
    type_codes=["A3a"],
    description="Todesdrohung im Briefkasten, handschriftlich.",
    channel="letter",
    urgency="high",
    contact_email="buergermeisterin@example.org",
)
PDF = b"%PDF-1.4\n% Screenshot der Drohung\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"


@dataclass(frozen=True)
class Filed:
    receipt: str
    case_id: str


FileReport = Callable[..., Filed]
# Works a filed case (see tests/retention/conftest.py) and returns the reporter's signed-in client.
WorkCase = Callable[[Filed], TestClient]


def set_closure(
    runtime: Runtime, case_id: str, *, closed_at: datetime | None, outcome: str | None, status: str = "closed"
) -> None:
    """Set-up only: what closing the case through the service leaves, but at a chosen time."""
    with runtime.sessions() as db:
        db.execute(
            update(Case)
            .where(Case.id == case_id)
            .values(status=status, outcome=outcome, closed_at=closed_at)
            .execution_options(synchronize_session=False)
        )
        db.commit()


def case_rows(runtime: Runtime, case_id: str) -> dict[str, int]:
    """Rows of the case in every table that references ``case_file`` (found in the metadata, so a table
    added later is counted too), the case row itself, and the reporter sessions of the case."""
    counts: dict[str, int] = {}
    with runtime.sessions() as db:
        for table in Base.metadata.sorted_tables:
            for fk in table.foreign_keys:
                if fk.column.table.name == Case.__tablename__:
                    query = select(func.count()).select_from(table).where(fk.parent == case_id)
                    counts[f"{table.name}.{fk.parent.name}"] = int(db.scalar(query) or 0)
        counts["case_file"] = int(db.scalar(select(func.count()).where(Case.id == case_id)) or 0)
        query = select(func.count()).where(WebSession.kind == "reporter", WebSession.subject_id == case_id)
        counts["web_session"] = int(db.scalar(query) or 0)
    return counts


def blob_names(runtime: Runtime, case_id: str) -> list[str]:
    with runtime.sessions() as db:
        return list(db.scalars(select(Attachment.blob_name).where(Attachment.case_id == case_id)))


def extract_rows(runtime: Runtime) -> list[tuple[Any, ...]]:
    with runtime.sessions() as db:
        rows = db.execute(select(StatisticsExtract.__table__).order_by(StatisticsExtract.id))
        return [tuple(row) for row in rows]


def table_census(runtime: Runtime) -> dict[str, int]:
    """Row count of every table: a dry run must leave all of them as they were."""
    with runtime.sessions() as db:
        return {
            table.name: int(db.scalar(select(func.count()).select_from(table)) or 0)
            for table in Base.metadata.sorted_tables
        }


def files_on_disk(runtime: Runtime) -> list[str]:
    root = runtime.settings.blob_dir
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []
