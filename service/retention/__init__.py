"""Retention: closed cases are purged after the period in ``policies/retention.yaml`` (docs/retention.md)."""

from service.retention.policy import RetentionPolicy, load_retention
from service.retention.service import (
    CasePurge,
    CaseResult,
    PurgeCandidate,
    PurgeReport,
    RetentionService,
)

__all__ = [
    "CasePurge",
    "CaseResult",
    "PurgeCandidate",
    "PurgeReport",
    "RetentionPolicy",
    "RetentionService",
    "load_retention",
]
