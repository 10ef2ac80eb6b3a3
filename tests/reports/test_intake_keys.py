"""The intake finds organisation keys by the digest the database returns, and reads their bytes only once."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from service.crypto import generate_keypair, unwrap_key
from service.identity import repository
from service.identity.models import CaseKeyGrant, Organisation
from service.reports.opened import ctx as _ctx
from service.runtime import Runtime
from tests.support.forms import report_body

REPORT = report_body(description="Beleidigung.")


def count_key_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    reads: list[int] = []
    original = repository.public_keys

    def counted(*args: Any, **kwargs: Any) -> dict[str, bytes]:
        result = original(*args, **kwargs)
        reads.append(len(result))
        return result

    monkeypatch.setattr(repository, "public_keys", counted)
    return reads


def test_keys_are_read_once_per_process(
    client: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = count_key_reads(monkeypatch)
    for _ in range(3):
        assert client.post("/api/v1/reports", json=REPORT).status_code == 201
    assert len(reads) == 1
    assert reads[0] >= 1
    with runtime.sessions() as db:
        assert db.scalar(select(CaseKeyGrant.id).limit(1)) is not None


def test_a_changed_key_is_read_again_and_used(
    client: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert client.post("/api/v1/reports", json=REPORT).status_code == 201
    with runtime.sessions() as db:
        earlier = set(db.scalars(select(CaseKeyGrant.id)))
    reads = count_key_reads(monkeypatch)
    private, public = generate_keypair()
    with runtime.sessions() as db:
        bayern = db.scalars(select(Organisation).where(Organisation.slug == "beratung-by")).one()
        db.execute(update(Organisation).where(Organisation.id == bayern.id).values(public_key=public.raw))
        db.commit()
        bayern_id = bayern.id
    filed = client.post("/api/v1/reports", json=REPORT)
    assert filed.status_code == 201
    assert reads == [1]  # only the changed key was read
    with runtime.sessions() as db:
        # The grant of the second report (grant times are kept to the minute only: docs/clear-columns.md).
        grant = db.scalars(
            select(CaseKeyGrant).where(
                CaseKeyGrant.organisation_id == bayern_id, CaseKeyGrant.id.not_in(earlier)
            )
        ).one_or_none()
        assert grant is not None
        # The newest grant opens with the new private key: the cached old key was not used.
        key = unwrap_key(grant.wrapped_key, private, _ctx("case_key", grant.case_id, bayern_id))
        assert len(key) == 32


def test_a_disabled_organisation_gets_no_grant_even_with_its_key_cached(
    client: TestClient, runtime: Runtime
) -> None:
    assert client.post("/api/v1/reports", json=REPORT).status_code == 201
    with runtime.sessions() as db:
        db.execute(update(Organisation).where(Organisation.slug == "beratung-by").values(active=False))
        db.commit()
    filed = client.post("/api/v1/reports", json=REPORT)
    assert filed.status_code == 201
    assert "Beratungsstelle Rückhalt Bayern (Demo)" not in filed.json()["routed_to"]


def test_an_organisation_read_as_before_is_the_same_receiver_and_a_renamed_one_is_new(
    client: TestClient, runtime: Runtime
) -> None:
    with runtime.sessions() as db:
        first = repository.receivers(db)
        second = repository.receivers(db)
    assert first == second
    assert all(second[slug] is first[slug] for slug in first)  # nothing built the second time
    with runtime.sessions() as db:
        db.execute(
            update(Organisation).where(Organisation.slug == "beratung-by").values(display_name="Neu (Demo)")
        )
        db.commit()
        third = repository.receivers(db)
    assert third["beratung-by"].display_name == "Neu (Demo)"
    assert all(third[slug] is first[slug] for slug in first if slug != "beratung-by")
    # The receipt names the organisation as it is called now.
    assert "Neu (Demo)" in client.post("/api/v1/reports", json=REPORT).json()["routed_to"]
