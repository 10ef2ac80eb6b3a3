"""Coordinator figures under /api/v1/dashboard (coordinators only; everyone else gets 404)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter

from service.auth.deps import CoordinatorDep
from service.cases.response_times import response_times
from service.db import utcnow
from service.deps import RuntimeDep
from service.statistics.ledger import published

router = APIRouter(prefix="/api/v1/dashboard", tags=["dashboard"])
public_router = APIRouter(prefix="/api/v1/public", tags=["public statistics"])


@router.get(
    "/response-times",
    responses={404: {"description": "Not a coordinator"}},
    summary="Time to acknowledge and to first answer per organisation (7-day and 3-month marks)",
)
def get_response_times(subject: CoordinatorDep, runtime: RuntimeDep) -> list[dict[str, Any]]:
    with runtime.sessions() as db:
        figures = response_times(db, utcnow())
        runtime.audit.append(
            db,
            actor_kind="staff",
            actor_id=subject.user_id,
            action="dashboard.view",
            object_type="dashboard",
            object_id="response-times",
        )
        db.commit()
    return [asdict(item) for item in figures]


@public_router.get(
    "/releases",
    summary="The published differentially private releases (from the release store only)",
)
def get_releases(runtime: RuntimeDep) -> list[dict[str, Any]]:
    """Every number here was drawn once, stored, and is returned as stored: never recomputed."""
    with runtime.sessions() as db:
        return [
            {
                "id": record.id,
                "published_at": record.published_at.isoformat() if record.published_at else None,
                **record.payload,
            }
            for record in published(db)
        ]
