"""Coordinator figures under /api/v1/dashboard (coordinators only; everyone else gets 404)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter

from service.auth.deps import CoordinatorDep
from service.cases.response_times import response_times
from service.db import utcnow
from service.deps import RuntimeDep

router = APIRouter(prefix="/api/v1/dashboard", tags=["dashboard"])


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
