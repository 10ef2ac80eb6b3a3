"""The published differentially private releases under /api/v1/public (anyone; the release store only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from service.deps import RuntimeDep
from service.errors import error_responses
from service.statistics.public.ledger import published
from service.web import StrictRoute

router = APIRouter(prefix="/api/v1/public", tags=["public statistics"], route_class=StrictRoute)


@router.get(
    "/releases",
    responses=error_responses(),
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
