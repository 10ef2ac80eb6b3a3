"""The intake routes with the organisations it read up to a second ago, and no case reaches an organisation
that changed since: each grant is checked against the organisation's row by the insert that writes it.

Adversaries: a removed member (their organisation's key is rotated; they may hold the old epoch's key),
and an organisation disabled in a hurry (compromised, dissolved). Both changes are made here as another
process makes them, on a connection of its own, so this process's cache does not hear of them.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from service.crypto import DecryptionError, generate_keypair, unwrap_key
from service.errors import ServiceBusy
from service.identity import repository
from service.identity.models import CaseKeyGrant, Organisation
from service.identity.repository import ReceiverCache
from service.reports.filing import CaseDraft
from service.reports.opened import ctx
from service.reports.schemas import ReportCreate
from service.runtime import Runtime
from tests.support.blocking import waits_for
from tests.support.forms import report_body

REPORT = report_body(description="Drohschreiben im Briefkasten.")
BAYERN = "beratung-by"


def count_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    reads: list[int] = []
    original = repository.receivers

    def counted(session: Session) -> dict[str, repository.Receiver]:
        found = original(session)
        # Counted once read: the filing on the loop has no database to read with and leaves it to a session.
        reads.append(1)
        return found

    monkeypatch.setattr(repository, "receivers", counted)
    return reads


def elsewhere(runtime: Runtime, **values: Any) -> None:
    """Change Bayern's row as another process would: a connection of its own, no session of ours."""
    with runtime.engine.begin() as connection:
        connection.execute(update(Organisation).where(Organisation.slug == BAYERN).values(**values))


def bayern_id(runtime: Runtime) -> str:
    with runtime.sessions() as db:
        return str(db.scalar(select(Organisation.id).where(Organisation.slug == BAYERN)))


def grants_of(runtime: Runtime, case_id: str) -> dict[str, CaseKeyGrant]:
    with runtime.sessions() as db:
        grants = db.scalars(select(CaseKeyGrant).where(CaseKeyGrant.case_id == case_id)).all()
        return {grant.organisation_id: grant for grant in grants}


def case_of(client: TestClient, runtime: Runtime) -> tuple[str, list[str]]:
    filed = client.post("/api/v1/reports", json=REPORT)
    assert filed.status_code == 201, filed.text
    with runtime.sessions() as db:
        case_id = runtime.intake.open_case(db, filed.json()["receipt"]).case.id
    return case_id, filed.json()["routed_to"]


def test_reports_within_a_second_share_one_read(
    client: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = count_reads(monkeypatch)
    for _ in range(3):
        case_of(client, runtime)
    assert len(reads) <= 1  # one read (or none: the cache may still hold the fixture's first report's)


def test_a_key_rotated_elsewhere_is_not_used_from_the_cache(
    client: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The removed member's case: their organisation's key was rotated by another process a moment ago.
    # This process still has the old key and epoch cached; the case must go to the new epoch.
    case_of(client, runtime)  # fills the cache with Bayern's current epoch
    org = bayern_id(runtime)
    with runtime.sessions() as db:
        old_epoch = int(db.scalar(select(Organisation.current_epoch).where(Organisation.id == org)) or 0)
    private, public = generate_keypair()
    elsewhere(runtime, public_key=public.raw, current_epoch=old_epoch + 1)
    reads = count_reads(monkeypatch)

    case_id, _ = case_of(client, runtime)

    assert reads, "the refused grant made the intake read the organisations again"
    grant = grants_of(runtime, case_id)[org]
    assert grant.epoch == old_epoch + 1
    assert len(unwrap_key(grant.wrapped_key, private, ctx("case_key", case_id, org))) == 32


def test_an_organisation_disabled_elsewhere_gets_no_case_from_the_cache(
    client: TestClient, runtime: Runtime
) -> None:
    _, routed = case_of(client, runtime)
    assert any("Bayern" in name for name in routed)
    elsewhere(runtime, active=False)

    case_id, routed = case_of(client, runtime)

    assert bayern_id(runtime) not in grants_of(runtime, case_id)
    assert not any("Bayern" in name for name in routed)
    assert grants_of(runtime, case_id), "the report was routed again and filed"


def test_the_guard_refuses_a_stale_grant_and_writes_nothing(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The insert itself, with a routing decision older than the change: nothing of the case is stored.
    data = ReportCreate.model_validate(REPORT)
    cache = runtime.intake._receivers
    with runtime.sessions() as db:
        cache.read(db, fresh=True)
        cases_before = db.scalar(select(func.count()).select_from(CaseKeyGrant))
    elsewhere(runtime, active=False)
    with runtime.sessions() as db:
        db.scalar(select(1))  # a transaction holding a caller's work: no refiling, a 503 instead
        stale = cache.read(db)[0]
        monkeypatch.setattr(cache, "read", lambda session, fresh=False: (stale, False))
        with pytest.raises(ServiceBusy):
            runtime.intake.file_report(db, data, CaseDraft.new(), [])
        db.rollback()
        assert db.scalar(select(func.count()).select_from(CaseKeyGrant)) == cases_before


def test_a_change_made_by_this_process_is_seen_by_the_next_report(runtime: Runtime) -> None:
    cache = ReceiverCache(max_age=3600.0)
    with runtime.sessions() as db:
        before, _ = cache.read(db)
        assert BAYERN in before
    with runtime.sessions() as db:  # the ORM, as the organisations' pages change it
        db.scalars(select(Organisation).where(Organisation.slug == BAYERN)).one().active = False
        db.commit()
    with runtime.sessions() as db:
        after, cached = cache.read(db)
    assert not cached
    assert BAYERN not in after
    with runtime.sessions() as db:  # an UPDATE statement through a session
        db.execute(update(Organisation).where(Organisation.slug == BAYERN).values(active=True))
        db.commit()
    with runtime.sessions() as db:
        again, cached = cache.read(db)
    assert not cached
    assert BAYERN in again


def test_a_change_rolled_back_keeps_the_cache(runtime: Runtime) -> None:
    cache = ReceiverCache(max_age=3600.0)
    with runtime.sessions() as db:
        cache.read(db)
    with runtime.sessions() as db:
        db.execute(update(Organisation).where(Organisation.slug == BAYERN).values(active=False))
        db.rollback()
    with runtime.sessions() as db:
        found, cached = cache.read(db)
    assert cached
    assert BAYERN in found


def test_the_cache_is_read_again_after_its_age(runtime: Runtime) -> None:
    now = [1000.0]
    cache = ReceiverCache(max_age=1.0, clock=lambda: now[0])
    with runtime.sessions() as db:
        assert cache.read(db)[1] is False
        elsewhere(runtime, active=False)
        now[0] += 0.5
        found, cached = cache.read(db)
        assert cached
        assert BAYERN in found
        now[0] += 0.6
        found, cached = cache.read(db)
        assert not cached
        assert BAYERN not in found


def test_an_old_epoch_cannot_open_the_case_after_a_rotation(client: TestClient, runtime: Runtime) -> None:
    # What the removed member holds (the old epoch's private key) opens the earlier case, not the next one.
    org = bayern_id(runtime)
    old_private, old_public = generate_keypair()
    with runtime.sessions() as db:
        epoch = int(db.scalar(select(Organisation.current_epoch).where(Organisation.id == org)) or 0)
    elsewhere(runtime, public_key=old_public.raw, current_epoch=epoch + 1)
    runtime.intake._receivers.forget()
    earlier, _ = case_of(client, runtime)
    _, new_public = generate_keypair()
    elsewhere(runtime, public_key=new_public.raw, current_epoch=epoch + 2)

    later, _ = case_of(client, runtime)

    earlier_grant = grants_of(runtime, earlier)[org]
    assert len(unwrap_key(earlier_grant.wrapped_key, old_private, ctx("case_key", earlier, org))) == 32
    later_grant = grants_of(runtime, later)[org]
    with pytest.raises(DecryptionError):
        unwrap_key(later_grant.wrapped_key, old_private, ctx("case_key", later, org))


def test_a_key_replaced_elsewhere_without_a_new_epoch_is_not_used_from_the_cache(
    client: TestClient, runtime: Runtime
) -> None:
    # Not what the service does (a new key is a new epoch), but what an operator replacing a compromised
    # key by hand might: the grant's guard compares the key itself (its digest), not only the epoch.
    case_of(client, runtime)
    org = bayern_id(runtime)
    private, public = generate_keypair()
    elsewhere(runtime, public_key=public.raw)

    case_id, _ = case_of(client, runtime)

    grant = grants_of(runtime, case_id)[org]
    assert len(unwrap_key(grant.wrapped_key, private, ctx("case_key", case_id, org))) == 32


# PostgreSQL only: SQLite lets one writer at a time, so a rotation and a filing cannot overlap there.
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_rotation_not_yet_committed_is_waited_for_and_its_epoch_used(runtime: Runtime) -> None:
    # The race the guard's share lock closes: a rotation has changed Bayern's row but not committed when
    # the filing's insert runs. The insert waits for it, sees the committed row, refuses the old epoch,
    # and the filing is routed again (a plain UPDATE locks nothing a foreign key check waits for).
    data = ReportCreate.model_validate(REPORT)
    org = bayern_id(runtime)
    with runtime.sessions() as db:
        runtime.intake._receivers.read(db, fresh=True)  # this process has the old epoch cached
        epoch = int(db.scalar(select(Organisation.current_epoch).where(Organisation.id == org)) or 0)
    private, public = generate_keypair()
    filed: list[str] = []

    def file() -> None:
        with runtime.sessions() as db:
            filed.append(runtime.intake.file_report(db, data, CaseDraft.new(), []).case_id)
            db.commit()

    with runtime.engine.connect() as rotation:
        rotation.execute(
            update(Organisation)
            .where(Organisation.id == org)
            .values(public_key=public.raw, current_epoch=epoch + 1)
        )
        waits_for(rotation.commit, file, "the filing")
    assert filed, "the filing was routed again and stored"
    grant = grants_of(runtime, filed[0])[org]
    assert grant.epoch == epoch + 1
    assert len(unwrap_key(grant.wrapped_key, private, ctx("case_key", filed[0], org))) == 32
