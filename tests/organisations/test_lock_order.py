"""Key changes lock an organisation's row before the audit chain, never after (AuditLog's deadlock order).

A report with perpetrator identifiers holds its organisations' rows shared (each grant's guard) and then,
when a match fires, appends to the audit chain. A renewal of the recovery shares, a sign-in that renews a
key born under the operator's initial password and an account reset each rotate organisations and audit
it. If one of them held the chain and then waited for a row such a filing holds, each would wait for the
other until PostgreSQL broke the circle after a second, failing one of them: the report (a 503 for a
threatened person) or the key change. So every such path locks its organisations first, and
``lock_organisation`` refuses the other order on both databases: a path that would risk the deadlock under
load fails in every test that takes it.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select, update

from service.audit.models import AuditEvent
from service.auth.service import AccountService
from service.db import utcnow
from service.identity import repository as organisations
from service.identity.custody import KeyCustody
from service.identity.grants import lock_organisation, lock_organisations
from service.identity.models import CaseKeyGrant, MembershipRole, Organisation
from service.matching.service import MATCH_ACTION
from service.reports import repository as report_rows
from service.reports.filing import CaseDraft
from service.reports.schemas import ReportCreate
from service.runtime import Runtime
from tests.support.blocking import waits_for
from tests.support.forms import report_body
from tests.support.staff import MakeStaff

BAYERN = "beratung-by"
SAXONY = "beratung-sn"
HANDLE = {"kind": "handle", "value": "ratsdrohung_qz", "platform": "instagram"}
REPORT = report_body(
    land="14",
    description="Drohnachrichten nach der Ratssitzung.",
    perpetrator_identifiers=[HANDLE],
    consent_matching=True,
)


def audit(runtime: Runtime, session: Any) -> None:
    runtime.audit.append(session, actor_kind="system", actor_id=None, action="test.first")


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_an_account_reset_beside_a_filing_whose_match_fires_waits_for_it_and_both_succeed(
    client: TestClient,
    runtime: Runtime,
    accounts: AccountService,
    make_staff: MakeStaff,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A counsellor of Bayern and Saxony is reset (both organisations rotate, each audited) while a Saxon
    report holds Saxony's row shared and has not appended yet. The reset must wait for that row holding
    nothing the filing needs; then the filing's match fires (an audit row) and it commits, and the reset
    follows. Before the fix the reset rotated Bayern first, appended, and then waited for Saxony's row while
    holding the chain: the match's append waited for the reset, PostgreSQL found the circle after a second
    and failed one of the two."""
    staff = make_staff(memberships=[(BAYERN, MembershipRole.counsellor), (SAXONY, MembershipRole.counsellor)])
    assert client.post("/api/v1/reports", json=REPORT).status_code == 201
    deferred: list[tuple[Any, ...]] = []
    with monkeypatch.context() as patched:
        patched.setattr(runtime.intake.matching, "register", lambda *args: deferred.append(args))
        holder = runtime.sessions()
        filed = runtime.intake.file_report(holder, ReportCreate.model_validate(REPORT), CaseDraft.new(), [])
    ids = org_ids(runtime)
    held = set(
        holder.scalars(select(CaseKeyGrant.organisation_id).where(CaseKeyGrant.case_id == filed.case_id))
    )
    assert ids[SAXONY] in held, "the filing holds Saxony's row shared (its grant's guard)"
    assert ids[BAYERN] not in held, "and not Bayern's, which the reset rotates first by name"
    failures: list[BaseException] = []

    def reset_beside() -> None:
        try:
            with runtime.sessions() as db:
                user = accounts.user_by_id(db, staff.user_id)
                assert user is not None
                accounts.reset(db, user)
                db.commit()
        except BaseException as error:
            failures.append(error)

    def match_and_commit() -> None:
        (session, case_id, identifiers, budget) = deferred[0]
        runtime.matching.register(session, case_id, identifiers, budget)
        holder.commit()
        holder.close()

    waits_for(match_and_commit, reset_beside, "the reset of a member of both organisations")

    assert failures == []
    with runtime.sessions() as db:
        matches = select(func.count()).select_from(AuditEvent).where(AuditEvent.action == MATCH_ACTION)
        assert db.scalar(matches) == 1
        epochs = {row[0]: row[1] for row in db.execute(select(Organisation.id, Organisation.current_epoch))}
        grant_epoch = db.scalar(
            select(CaseKeyGrant.epoch).where(
                CaseKeyGrant.case_id == filed.case_id, CaseKeyGrant.organisation_id == ids[SAXONY]
            )
        )
    assert epochs[ids[BAYERN]] == epochs[ids[SAXONY]] == 2, "both organisations began a new epoch"
    assert grant_epoch == 1, "the report filed before the rotation is wrapped to the epoch it was routed to"


def org_ids(runtime: Runtime) -> dict[str, str]:
    with runtime.sessions() as db:
        return {slug: id_ for id_, slug in db.execute(select(Organisation.id, Organisation.slug))}


def test_an_organisation_locked_after_an_audit_row_is_refused(runtime: Runtime) -> None:
    """The order itself, on both databases: after an append, locking an organisation not locked before is a
    RuntimeError; one locked before may be locked again (a renewal's rotation); a new transaction starts
    afresh."""
    with runtime.sessions() as db:
        bayern, saxony = (organisations.by_slug(db, slug) for slug in (BAYERN, SAXONY))
        assert bayern is not None
        assert saxony is not None
        lock_organisations(db, [bayern])
        audit(runtime, db)
        lock_organisation(db, bayern)
        with pytest.raises(RuntimeError, match="after the audit chain"):
            lock_organisation(db, saxony)
        db.rollback()
        lock_organisation(db, saxony)
        audit(runtime, db)
        db.commit()
        audit(runtime, db)
        with pytest.raises(RuntimeError, match="after the audit chain"):
            lock_organisation(db, bayern)


def test_a_grant_written_after_an_audit_row_is_refused(
    runtime: Runtime, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A filing's grants hold their organisations' rows shared: never after the chain's lock either."""
    rows: list[Any] = []
    original = report_rows.insert_new

    def capture(session: Any, new: Any) -> None:
        rows.extend(new)
        original(session, new)

    with runtime.sessions() as db:
        with monkeypatch.context() as patched:
            patched.setattr(report_rows, "insert_new", capture)
            runtime.intake.file_report(db, ReportCreate.model_validate(report_body()), CaseDraft.new(), [])
        db.rollback()
        grants = [row for row in rows if row.table is CaseKeyGrant.__table__]
        assert grants
        audit(runtime, db)
        with pytest.raises(RuntimeError, match="after the audit chain"):
            report_rows.insert_new(db, grants)


class Statements:
    """The statements a block sends on the runtime's engine, in order, with their parameters."""

    def __init__(self, runtime: Runtime) -> None:
        self.engine = runtime.engine
        self.sent: list[tuple[str, Any]] = []

    def __enter__(self) -> Statements:
        event.listen(self.engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        self.sent.append((" ".join(statement.split()), parameters))

    def rows_first_locked_after_the_chain(self, organisation_ids: set[str]) -> list[str]:
        """Statements that lock or change an organisation's row this block had not locked before the
        audit chain's lock (a row locked before may be changed after: it is held already)."""
        touching = re.compile(r"^UPDATE organisation SET|FROM organisation\b.*FOR (UPDATE|SHARE)")
        held: set[str] = set()
        chain = False
        late = []
        for sql, parameters in self.sent:
            chain = chain or "pg_advisory_xact_lock" in sql
            values = parameters.values() if isinstance(parameters, dict) else parameters or ()
            rows = {value for value in values if isinstance(value, str) and value in organisation_ids}
            if not touching.search(sql):
                continue
            if chain and rows - held:
                late.append(sql)
            held |= rows
        return late


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_no_key_change_locks_or_changes_an_organisation_row_after_the_chain(
    runtime: Runtime, accounts: AccountService, make_staff: MakeStaff
) -> None:
    """What the RuntimeError cannot see (a plain UPDATE of the row also locks it): the statements of every
    key change over two organisations, read as PostgreSQL gets them. The reset and the renewal rotate; the
    retention run destroys two organisations' first epochs, retired and unused, with their format-1
    recovery keys (which changes each organisation's row)."""
    staff = make_staff(memberships=[(BAYERN, MembershipRole.counsellor), (SAXONY, MembershipRole.counsellor)])
    with runtime.sessions() as db:
        db.execute(update(Organisation).values(recovery_sealed_private_key=b"\x01format-1"))
        db.commit()
    with Statements(runtime) as reset, runtime.sessions() as db:
        user = accounts.user_by_id(db, staff.user_id)
        assert user is not None
        accounts.reset(db, user)
        db.commit()
    with Statements(runtime) as destroy, runtime.sessions() as db:
        destroyed = KeyCustody(runtime.audit).destroy_unneeded_epochs(db, utcnow() + timedelta(days=2))
        db.commit()
    assert {epoch for _, epoch in destroyed} == {1}
    assert len(destroyed) == 2, "both organisations' first epochs, so the second comes after an audit row"

    ids = set(org_ids(runtime).values())
    assert reset.rows_first_locked_after_the_chain(ids) == []
    assert destroy.rows_first_locked_after_the_chain(ids) == []
    assert any("FOR UPDATE" in sql for sql, _ in destroy.sent), "the organisations were locked first"
