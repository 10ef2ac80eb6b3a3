"""Migrations that rebuild a table keep every row that refers to it (SQLite's batch mode copies a table and
drops the old one: with foreign keys on, the drop deleted an incident's attachments and routing records
through ON DELETE CASCADE)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import text

from service.db import make_engine
from tests.support.migration import insert_old_case, insert_row, migrate_to

CHILDREN = ("case_file", "incident", "attachment", "routing_record", "case_key_grant", "membership")


def test_upgrading_from_0009_keeps_every_referring_row(empty_database: str) -> None:
    engine = make_engine(empty_database)
    try:
        migrate_to(engine, "0009")
        now = datetime.now(UTC)
        case_id, incident_id, org_id, user_id = (str(uuid.uuid4()) for _ in range(4))
        insert_row(
            engine,
            "organisation",
            id=org_id,
            slug="o",
            display_name="O",
            kind="counselling",
            active=True,
            created_at=now,
        )
        insert_row(
            engine,
            "staff_user",
            id=user_id,
            email="a@example.org",
            display_name="A",
            is_admin=False,
            is_coordinator=False,
            public_key=b"p",
            sealed_private_key=b"s",
            sealed_totp_secret=b"t",
            must_change_password=False,
            disabled=False,
            created_at=now,
            password_changed_at=now,
        )
        insert_row(
            engine,
            "membership",
            id=str(uuid.uuid4()),
            user_id=user_id,
            organisation_id=org_id,
            role="counsellor",
            wrapped_grant_key=b"w",
            sealed_organisation_key=b"s",
            created_at=now,
        )
        insert_old_case(engine, case_id, now, assignee_id=user_id)
        insert_row(
            engine,
            "incident",
            id=incident_id,
            case_id=case_id,
            seq=1,
            type_codes='["A1"]',
            channel="email",
            channel_online=True,
            severity=5,
            urgency="normal",
            payload=b"p",
            extract_ref=b"e",
            created_at=now,
        )
        insert_row(
            engine,
            "attachment",
            id=str(uuid.uuid4()),
            case_id=case_id,
            incident_id=incident_id,
            blob_name="b1",
            content_type="text/plain",
            size_bytes=1,
            meta_ciphertext=b"m",
            uploaded_by="reporter",
            created_at=now,
        )
        insert_row(
            engine,
            "routing_record",
            id=str(uuid.uuid4()),
            case_id=case_id,
            incident_id=incident_id,
            policy_version="v",
            fallback_used=False,
            decision="{}",
            created_at=now,
        )
        insert_row(
            engine,
            "case_key_grant",
            id=str(uuid.uuid4()),
            case_id=case_id,
            organisation_id=org_id,
            wrapped_key=b"w",
            role="target",
            active=True,
            granted_at=now,
        )

        migrate_to(engine, "head")

        with engine.connect() as connection:
            counts = {
                table: connection.execute(text(f"SELECT count(*) FROM {table}")).scalar()
                for table in CHILDREN
            }
            assignee = connection.execute(text("SELECT assignee_id FROM case_file")).scalar()
        assert counts == dict.fromkeys(CHILDREN, 1)
        assert assignee == user_id
    finally:
        engine.dispose()
