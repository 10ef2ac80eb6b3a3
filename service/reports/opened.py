"""A case unlocked with its key, and the sealing contexts and days the intake's modules share."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from service.cases.models import Case
from service.crypto import Context
from service.i18n import LOCAL_ZONE


@dataclass(frozen=True)
class OpenedCase:
    case: Case
    data_key: bytes


def ctx(purpose: str, case_id: str, record_id: str = "") -> Context:
    return Context(purpose, case_id=case_id, record_id=record_id)


def local_today(now: datetime) -> date:
    return now.astimezone(LOCAL_ZONE).date()


def local_day(moment: datetime | None) -> str | None:
    return moment.astimezone(LOCAL_ZONE).date().isoformat() if moment is not None else None
