"""A report that is one statement is filed without a transaction around it (PostgreSQL commits the statement
before it answers, so before the 201); a report with more to write is filed in one transaction, all or
nothing. Both ways of filing one statement are played: on the event loop with no session
(``service.reports.on_loop``, the API's usual way) and in a session (where the first declines: a cache to
read afresh, a key not met yet), including the connection lost with the statement in flight."""

from __future__ import annotations

from typing import Any

import psycopg
import psycopg.sql
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from service import db_raw
from service.app import create_app
from service.cases.models import Case
from service.outbox.models import OutboxMessage
from service.reports import repository as reports_repository
from service.reports.filing import CaseDraft
from service.reports.schemas import ReportCreate
from service.runtime import Runtime
from tests.support.forms import report_body
from tests.support.intake_ways import in_a_session, on_the_loop

PLAIN = report_body(description="Drohanruf im Rathaus.")
WITH_IDENTIFIERS = report_body(
    description="Drohnachrichten auf Instagram.",
    consent_matching=True,
    perpetrator_identifiers=[{"kind": "handle", "value": "drohkonto_77", "platform": "instagram"}],
)

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


def autocommit_of_inserts(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each raw statement the intake sends runs on a connection in autocommit."""
    seen: list[bool] = []
    original = db_raw._raw

    def spied(session: Session, query: str, params: Any, *, fetch: bool) -> Any:
        if query.lstrip().upper().startswith(("INSERT", "WITH")):
            seen.append(db_raw.in_autocommit(session))
        return original(session, query, params, fetch=fetch)

    monkeypatch.setattr(db_raw, "_raw", spied)
    return seen


def statements(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """Every statement psycopg sends on the event loop's connections (SQLAlchemy's and the raw cursor's),
    with whether its connection was in autocommit."""
    sent: list[tuple[str, bool]] = []
    original = psycopg.AsyncCursor.execute

    async def spied(cursor: psycopg.AsyncCursor[Any], query: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(query, psycopg.sql.Composable):
            query = query.as_string(cursor)
        text = query.decode() if isinstance(query, bytes) else str(query)
        sent.append((text.lstrip().split(None, 1)[0].upper(), cursor.connection.autocommit))
        return await original(cursor, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.AsyncCursor, "execute", spied)
    return sent


def cases(runtime: Runtime) -> int:
    with runtime.sessions() as db:
        return int(db.scalar(select(func.count()).select_from(Case)) or 0)


@pytest.fixture(params=["on the loop", "in a session"])
def way(
    request: pytest.FixtureRequest, client: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> str:
    if request.param == "in a session":
        in_a_session(monkeypatch)
    else:
        on_the_loop(client, runtime, monkeypatch)
    return str(request.param)


def test_a_plain_report_is_one_statement_without_begin_or_commit(
    client: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch, way: str
) -> None:
    seen = autocommit_of_inserts(monkeypatch)
    sent = statements(monkeypatch)
    before = cases(runtime)
    filed = client.post("/api/v1/reports", json=PLAIN)
    assert filed.status_code == 201, filed.text
    # The session's raw statement (in autocommit), or none: the way on the loop uses no session.
    assert seen == ([True] if way == "in a session" else [])
    # Whatever else it sent (a read of the organisations once a second, a new connection's SHOW) wrote
    # nothing; the one write is the report's INSERT (its tables' inserts in a WITH), in autocommit.
    writes = [(verb, autocommit) for verb, autocommit in sent if verb not in {"SELECT", "SHOW"}]
    assert writes == [("WITH", True)]
    # Stored by the time the 201 is read: another connection sees it.
    assert cases(runtime) == before + 1


def test_a_report_with_identifiers_is_one_transaction(
    client: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = autocommit_of_inserts(monkeypatch)
    filed = client.post("/api/v1/reports", json=WITH_IDENTIFIERS)
    assert filed.status_code == 201, filed.text
    assert seen == [False]


def test_a_failure_after_the_insert_of_a_report_with_identifiers_stores_nothing(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The case rows are written first and the identifiers' tokens after them: a failure in between must
    # take the case rows with it, which only a transaction around both does.
    def failing(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("the matching failed")

    monkeypatch.setattr(runtime.matching, "register", failing)
    before = cases(runtime)
    app = create_app(runtime=runtime)
    with TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False) as client:
        filed = client.post("/api/v1/reports", json=WITH_IDENTIFIERS)
    assert filed.status_code == 500
    assert cases(runtime) == before


def test_the_session_is_committed_and_back_to_transactions_after_a_single_statement_filing(
    runtime: Runtime,
) -> None:
    # What the caller does next in the same session runs in a transaction again, all or nothing.
    data = ReportCreate.model_validate(PLAIN)
    with runtime.sessions() as db:
        filed = runtime.intake.file_report(db, data, CaseDraft.new(), [])
        assert not db.in_transaction()  # committed by the filing itself
        db.execute(select(1))
        assert not db_raw.in_autocommit(db)
        assert db.get(Case, filed.case_id) is not None


class Handed:
    """The dispatcher's part the intake uses: what it was handed after a commit."""

    def __init__(self) -> None:
        self.rows: list[list[tuple[str, str]]] = []

    def ready(self) -> bool:
        return True

    def submit(self, rows: list[tuple[str, str]]) -> None:
        self.rows.append(list(rows))


@pytest.fixture
def handed(runtime: Runtime, monkeypatch: pytest.MonkeyPatch, way: str) -> Handed:
    """The intake's dispatcher, recording what it is handed (after the way's first report, if any)."""
    recorder = Handed()
    monkeypatch.setattr(runtime.intake, "dispatcher", recorder)
    return recorder


def backend_of(session: Session) -> int:
    driver = session.connection().connection.driver_connection
    assert isinstance(driver, psycopg.AsyncConnection | psycopg.Connection)
    return int(driver.info.backend_pid)


def lose_the_connection(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, way: str, *, after_sending: bool
) -> list[int]:
    """The report's connection dies, for real (its server process is ended): after PostgreSQL ran and
    committed the statement (the answer is what was lost), or before it was sent. Returns the server
    process it had. Either way of filing (``way``) meets it."""
    ended: list[int] = []
    on_loop = psycopg.AsyncRawCursor.execute

    async def lost_on_loop(cursor: psycopg.AsyncRawCursor[Any], query: Any, *args: Any, **kwargs: Any) -> Any:
        if not str(query).lstrip().upper().startswith("WITH") or ended:
            return await on_loop(cursor, query, *args, **kwargs)
        if after_sending:
            await on_loop(cursor, query, *args, **kwargs)
        ended.append(cursor.connection.info.backend_pid)
        with runtime.engine.connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": ended[0]})
        return await on_loop(cursor, "SELECT 1")  # meets the closed connection: the real error path

    if way == "on the loop":
        monkeypatch.setattr(psycopg.AsyncRawCursor, "execute", lost_on_loop)
        return ended
    original = db_raw.execute_raw  # what the repository calls

    def lost(session: Session, query: str, params: Any) -> None:
        if after_sending:
            original(session, query, params)
        ended.append(backend_of(session))
        with runtime.engine.connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": ended[0]})
        original(session, "SELECT 1", [])  # meets the closed connection: the real error path

    monkeypatch.setattr(reports_repository, "execute_raw", lost)
    return ended


def spy_on_the_check(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, bool]]:
    """Where the look for the case ran: its server process and whether in autocommit."""
    checks: list[tuple[int, bool]] = []
    original = reports_repository.case_by_id

    def spied(session: Session, case_id: str) -> Case | None:
        checks.append((backend_of(session), db_raw.in_autocommit(session)))
        return original(session, case_id)

    monkeypatch.setattr(reports_repository, "case_by_id", spied)
    return checks


def test_a_report_stored_before_the_connection_was_lost_gets_its_receipt(
    client: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch, handed: Handed, way: str
) -> None:
    # Answering 503 ("nothing was accepted") would make her send it again: a second case of the same report.
    before = cases(runtime)
    ended = lose_the_connection(runtime, monkeypatch, way, after_sending=True)
    checks = spy_on_the_check(monkeypatch)
    filed = client.post("/api/v1/reports", json=PLAIN)
    assert filed.status_code == 201, filed.text
    assert cases(runtime) == before + 1
    with runtime.sessions() as db:
        case_id = runtime.intake.open_case(db, filed.json()["receipt"]).case.id
        rows = db.scalars(select(OutboxMessage)).all()
        outbox = {row.id for row in rows if row.payload.get("case_id") == case_id}
    # Asked on another, live connection in a transaction; the notifications handed over once, all of them.
    assert len(checks) == 1
    assert checks[0][0] != ended[0]
    assert checks[0][1] is False
    assert len(handed.rows) == 1
    assert {row_id for row_id, _ in handed.rows[0]} == outbox


def test_a_report_not_stored_when_the_connection_was_lost_is_a_503(
    client: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch, handed: Handed, way: str
) -> None:
    before = cases(runtime)
    lose_the_connection(runtime, monkeypatch, way, after_sending=False)
    filed = client.post("/api/v1/reports", json=PLAIN)
    assert filed.status_code == 503
    assert "erneut" in filed.json()["detail"]
    assert cases(runtime) == before
    assert handed.rows == []


def test_when_the_database_cannot_be_asked_the_503_stands(
    client: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch, handed: Handed, way: str
) -> None:
    lose_the_connection(runtime, monkeypatch, way, after_sending=True)

    def unreachable(*_args: Any) -> Any:
        raise sa_exc.OperationalError("SELECT", None, psycopg.OperationalError("connection refused"))

    monkeypatch.setattr(reports_repository, "case_by_id", unreachable)
    assert client.post("/api/v1/reports", json=PLAIN).status_code == 503
    assert handed.rows == []
