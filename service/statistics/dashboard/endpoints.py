"""Coordinator figures under /api/v1/dashboard (coordinators only; everyone else gets 404)."""

from __future__ import annotations

from fastapi import APIRouter

from service.auth.deps import CoordinatorDep
from service.cases.response_times import response_times
from service.db import utcnow
from service.deps import DbSession, RuntimeDep
from service.errors import NotFound, error_responses
from service.statistics.dashboard.schemas import (
    ResponseTimesRead,
    SnapshotCellRead,
    SnapshotListed,
    SnapshotRead,
    SnapshotTableRead,
)
from service.statistics.dashboard.service import audit_view, released_snapshots, snapshot_of
from service.web import StrictRoute

router = APIRouter(prefix="/api/v1/dashboard", tags=["dashboard"], route_class=StrictRoute)

# Staff only (401 without a session, 403 before the initial password is changed); for anyone but a
# coordinator the figures do not exist (404).
_COORDINATOR_ERRORS = error_responses(401, 403, described={404: "Not a coordinator"})


@router.get(
    "/response-times",
    responses=_COORDINATOR_ERRORS,
    summary="Time to acknowledge and to first answer per organisation (7-day and 3-month marks)",
)
def get_response_times(
    subject: CoordinatorDep, runtime: RuntimeDep, db: DbSession
) -> list[ResponseTimesRead]:
    figures = [
        ResponseTimesRead.model_validate(item, from_attributes=True) for item in response_times(db, utcnow())
    ]
    # Last: the audit chain's lock is held from here to the commit, when this returns.
    audit_view(db, runtime.audit, subject.user_id, "response-times")
    return figures


@router.get(
    "/snapshots",
    responses=_COORDINATOR_ERRORS,
    summary="The released monthly snapshots of the coordinator tables",
)
def list_snapshots(subject: CoordinatorDep, runtime: RuntimeDep, db: DbSession) -> list[SnapshotListed]:
    found = [SnapshotListed(as_of=s.as_of, revision=s.revision) for s in released_snapshots(db)]
    audit_view(db, runtime.audit, subject.user_id, "snapshots")
    return found


@router.get(
    "/snapshots/{as_of}",
    responses=error_responses(
        401, 403, 422, described={404: "Not a coordinator, or no released snapshot for this month"}
    ),
    summary="One snapshot: every catalogue table as coordinators see it ('< 5' and '–' for what is hidden)",
)
def get_snapshot(as_of: str, subject: CoordinatorDep, runtime: RuntimeDep, db: DbSession) -> SnapshotRead:
    snapshot = snapshot_of(db, as_of)
    if snapshot is None:
        raise NotFound()
    shown = SnapshotRead(
        as_of=snapshot.as_of,
        revision=snapshot.revision,
        tables=[
            SnapshotTableRead(
                id=table.id,
                dimensions=list(table.dimensions),
                cells=[
                    SnapshotCellRead(
                        key=list(cell.key),
                        persons=cell.display("persons"),
                        reports=cell.display("reports"),
                    )
                    for cell in table.cells
                ],
            )
            for table in snapshot.tables
        ],
    )
    # Last, after the tables are built: the audit chain's lock is held from here to the commit.
    audit_view(db, runtime.audit, subject.user_id, f"snapshot:{as_of}")
    return shown
