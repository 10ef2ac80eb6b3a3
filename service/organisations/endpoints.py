"""JSON API of an organisation's leads: list, grant, revoke. Anyone who does not lead it gets 404."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from service.auth.deps import StaffDep, StaffWriteDep
from service.auth.errors import AccountError
from service.deps import DbSession, RuntimeDep
from service.errors import NotFound, ValidationFailed, error_responses
from service.identity.models import MembershipRole
from service.organisations.schemas import MemberGrant, MemberRead
from service.organisations.service import lead_view
from service.validation import public_error
from service.web import StrictRoute

router = APIRouter(prefix="/api/v1/organisations", tags=["organisations"], route_class=StrictRoute)

_NOT_FOUND = "No such organisation led by this subject (or no such member)"
_READ_ERRORS = error_responses(401, 403, 422, described={404: _NOT_FOUND})
_WRITE_ERRORS = error_responses(
    401,
    403,
    413,
    described={
        404: _NOT_FOUND,
        422: "The account cannot be granted (unknown, no own password yet, administrator or coordinator, "
        "disabled); the type names the reason",
    },
)


@router.get(
    "/{organisation_id}/members",
    response_model=list[MemberRead],
    responses=_READ_ERRORS,
    summary="The members of an organisation the subject leads",
)
def list_members(organisation_id: str, subject: StaffDep, runtime: RuntimeDep) -> list[MemberRead]:
    with runtime.sessions() as db:
        view = lead_view(db, subject, organisation_id)
    return [
        MemberRead(
            user_id=m.user_id,
            display_name=m.display_name,
            email=m.email,
            role=MembershipRole(m.role),
            holds_keys=m.holds_keys,
        )
        for m in view.members
    ]


@router.post(
    "/{organisation_id}/members",
    response_model=MemberRead,
    status_code=status.HTTP_201_CREATED,
    responses=_WRITE_ERRORS,
    summary="Grant the organisation key to a member (audited)",
)
def grant_member(
    organisation_id: str, body: MemberGrant, subject: StaffWriteDep, runtime: RuntimeDep, db: DbSession
) -> MemberRead:
    """Every live key epoch of the organisation is wrapped from the lead's own grants to the member's public
    key. An account still on its initial password has no key and is refused (422, type
    ``organisation.no_own_password``)."""
    lead_view(db, subject, organisation_id)
    try:
        user = runtime.accounts.user_by_email(db, body.email)
        runtime.accounts.grant_as_lead(db, subject, organisation_id, user, body.role)
    except AccountError as exc:
        # Raised: the request's unit of work rolls the refused grant back.
        raise ValidationFailed(
            [public_error(["body", "email"], f"organisation.{exc.code}", str(exc))]
        ) from None
    return MemberRead(
        user_id=user.id,
        display_name=user.display_name,
        email=user.email,
        role=body.role,
        holds_keys=True,
    )


@router.delete(
    "/{organisation_id}/members/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=_WRITE_ERRORS,
    summary="Revoke a member: their grants go and the organisation begins a new key epoch (audited)",
)
def revoke_member(
    organisation_id: str, user_id: str, subject: StaffWriteDep, runtime: RuntimeDep, db: DbSession
) -> Response:
    lead_view(db, subject, organisation_id)
    try:
        removed = runtime.accounts.revoke_as_lead(db, subject, organisation_id, user_id)
    except AccountError as exc:
        raise ValidationFailed(
            [public_error(["path", "user_id"], f"organisation.{exc.code}", str(exc))]
        ) from None
    # Not removed: nothing was written (no such member), so the 404's rollback loses nothing.
    if not removed:
        raise NotFound()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
