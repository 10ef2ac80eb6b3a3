"""Imports every feature's models so that metadata (and Alembic) sees all tables."""

from service.audit.models import AuditEvent
from service.auth.models import RecoveryCode, StaffUser, WebSession
from service.cases.models import (
    Attachment,
    Case,
    CaseKeyGrant,
    CaseMessage,
    CaseNote,
    Incident,
    RoutingRecord,
)
from service.db import Base
from service.organisations.models import Membership, Organisation
from service.outbox.models import OutboxMessage
from service.ratelimit.models import RateLimitCounter
from service.statistics.models import StatisticsExtract

__all__ = [
    "Attachment",
    "AuditEvent",
    "Base",
    "Case",
    "CaseKeyGrant",
    "CaseMessage",
    "CaseNote",
    "Incident",
    "Membership",
    "Organisation",
    "OutboxMessage",
    "RateLimitCounter",
    "RecoveryCode",
    "RoutingRecord",
    "StaffUser",
    "StatisticsExtract",
    "WebSession",
]
