"""The copied organisations (tests/support/organisations_template.py) stand for ``with_policy_organisations``.

Most tests take their runtime with organisations from the copy; these tests hold the copy to the reference:
the same tables and organisations, an audit chain that verifies and goes on (PostgreSQL's sequence moved
past the copied rows), recovery shares that open each organisation's recovery key, and a report that the
organisations' keys open.
"""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from service.audit.models import AuditEvent
from service.audit.verification import verify
from service.config import Settings
from service.db import make_engine
from service.identity.models import Organisation
from service.identity.recovery import recovery_private_key
from service.migrate import upgrade
from service.models import Base
from service.runtime import Runtime, build_runtime
from tests.support.forms import STANDARD_REPORT
from tests.support.staff import with_policy_organisations


def _counts(runtime: Runtime) -> dict[str, int]:
    with runtime.sessions() as session:
        counts = {
            table.name: int(session.scalar(select(func.count()).select_from(table)) or 0)
            for table in Base.metadata.sorted_tables
        }
    return {name: count for name, count in counts.items() if count}


def test_the_copy_holds_what_the_reference_set_up_writes(runtime: Runtime, settings: Settings) -> None:
    copied = _counts(runtime)
    reference_settings = settings.model_copy(update={"data_dir": settings.data_dir.parent / "reference"})
    # The reference on a database of its own: the SQLite file lives in the data folder; on PostgreSQL the
    # test's database already holds the copy, so the reference is compared by shape, not on the same rows.
    if settings.is_sqlite:
        reference_settings = reference_settings.model_copy(
            update={"database_url": f"sqlite:///{reference_settings.data_dir / 'reference.db'}"}
        )
        reference_settings.data_dir.mkdir(parents=True)
        engine = make_engine(reference_settings.resolved_database_url)
        upgrade(engine)
        engine.dispose()
        reference = with_policy_organisations(build_runtime(reference_settings))
        try:
            assert _counts(reference) == copied
        finally:
            reference.dispose()
    assert copied["organisation"] == len(runtime.policy.organisations)
    with runtime.sessions() as session:
        slugs = set(session.scalars(select(Organisation.slug)))
        assert slugs == {org.slug for org in runtime.policy.organisations}
        assert all(session.scalars(select(Organisation.public_key)))


def test_the_audit_chain_verifies_and_goes_on(runtime: Runtime) -> None:
    with runtime.sessions() as session:
        assert verify(session, runtime.secrets.audit_key).ok
        before = session.scalar(select(func.max(AuditEvent.seq)))
        runtime.audit.append(
            session, actor_kind="system", actor_id=None, action="test.after_copy", object_type="test"
        )
        session.commit()
    with runtime.sessions() as session:
        assert session.scalar(select(func.max(AuditEvent.seq))) == (before or 0) + 1
        assert verify(session, runtime.secrets.audit_key).ok


def test_the_recovery_shares_open_each_organisations_recovery_key(runtime: Runtime) -> None:
    shares: dict[str, list[str]] = runtime.recovery_shares  # type: ignore[attr-defined]
    with runtime.sessions() as session:
        for organisation in session.scalars(select(Organisation)):
            recovery_private_key(organisation, shares[organisation.slug][:2])


def test_a_report_is_routed_to_the_copied_organisations(client: TestClient) -> None:
    response = client.post("/api/v1/reports", json=dict(STANDARD_REPORT))
    assert response.status_code == 201, response.text
    assert response.json()["key_holders"]
