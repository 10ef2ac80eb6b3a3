"""The published differentially private releases under /api/v1/public (anyone; the release store only)."""

from __future__ import annotations

from fastapi import APIRouter

from service.deps import RuntimeDep
from service.errors import error_responses
from service.statistics.public.ledger import content_of, published
from service.statistics.public.schemas import PublicReleaseRead
from service.web import StrictRoute

router = APIRouter(prefix="/api/v1/public", tags=["public statistics"], route_class=StrictRoute)


@router.get(
    "/releases",
    responses=error_responses(),
    summary="The published differentially private releases (from the release store only)",
)
def get_releases(runtime: RuntimeDep) -> list[PublicReleaseRead]:
    """Every number here was drawn once, stored, and is returned as stored: never recomputed."""
    with runtime.sessions() as db:
        return [
            PublicReleaseRead.model_validate(
                {
                    "id": record.id,
                    "published_at": record.published_at.isoformat() if record.published_at else None,
                    **content_of(record),
                }
            )
            for record in published(db)
        ]
