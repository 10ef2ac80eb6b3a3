"""Imports every feature's models so that metadata (and Alembic) sees all tables."""

from service.audit.models import AuditEvent
from service.auth.models import RecoveryCode, WebSession
from service.cases.models import Case, CaseMessage, CaseNote, Incident, ReminderLog, RoutingRecord
from service.db import Base
from service.evidence.models import Attachment
from service.extract.models import StatisticsExtract
from service.identity.models import CaseKeyGrant, Membership, Organisation, StaffUser
from service.knowledge.models import KnowledgeArticle, SavedSelfcheck, SelfcheckTally
from service.matching.models import PerpetratorToken
from service.outbox.models import DeliveryLog, OutboxMessage, WorkerHeartbeat
from service.ratelimit.models import RateLimitCounter
from service.reports.models import SubmissionToken
from service.statistics.dashboard.models import StatisticsSnapshot
from service.statistics.public.models import BudgetSpend, PrivacyBudget, PublicReleaseRecord

__all__ = [
    "Attachment",
    "AuditEvent",
    "Base",
    "BudgetSpend",
    "Case",
    "CaseKeyGrant",
    "CaseMessage",
    "CaseNote",
    "DeliveryLog",
    "Incident",
    "KnowledgeArticle",
    "Membership",
    "Organisation",
    "OutboxMessage",
    "PerpetratorToken",
    "PrivacyBudget",
    "PublicReleaseRecord",
    "RateLimitCounter",
    "RecoveryCode",
    "ReminderLog",
    "RoutingRecord",
    "SavedSelfcheck",
    "SelfcheckTally",
    "StaffUser",
    "StatisticsExtract",
    "StatisticsSnapshot",
    "SubmissionToken",
    "WebSession",
    "WorkerHeartbeat",
]
