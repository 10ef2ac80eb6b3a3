"""Demo data for the embedded default: organisations with keys, a few reports filed through the real intake.

Demo only: recovery keys and receipts are written to files in the data folder so that a person trying the
service can use them. Production refuses to load any of this.
"""

from __future__ import annotations

import json
import os
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from service.config import Settings
from service.organisations import repository
from service.organisations.service import create_organisation
from service.reports.schemas import ReportCreate
from service.reports.service import CaseDraft
from service.runtime import build_runtime

DEMO_REPORTS: list[dict[str, Any]] = [
    {
        "land": "09",
        "district_ags": "09162",
        "municipality": "Musterstadt (Demo)",
        "type_codes": ["A3a"],
        "description": "Demo: Drohschreiben mit Todesdrohung nach der Ratssitzung.",
        "channel": "letter",
        "urgency": "high",
        "office": "mayor_volunteer",
    },
    {
        "land": "14",
        "district_ags": "14522",
        "type_codes": ["A1", "A10"],
        "description": "Demo: Beleidigungen und ein Shitstorm unter einem Beitrag der Gemeinde.",
        "channel": "social_media.public_post",
        "urgency": "normal",
        "office": "council_member",
    },
    {
        "land": "03",
        "type_codes": ["C1"],
        "description": "Demo: Reifen am Dienstwagen zerstochen.",
        "channel": "in_person.home",
        "urgency": "normal",
        "office": "mayor_fulltime",
    },
]


def _write_private(path: Path, data: Any) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, ensure_ascii=False, indent=2)


def load_demo(settings: Settings) -> dict[str, int]:
    runtime = build_runtime(settings)
    created_orgs = 0
    filed = 0
    try:
        recovery_path = settings.data_dir / "demo-org-recovery.json"
        recovery: dict[str, str] = json.loads(recovery_path.read_text()) if recovery_path.exists() else {}
        with runtime.sessions() as session:
            for org in runtime.policy.organisations:
                existing = repository.by_slug(session, org.slug)
                if existing is not None and existing.public_key is not None:
                    continue
                result = create_organisation(session, org.slug, org.display_name, org.kind)
                recovery[org.slug] = result.recovery_key
                created_orgs += 1
            session.commit()
        if created_orgs:
            _write_private(recovery_path, recovery)
        receipts_path = settings.data_dir / "demo-receipts.json"
        if not receipts_path.exists():
            receipts = []
            for index, raw in enumerate(DEMO_REPORTS):
                data = ReportCreate.model_validate(
                    {**raw, "occurred_on": (date.today() - timedelta(days=3 + index)).isoformat()}  # noqa: DTZ011
                )
                with runtime.sessions() as session:
                    filed_report = runtime.intake.file_report(session, data, CaseDraft.new(), [])
                receipts.append({"receipt": filed_report.receipt, "routed_to": filed_report.routed_to})
                filed += 1
            _write_private(receipts_path, receipts)
    finally:
        runtime.dispose()
    return {"organisations_created": created_orgs, "reports_filed": filed}
