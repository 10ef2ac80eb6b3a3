"""Who may generate a dossier, an evidence ZIP or a letter: one test over every such route, for the reporter
(/fall: the session and the form token) and for staff (/intern/faelle/{id}: a counsellor of a holding
organisation; 404 for another organisation's counsellor, for a member removed from the holding organisation
and for a case that does not exist, before the form token is looked at). Nothing refused is generated or
audited. Both databases. What each download holds is tested in test_dossier.py, test_evidence_zip.py and
test_letters.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import func, select

from service.audit.models import AuditEvent
from service.cases.models import Case
from service.identity.models import MembershipRole, Organisation
from service.runtime import Runtime
from tests.support.evidence import PDF, Browsers, browsers, file_report, sign_in, staff_browser
from tests.support.forms import csrf_token
from tests.support.staff import MakeStaff, Staff

# Each generating route by its last path segment, with the form fields it needs besides the token and the
# audit action a success records.
ROUTES = {
    "dossier": ({}, "dossier.generated"),
    "beweise": ({}, "evidence.zip"),
    "brief": ({"kind": "auskunftssperre", "format": "txt", "letter_name": "Erika"}, "letter.generated"),
}
ACTIONS = tuple(action for _, action in ROUTES.values())
MISSING = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def open_browser(runtime: Runtime) -> Iterator[Browsers]:
    with browsers(runtime) as made:
        yield made


def generated(runtime: Runtime) -> int:
    with runtime.sessions() as db:
        return (
            db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action.in_(ACTIONS))) or 0
        )


@pytest.mark.parametrize("route", list(ROUTES))
def test_the_reporter_needs_the_session_and_the_form_token(
    runtime: Runtime, open_browser: Browsers, route: str
) -> None:
    fields, action = ROUTES[route]
    reporter = open_browser.new()
    sign_in(reporter, file_report(reporter, [("attachments", ("Brief.pdf", PDF, "application/pdf"))]))
    path = f"/fall/{route}"
    assert reporter.post(path, data={**fields, "csrf_token": "0" * 64}).status_code == 403
    assert reporter.post(path, data=fields).status_code == 403
    stranger = open_browser.new()
    token = csrf_token(stranger.get("/fall").text)
    signed_out = stranger.post(path, data={**fields, "csrf_token": token}, follow_redirects=False)
    assert signed_out.status_code == 303
    assert signed_out.headers["location"] == "/fall"
    assert generated(runtime) == 0
    # The same request with the reporter's own token succeeds (so the refusals above were the checks).
    ok = reporter.post(path, data={**fields, "csrf_token": csrf_token(reporter.get("/fall").text)})
    assert ok.status_code == 200
    with runtime.sessions() as db:
        assert db.scalars(select(AuditEvent.action).where(AuditEvent.action.in_(ACTIONS))).all() == [action]


@pytest.mark.parametrize("route", list(ROUTES))
def test_staff_who_do_not_hold_the_case_get_404_and_the_holder_needs_the_token(
    runtime: Runtime,
    open_browser: Browsers,
    make_staff: MakeStaff,
    code: Callable[[Staff], str],
    route: str,
) -> None:
    fields, action = ROUTES[route]
    reporter = open_browser.new()
    file_report(reporter, [("attachments", ("Brief.pdf", PDF, "application/pdf"))])
    with runtime.sessions() as db:
        case_id = db.scalars(select(Case.id)).one()
    holder = make_staff(memberships=[("beratung-by", MembershipRole.counsellor)])
    outsider = make_staff(memberships=[("beratung-sn", MembershipRole.counsellor)])
    leaver = make_staff(memberships=[("beratung-by", MembershipRole.counsellor)])
    clients = {
        who: staff_browser(open_browser, staff, code)
        for who, staff in (("holder", holder), ("outsider", outsider), ("leaver", leaver))
    }
    # The leaver is removed from the holding organisation while signed in.
    with runtime.sessions() as db:
        organisation = db.scalars(select(Organisation).where(Organisation.slug == "beratung-by")).one()
        assert runtime.accounts.revoke_membership(db, organisation.id, leaver.user_id)
        db.commit()
    path = f"/intern/faelle/{case_id}/{route}"

    for who in ("outsider", "leaver"):
        client = clients[who]
        token = csrf_token(client.get("/intern").text)
        assert client.post(path, data={**fields, "csrf_token": token}).status_code == 404, who
        # Without a token, too: a 403 would tell that the case exists.
        assert client.post(path, data=fields).status_code == 404, who
        missing = f"/intern/faelle/{MISSING}/{route}"
        assert client.post(missing, data={**fields, "csrf_token": token}).status_code == 404, who
    holder_client = clients["holder"]
    assert holder_client.post(path, data={**fields, "csrf_token": "0" * 64}).status_code == 403
    assert generated(runtime) == 0

    page = holder_client.get(f"/intern/faelle/{case_id}").text
    assert f'action="/intern/faelle/{case_id}/{route}"' in page
    assert holder_client.post(path, data={**fields, "csrf_token": csrf_token(page)}).status_code == 200
    with runtime.sessions() as db:
        (event,) = db.scalars(select(AuditEvent).where(AuditEvent.action.in_(ACTIONS))).all()
    assert (event.action, event.actor_id) == (action, holder.user_id)
