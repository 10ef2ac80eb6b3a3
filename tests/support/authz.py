"""The world of the authorisation matrix (tests/authz): two cases, every kind of subject, and the means to
send one request as one subject and see what it changed.

It is built once per database through the service's own front doors (the report form, the sign-in, the case
forms), so what the matrix proves is what a browser or a script would meet. What no request can do is done
by the service's own functions (the seeded articles, the figures of the dashboard and the public release)
or, where not even those can, in the database: a disabled flag behind a live session, idle sessions, the
worker's heartbeat, and the forced password change put back after the matrix changed that password.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx2
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from service.app import create_app
from service.audit.models import AuditEvent
from service.auth import sessions
from service.auth.models import WebSession
from service.cases.models import Case
from service.db import Base, utcnow
from service.evidence.models import Attachment
from service.identity.models import CaseKeyGrant, MembershipRole, Organisation, StaffUser
from service.knowledge.models import SupportEntry
from service.knowledge.seed import seed_articles
from service.knowledge.support import seed_support
from service.outbox.models import WorkerHeartbeat
from service.runtime import Runtime
from service.statistics.dashboard.service import make_snapshot
from service.statistics.domains import domains_from
from service.statistics.policy import load_statistics_policy
from service.statistics.public.ledger import release_year
from tests.support.forms import csrf_token, report_body, submission_token
from tests.support.staff import PASSWORD, MakeStaff, Staff

# A second password, so that a password change in the matrix can go back and forth.
OTHER_PASSWORD = "Leuchtturm-Regen-Birnbaum-9"
# Well-formed, but the receipt of no case: what a subject without a receipt can try.
UNKNOWN_RECEIPT = "7K3M-9QXR-2V8T-4HJN-6WPB"
SNAPSHOT_MONTH = "2025-03"
RELEASE_YEAR = 2025
ARTICLE = "beweise-sichern"
SUPPORT_ENTRY = "stark-im-amt"  # the seed key of the directory entry the matrix edits, reviews and retires
A, B = "A", "B"
STATIC_FILE = "app.css"

# Audit actions that record a reading (a decryption, a download, a view of figures), not a change.
VIEW_ACTIONS = frozenset({"case.decrypt", "attachment.download", "dashboard.view", "dashboard.export"})
# Tables whose rows change on every request whatever it is allowed to do: counters and the heartbeat.
VOLATILE_TABLES = frozenset({"rate_limit_counter", "worker_heartbeat"})
# Columns that move without a change of state: the session's last activity, and the TOTP step that a
# refused sign-in still uses up (replay protection wants exactly that).
VOLATILE_COLUMNS = frozenset({("web_session", "last_seen_at"), ("staff_user", "totp_last_step")})


@dataclass(frozen=True)
class CaseRef:
    """One case of the world and what its holders and its reporter can reach."""

    key: str  # "A" or "B"
    id: str
    receipt: str
    # The evidence file the reporter sent with the report.
    attachment_id: str
    # In the description, in every message, in the file names and the files themselves.
    marker: str
    # In the internal note: for the holders only, never for the reporter.
    note_marker: str


@dataclass
class Actor:
    """A subject of the matrix: who they are, and the cookies and tokens their browser or script holds."""

    name: str
    cookies: dict[str, str]
    form_token: str
    api_token: str = ""
    staff: Staff | None = None
    # A live staff session (also one that must still replace its initial password).
    signed_in: bool = False
    pending: bool = False
    coordinator: bool = False
    disabled: bool = False
    # Cases held by an organisation of this actor through an active grant ("A", "B").
    holds: frozenset[str] = frozenset()
    # Organisations this actor leads ("A": beratung-by, which holds case A; "B": beratung-nw).
    leads: frozenset[str] = frozenset()
    # The case whose receipt this actor knows, and whether their browser holds a live reporter session.
    reporter_of: str | None = None
    reporter_session: bool = False

    @property
    def may_work(self) -> frozenset[str]:
        """The cases this actor may work on, internal notes included."""
        return self.holds if self.signed_in and not self.pending else frozenset()

    def may_read(self, with_receipt: bool) -> frozenset[str]:
        """The cases whose plaintext may be in an answer to this actor: those they work on, and their own
        case where the request carries its receipt or their live reporter session does."""
        own = self.reporter_of if self.reporter_of and (with_receipt or self.reporter_session) else None
        return self.may_work | ({own} if own else frozenset())


@dataclass(frozen=True)
class Call:
    """What a request sends besides its method: the address and a JSON body or form fields and files."""

    url: str
    json: Any = None
    data: Mapping[str, Any] | None = None
    files: list[tuple[str, tuple[str, bytes, str]]] | None = None


@dataclass
class State:
    """Every row that a request could change, table by table, and the names of the encrypted blobs."""

    tables: dict[str, list[str]]
    blobs: list[str]

    def changes_since(self, before: State) -> list[str]:
        changed = [name for name in self.tables if self.tables[name] != before.tables.get(name)]
        if self.blobs != before.blobs:
            changed.append("blob files")
        return changed


@dataclass
class World:
    runtime: Runtime
    client: TestClient
    code: Callable[[Staff], str]
    cases: dict[str, CaseRef]
    actors: list[Actor] = field(default_factory=list)
    # Ids that look real but name nothing: a case, an attachment.
    missing_case_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    missing_attachment_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    missing_organisation_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    missing_entry_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    # A published entry of the support directory (the seed's), for the coordinators' directory routes.
    support_entry_id: str = ""
    # "A" and "B": the organisations holding case A (beratung-by) and case B (beratung-nw).
    organisation_ids: dict[str, str] = field(default_factory=dict)
    # An account with a key of its own and no other part in the matrix: the leads grant and revoke it.
    grantee: Staff | None = None
    # Sessions that end when the matrix first uses them (disabled account, idle): their rows vanish.
    dead_sessions: set[str] = field(default_factory=set)
    # E-mail address -> display name, of every member of staff.
    staff_names: dict[str, str] = field(default_factory=dict)
    # A second case of each holding organisation, filed before "A" and "B": what a link names.
    companions: dict[str, CaseRef] = field(default_factory=dict)
    _counter: Iterator[int] = field(default_factory=lambda: iter(range(1, 1_000_000)))

    def unique(self) -> int:
        return next(self._counter)

    # -- requests ------------------------------------------------------------------------------------------
    def send(
        self,
        method: str,
        call: Call,
        cookies: Mapping[str, str],
        *,
        csrf_header: str = "",
        form_token: str = "",
    ) -> httpx2.Response:
        """One request with exactly these cookies; nothing the answer sets is kept for the next one."""
        self.client.cookies.clear()
        for name, value in cookies.items():
            self.client.cookies.set(name, value)
        headers = {"X-CSRF-Token": csrf_header} if csrf_header else {}
        data = dict(call.data) if call.data is not None else None
        if form_token:
            data = {**(data or {}), "csrf_token": form_token}
        response = self.client.request(
            method, call.url, json=call.json, data=data, files=call.files, headers=headers
        )
        self.client.cookies.clear()
        return response

    def sign_in(self, staff: Staff) -> tuple[dict[str, str], str]:
        """A new staff session through the API: its cookie and its CSRF token for the API."""
        body = {"email": staff.email, "password": staff.password, "totp": self.code(staff)}
        response = self.send("POST", Call("/api/v1/session", json=body), {})
        assert response.status_code == 200, response.text
        return {"rh_staff": response.cookies["rh_staff"]}, str(response.json()["csrf_token"])

    def reporter_sign_in(self, receipt: str, csrf: Mapping[str, str], token: str) -> dict[str, str]:
        response = self.send(
            "POST", Call("/fall/anmelden", data={"receipt": receipt}), csrf, form_token=token
        )
        assert response.status_code == 303, response.text
        return {"rh_reporter": response.cookies["rh_reporter"]}

    def form_csrf(self) -> tuple[dict[str, str], str]:
        """A signed-out browser's CSRF cookie and the form token bound to it, as any page hands them out."""
        page = self.send("GET", Call("/melden"), {})
        return {"rh_csrf": page.cookies["rh_csrf"]}, csrf_token(page.text)

    def form_token(self, cookies: Mapping[str, str]) -> str:
        """The form token a page gives a browser with these cookies: bound to its staff or reporter session
        (issue 14.6), so it is fetched again after every sign-in."""
        return csrf_token(self.send("GET", Call("/melden"), cookies).text)

    def fresh_session(self, actor: Actor) -> tuple[dict[str, str], str, str]:
        """A second session of the actor's kind, for a request that ends the session it is sent with: its
        cookies, API token and form token."""
        if actor.signed_in and actor.staff is not None:
            staff_cookies, api_token = self.sign_in(actor.staff)
            cookies = {**actor.cookies, **staff_cookies}
            return cookies, api_token, self.form_token(cookies)
        if actor.reporter_of is not None and actor.reporter_session:
            receipt = self.cases[actor.reporter_of].receipt
            csrf, token = self.form_csrf()
            cookies = {**actor.cookies, **self.reporter_sign_in(receipt, csrf, token)}
            return cookies, "", self.form_token(cookies)
        return actor.cookies, actor.api_token, actor.form_token

    # -- what the world holds ------------------------------------------------------------------------------
    def case_id(self, key: str) -> str:
        return self.cases[key].id if key in self.cases else self.missing_case_id

    def referral_target(self, case_id: str) -> str:
        """An organisation without any grant for the case, of which no subject is a member: referring to it
        changes nobody's view of the matrix."""
        pool = ("rechtshilfe", "online-hass", "beratung-sh", "beratung-hh", "beratung-ni", "beratung-hb")
        with self.runtime.sessions() as db:
            granted = set(
                db.scalars(
                    select(Organisation.slug)
                    .join(CaseKeyGrant, CaseKeyGrant.organisation_id == Organisation.id)
                    .where(CaseKeyGrant.case_id == case_id)
                )
            )
        return next(slug for slug in pool if slug not in granted)

    def ids(self) -> list[str]:
        """Every identifier a request may carry, so that answers can be compared without them."""
        named = [self.missing_case_id, self.missing_attachment_id, self.missing_organisation_id]
        named += [self.missing_entry_id, self.support_entry_id]
        for ref in self.cases.values():
            named += [ref.id, ref.attachment_id]
        named += list(self.organisation_ids.values())
        return named

    def organisation_id(self, key: str) -> str:
        return self.organisation_ids.get(key, self.missing_organisation_id)

    def regrant(self) -> None:
        """Make the grantee a counsellor of organisation A again (after a revocation), as its lead does."""
        assert self.grantee is not None
        lead = next(actor for actor in self.actors if A in actor.leads)
        body = {"email": self.grantee.email, "role": "counsellor"}
        url = f"/api/v1/organisations/{self.organisation_ids[A]}/members"
        response = self.send("POST", Call(url, json=body), lead.cookies, csrf_header=lead.api_token)
        assert response.status_code == 201, response.text

    def audit_head(self) -> int:
        with self.runtime.sessions() as db:
            return int(db.scalar(select(func.max(AuditEvent.seq))) or 0)

    def audit_since(self, seq: int) -> list[tuple[str, str | None]]:
        with self.runtime.sessions() as db:
            rows = db.execute(
                select(AuditEvent.action, AuditEvent.object_id)
                .where(AuditEvent.seq > seq)
                .order_by(AuditEvent.seq)
            ).all()
        return [(row[0], row[1]) for row in rows]

    def state(self) -> State:
        tables: dict[str, list[str]] = {}
        with self.runtime.engine.connect() as connection:
            for table in Base.metadata.sorted_tables:
                if table.name in VOLATILE_TABLES:
                    continue
                columns = [c for c in table.columns if (table.name, c.name) not in VOLATILE_COLUMNS]
                statement = select(*columns)
                if table.name == "web_session":
                    statement = statement.where(table.c.id_hash.not_in(self.dead_sessions))
                if table.name == "audit_event":
                    statement = statement.where(table.c.action.not_in(VIEW_ACTIONS))
                tables[table.name] = sorted(repr(tuple(row)) for row in connection.execute(statement))
        root = self.runtime.blobs.root
        blobs = sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())
        return State(tables, blobs)


def receipt_from(html: str) -> str:
    text = re.sub(r"<[^>]+>", "", html)
    match = re.search(r"[0-9A-HJKMNP-TV-Z]{4}(?:-[0-9A-HJKMNP-TV-Z]{4}){4}", text)
    assert match, "the receipt page shows the code"
    return match.group(0)


def text_file(marker: str, name: str) -> tuple[str, bytes, str]:
    return (f"{name}-{marker}.txt", f"Beweis {marker}".encode(), "text/plain")


# -- building the world ------------------------------------------------------------------------------------


def _file_report(world: World, key: str, land: str) -> CaseRef:
    """A report through the form, with an evidence file; the case's id is found as the only new row."""
    marker = f"KLARTEXT-{key}-{uuid.uuid4().hex[:12]}"
    csrf, token = world.form_csrf()
    with world.runtime.sessions() as db:
        before = set(db.scalars(select(Case.id)))
    fields = report_body(
        land=land,
        type_codes=["A3a"],
        description=f"Drohbrief an das Rathaus. {marker}",
        channel="letter",
        consent_counselling="1",
        # A view's single-use token: the form files once (not bound to the browser's cookies).
        submission_token=submission_token(world.send("GET", Call("/melden"), {}).text),
    )
    call = Call("/melden", data=fields, files=[("attachments", text_file(marker, "beweis"))])
    response = world.send("POST", call, csrf, form_token=token)
    assert response.status_code == 201, response.text
    receipt = receipt_from(response.text)
    with world.runtime.sessions() as db:
        (case_id,) = set(db.scalars(select(Case.id))) - before
        attachment_id = db.scalars(select(Attachment.id).where(Attachment.case_id == case_id)).one()
    return CaseRef(key, case_id, receipt, attachment_id, marker, f"NOTIZ-{key}-{uuid.uuid4().hex[:12]}")


def _converse(world: World, ref: CaseRef, holder: Actor, reporter: Actor) -> None:
    """A message with a file each way and an internal note: plaintext of every kind to guard."""
    case_url = f"/intern/faelle/{ref.id}"
    message = Call(
        f"{case_url}/nachricht",
        data={"message": f"Wir rufen Sie an. {ref.marker}"},
        files=[("message_files", text_file(ref.marker, "antwort"))],
    )
    sent = world.send("POST", message, holder.cookies, form_token=holder.form_token)
    assert sent.status_code == 303, sent.text
    note = Call(f"/api/v1/cases/{ref.id}/notes", json={"body": f"Rückruf vereinbart. {ref.note_marker}"})
    assert world.send("POST", note, holder.cookies, csrf_header=holder.api_token).status_code == 201
    reply = Call(
        "/fall/nachricht",
        data={"message": f"Danke, ich bin erreichbar. {ref.marker}"},
        files=[("message_files", text_file(ref.marker, "nachtrag"))],
    )
    answered = world.send("POST", reply, reporter.cookies, form_token=reporter.form_token)
    assert answered.status_code == 303, answered.text


def _staff_actor(
    world: World,
    name: str,
    staff: Staff,
    *,
    holds: frozenset[str] = frozenset(),
    coordinator: bool = False,
    pending: bool = False,
    leads: frozenset[str] = frozenset(),
) -> Actor:
    csrf, _ = world.form_csrf()
    staff_cookies, api_token = world.sign_in(staff)
    cookies = {**csrf, **staff_cookies}
    return Actor(
        name,
        cookies,
        world.form_token(cookies),
        api_token,
        staff=staff,
        signed_in=True,
        pending=pending,
        coordinator=coordinator,
        holds=holds,
        leads=leads,
    )


def _figures(runtime: Runtime) -> None:
    """A released coordinator snapshot and a published public release (both of an empty extract)."""
    policy = load_statistics_policy(runtime.settings.policies_dir)
    domains = domains_from(runtime.taxonomy)
    with runtime.sessions() as db:
        snapshot = make_snapshot(
            db, as_of=SNAPSHOT_MONTH, domains=domains, rules=policy.coordinator, audit=runtime.audit
        )
        db.commit()
        assert snapshot.released
    with runtime.sessions() as db:
        release_year(
            db, year=RELEASE_YEAR, policy=policy.public, domains=domains, audit=runtime.audit, rows=lambda: []
        )
        db.commit()


def build_world(
    runtime: Runtime, client: TestClient, make_staff: MakeStaff, code: Callable[[Staff], str]
) -> World:
    world = World(runtime, client, code, cases={})
    with runtime.sessions() as db:
        seed_articles(db)
        seed_support(db, runtime.support)
        db.commit()
        world.support_entry_id = db.scalars(
            select(SupportEntry.id).where(SupportEntry.seed_key == SUPPORT_ENTRY)
        ).one()
        # /healthz judges the worker by its heartbeat; no worker runs here, so the matrix writes one.
        db.add(WorkerHeartbeat(name="worker", beat_at=utcnow() + timedelta(days=1)))
        db.commit()
    _figures(runtime)

    def person(**options: Any) -> Staff:
        # A name of their own: answers to reporters and the public must name no member of staff.
        name = f"Kollegin {uuid.uuid4().hex[:10]}"
        staff = make_staff(name=name, **options)
        world.staff_names[staff.email] = name
        return staff

    by = [("beratung-by", MembershipRole.counsellor)]
    a_holder = frozenset({A})
    counsellor = _staff_actor(world, "counsellor", person(memberships=by), holds=a_holder)
    lead = _staff_actor(
        world,
        "lead",
        person(memberships=[("beratung-by", MembershipRole.lead)]),
        holds=a_holder,
        leads=frozenset({A}),
    )
    with runtime.sessions() as db:
        for key, slug in ((A, "beratung-by"), (B, "beratung-nw")):
            organisation = db.scalars(select(Organisation).where(Organisation.slug == slug)).one()
            world.organisation_ids[key] = organisation.id
    world.grantee = person(memberships=by)
    other = _staff_actor(
        world,
        "other_organisation",
        person(memberships=[("beratung-nw", MembershipRole.counsellor)]),
        holds=frozenset({B}),
    )
    # Every case of the demo policy names the on-call rota as its last escalation step: it holds a wrapped
    # key from the start, and must see nothing until the step opens (after 24 hours here).
    rota = _staff_actor(
        world, "escalation_step", person(memberships=[("rufbereitschaft", MembershipRole.counsellor)])
    )
    coordinator = _staff_actor(world, "coordinator", person(coordinator=True), coordinator=True)
    admin = _staff_actor(world, "admin", person(admin=True))
    # A member of the holding organisation who has not yet replaced the initial password: nothing opens.
    pending = _staff_actor(
        world,
        "pending_password",
        person(memberships=by, must_change_password=True),
        holds=a_holder,
        pending=True,
    )

    # A counsellor of the holding organisation who is removed once the cases are worked on: a live session,
    # no membership (every case route must answer 404, as for anyone else).
    removed = _staff_actor(world, "removed_member", person(memberships=by))
    # Companions first, so that "A" and "B" are the newer cases of their organisations.
    world.companions = {A: _file_report(world, "A2", "09"), B: _file_report(world, "B2", "05")}
    a = _file_report(world, A, "09")  # Bayern: beratung-by
    b = _file_report(world, B, "05")  # Nordrhein-Westfalen: beratung-nw
    world.cases.update({A: a, B: b})

    reporters = []
    for ref in (a, b):
        csrf, token = world.form_csrf()
        cookies = {**csrf, **world.reporter_sign_in(ref.receipt, csrf, token)}
        reporters.append(
            Actor(
                f"reporter_{ref.key}",
                cookies,
                world.form_token(cookies),
                reporter_of=ref.key,
                reporter_session=True,
            )
        )
    _converse(world, a, counsellor, reporters[0])
    _converse(world, b, other, reporters[1])
    assert removed.staff is not None
    revoke = Call(f"/api/v1/organisations/{world.organisation_ids[A]}/members/{removed.staff.user_id}")
    assert world.send("DELETE", revoke, lead.cookies, csrf_header=lead.api_token).status_code == 204

    anonymous_csrf, anonymous_token = world.form_csrf()
    anonymous = Actor("anonymous", anonymous_csrf, anonymous_token)

    # Live sessions in the wrong cookies: a reporter's session as the staff cookie and a counsellor's as the
    # reporter cookie. A session opens only as the kind it was made for.
    swapped_csrf, swapped_token = world.form_csrf()
    reporter_cookie = world.reporter_sign_in(b.receipt, swapped_csrf, swapped_token)["rh_reporter"]
    assert other.staff is not None
    staff_cookie = world.sign_in(other.staff)[0]["rh_staff"]
    swapped_cookies = {**swapped_csrf, "rh_staff": reporter_cookie, "rh_reporter": staff_cookie}
    swapped = Actor("swapped_cookies", swapped_cookies, world.form_token(swapped_cookies))

    # A holder whose account is disabled behind a live session: the account service ends the sessions when
    # it disables, so the flag is set directly, to prove that every request checks it as well.
    disabled = _staff_actor(world, "disabled", person(memberships=by), holds=a_holder)
    # A holder whose session has been idle for longer than the 30 minutes a staff session may be, and the
    # reporter of case A back after more than the 20 minutes a reporter session may be idle (the receipt
    # still opens the case: it is the key).
    idle = _staff_actor(world, "idle_session", person(memberships=by), holds=a_holder)
    idle_csrf, idle_token = world.form_csrf()
    idle_reporter_cookies = {**idle_csrf, **world.reporter_sign_in(a.receipt, idle_csrf, idle_token)}
    idle_reporter = Actor(
        "reporter_A_idle_session",
        idle_reporter_cookies,
        world.form_token(idle_reporter_cookies),
        reporter_of=A,
    )
    assert disabled.staff is not None
    assert idle.staff is not None
    with runtime.sessions() as db:
        db.execute(update(StaffUser).where(StaffUser.id == disabled.staff.user_id).values(disabled=True))
        ended = [idle.cookies["rh_staff"], idle_reporter.cookies["rh_reporter"]]
        for cookie in ended:
            db.execute(
                update(WebSession)
                .where(WebSession.id_hash == sessions.id_hash_of(cookie))
                .values(last_seen_at=utcnow() - timedelta(minutes=31))
            )
        db.commit()
    world.dead_sessions |= {
        str(sessions.id_hash_of(cookie)) for cookie in [*ended, disabled.cookies["rh_staff"]]
    }
    disabled.signed_in = idle.signed_in = False
    disabled.disabled = True

    world.actors = [
        anonymous,
        *reporters,
        idle_reporter,
        counsellor,
        lead,
        other,
        removed,
        rota,
        coordinator,
        admin,
        pending,
        disabled,
        idle,
        swapped,
    ]
    return world


def new_password(staff: Staff) -> str:
    return OTHER_PASSWORD if staff.password == PASSWORD else PASSWORD


def app_client(runtime: Runtime) -> TestClient:
    """The client the whole matrix goes through; redirects are answers to check, not to follow."""
    return TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1", follow_redirects=False)
