"""Imports every feature's models so that metadata (and Alembic) sees all tables."""

from service.audit.models import AuditEvent
from service.auth.models import WebSession
from service.cases.models import Attachment, Case, CaseKeyGrant, Incident, RoutingRecord
from service.db import Base
from service.organisations.models import Organisation
from service.outbox.models import OutboxMessage
from service.ratelimit.models import RateLimitCounter
from service.statistics.models import StatisticsExtract

__all__ = [
    "AuditEvent",
    "Attachment",
    "Base",
    "Case",
    "CaseKeyGrant",
    "Incident",
    "Organisation",
    "OutboxMessage",
    "RateLimitCounter",
    "RoutingRecord",
    "StatisticsExtract",
    "WebSession",
]
