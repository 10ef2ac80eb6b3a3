"""Proof under attack: every route × every kind of subject × whose object it is.

The matrix is generated from the application's route table, so a new route without an entry in ROUTES fails
``test_every_route_has_a_matrix_entry``: nobody can add an endpoint and forget to decide who may call it.

What the design (security.md, architecture.md) asks, and what each cell checks:
- Without a staff session the API answers 401 and a staff page redirects to the sign-in page (303); a member
  who still has to replace the initial password gets 403 from the API and the password page from a page.
- A case, attachment or incident the subject may not see answers 404, byte for byte the answer for one that
  does not exist ("not visible" and "does not exist" are compared for every subject and route).
- Coordinator-only figures and knowledge-base edits: 404 for every other member of staff (as
  deps.current_coordinator does: a 404 never confirms that something exists, applied to roles). An
  organisation's members and keys: 404 for everyone but its leads. There are no administrator-only routes:
  accounts are managed on the command line.
- Allowed: the success status (and where a redirect goes).
- The plaintext of a case (description, messages, notes, files and their names) appears in no answer to a
  subject who may not read that case, whatever the route, status or header.
- A refused request changes nothing: no row of any table (counters and session activity aside), no blob, no
  audit event but the reading of a case the subject holds (a refused form shows the case page again).
- A state-changing form without its CSRF token, or an API call without the X-CSRF-Token header, is refused
  with 403 (or the refusal it would get anyway) and changes nothing.
- Reporters and the public never see the name or address of a member of staff; internal notes only the
  holders.

Entries of the support directory are the coordinators' (any coordinator edits, reviews or retires any entry;
everyone reads the published ones), like articles. Organisations are in the matrix as the leads' objects:
"A" is the organisation holding case A, led by the
lead; "B" holds case B and is led by nobody in the world. Knowledge articles have no drafts and belong to no
organisation (any coordinator edits any article; everyone reads the published ones).

The world (two cases in two Länder, fourteen subjects) is built once per database (tests/authz/conftest.py);
each route is one test, which reports all its failing cells at once.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import httpx2
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.staticfiles import StaticFiles
from sqlalchemy import update
from starlette.routing import Mount, WebSocketRoute
from starlette.routing import Route as StarletteRoute

from service.app import create_app
from service.config import Settings
from service.identity.models import StaffUser
from service.runtime import build_runtime
from tests.support.authz import (
    ARTICLE,
    OTHER_PASSWORD,
    RELEASE_YEAR,
    SNAPSHOT_MONTH,
    STATIC_FILE,
    UNKNOWN_RECEIPT,
    A,
    Actor,
    B,
    Call,
    World,
    new_password,
    text_file,
)
from tests.support.forms import report_body
from tests.support.staff import PASSWORD

EASY_PAGE = "strafantrag"  # a page in Leichte Sprache

# -- object variants -----------------------------------------------------------------------------------------
SELF = "self"  # the object is the subject's own (a reporter's case), or there is none
# A: case A (Bayern), held by beratung-by; B: case B (Nordrhein-Westfalen), held by beratung-nw.
CROSS = "A+B"  # case A's address with case B's attachment
NO_SEQ = "A#99"  # case A with an incident number it does not have
EXISTING = "existing"  # a snapshot, an article, a release, a static file
MISSING = "missing"  # an id that looks right and names nothing

CASE_VARIANTS = (A, B, MISSING)
ATTACHMENT_VARIANTS = (A, B, CROSS, MISSING)
INCIDENT_VARIANTS = (A, B, NO_SEQ, MISSING)
OBJECT_VARIANTS = (EXISTING, MISSING)
REPORTER_FILE_VARIANTS = (A, B, MISSING)
ORGANISATION_VARIANTS = (A, B, MISSING)


class Guard(Enum):
    PUBLIC = "anyone; 404 only for what does not exist"
    ANYONE = "anyone (signing out without a session is a no-op)"
    LOGIN = "credentials in the body"
    SIGN_IN_PAGE = "anyone; a signed-in member is sent on to /intern"
    RECEIPT = "the receipt in the body (JSON API) or in the form (/fall/anmelden)"
    REPORTER = "the reporter session of /fall"
    PENDING = "a staff session, also one that must still change its initial password"
    STAFF = "a staff session"
    CASE = "a staff session of a member of an organisation holding the case"
    COORDINATOR = "a coordinator's staff session"
    LEAD = "a staff session of a lead of the organisation"


@dataclass(frozen=True)
class Expect:
    status: int
    # The Location header starts with this (redirects only).
    location: str = ""
    # The request is one the subject may make: it succeeds and may change things.
    allowed: bool = False


Body = Callable[[World, Actor, str], dict[str, Any]]


@dataclass(frozen=True)
class Route:
    guard: Guard
    ok: int
    variants: tuple[str, ...] = (SELF,)
    # A JSON body, or form fields (sent urlencoded unless there are files).
    json: Body | None = None
    form: Body | None = None
    files: bool = False
    # "form" (the csrf_token field) or "header" (X-CSRF-Token); "" where no cookie authenticates the request.
    csrf: Literal["", "form", "header"] = ""
    ok_location: str = ""  # format string over the variant's parameters
    # What a browser without a reporter session gets from a reporter route.
    no_reporter: Expect = Expect(303, "/fall")
    # Sign-out: sent with a second session of the subject, so the subject's own one lives on.
    fresh_session: bool = False
    # A success shows the case's plaintext; a success lists exactly the cases the subject holds.
    plaintext: bool = False
    lists: bool = False
    # Puts back what a success changed that later cells rely on (a password, a forced password change).
    after: Callable[[World, Actor], None] | None = None


# -- bodies --------------------------------------------------------------------------------------------------


# A self-check answer, and a code that keeps nothing.
_SELFCHECK = {"a.integrationskonzept": "no", "a.runder-tisch": "partly"}
UNKNOWN_SELFCHECK_CODE = "ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ"


def _fixed(**values: Any) -> Body:
    return lambda world, actor, variant: dict(values)


def _receipt(world: World, actor: Actor) -> str:
    return world.cases[actor.reporter_of].receipt if actor.reporter_of else UNKNOWN_RECEIPT


def _form_view(path: str, **values: Any) -> Body:
    """Form fields with the submission token of a fresh view of the form (each view files once). The page
    is fetched with the actor's cookies, as their browser would: a further incident's token names the case."""

    def body(world: World, actor: Actor, variant: str) -> dict[str, Any]:
        page = world.send("GET", Call(path), actor.cookies)
        found = re.search(r'name="submission_token" value="([^"]+)"', page.text)
        return {**values, "submission_token": found.group(1) if found else ""}

    return body


def _with_receipt(**values: Any) -> Body:
    return lambda world, actor, variant: {"receipt": _receipt(world, actor), **values}


def _credentials(field: str) -> Body:
    def body(world: World, actor: Actor, variant: str) -> dict[str, Any]:
        staff = actor.staff
        if staff is None:
            return {"email": "niemand@example.org", "password": "falsch-falsch-falsch", field: "000000"}
        return {"email": staff.email, "password": staff.password, field: world.code(staff)}

    return body


def _password_change(page: bool) -> Body:
    def body(world: World, actor: Actor, variant: str) -> dict[str, Any]:
        current = actor.staff.password if actor.staff else "falsch-falsch-falsch"
        new = new_password(actor.staff) if actor.staff else "Neues-Passwort-2026"
        fields = {"current_password": current, "new_password": new}
        return {**fields, "new_password_repeat": new} if page else fields

    return body


def _password_changed(world: World, actor: Actor) -> None:
    assert actor.staff is not None
    actor.staff = replace(actor.staff, password=new_password(actor.staff))
    if actor.pending:
        # The change lifted the forced change; the matrix needs this subject pending for the next routes.
        with world.runtime.sessions() as db:
            db.execute(
                update(StaffUser).where(StaffUser.id == actor.staff.user_id).values(must_change_password=True)
            )
            db.commit()


def _reauthenticated(**values: Any) -> Body:
    """A second-factor change: the password and a current code go with it."""

    def body(world: World, actor: Actor, variant: str) -> dict[str, Any]:
        if actor.staff is None:
            return {**values, "password": "falsch-falsch-falsch", "current_code": "000000"}
        return {**values, "password": actor.staff.password, "current_code": world.code(actor.staff)}

    return body


def _grant(world: World, actor: Actor, variant: str) -> dict[str, Any]:
    assert world.grantee is not None
    return {"email": world.grantee.email, "role": "counsellor"}


def _regranted(world: World, actor: Actor) -> None:
    world.regrant()


def _same_event(world: World, actor: Actor, variant: str) -> dict[str, Any]:
    """Link incident 1 of the case to incident 1 of its companion (a second case of the same organisation,
    held by the same subjects): linking what is linked is a no-op, so every holder's cell succeeds."""
    companion = world.companions[B if variant == B else A]
    return {"seq": "1", "other_case": companion.id[:8], "other_seq": "1"}


def _same_event_api(world: World, actor: Actor, variant: str) -> dict[str, Any]:
    """The API's link: the incident is in the address, the companion's incident 1 in the body."""
    form = _same_event(world, actor, variant)
    return {"other_case": form["other_case"], "other_seq": 1}


def _own_case_as_older(world: World, actor: Actor, variant: str) -> dict[str, Any]:
    """A merge proposal naming the case itself: a holder gets past every guard to the refusal (422), nobody
    else further than the 404; tests/cases/test_case_api.py proposes, withdraws and confirms for real."""
    return {"older_case": world.case_id(variant)}


_SHARES = _fixed(custodians="Leitung\nStellvertretung\nVorstand", threshold="2")
_ORG_PAGE = "/intern/organisationen/{organisation_id}"


def _referral(page: bool) -> Body:
    def body(world: World, actor: Actor, variant: str) -> dict[str, Any]:
        target = world.referral_target(world.case_id(variant))
        if page:
            return {"organisation": target, "mode": "refer", "consent": "yes"}
        return {"organisation": target, "reporter_consent": True}

    return body


def _new_article(world: World, actor: Actor, variant: str) -> dict[str, Any]:
    return {
        "slug": f"matrix-{world.unique()}",
        "title": "Nach der Sitzung",
        "summary": "Was nach einer Ratssitzung zu tun ist.",
        "body": "Notieren Sie, was gesagt wurde.",
        "codes": "A3",
    }


_ARTICLE_EDIT = _fixed(
    title="Beweise sichern",
    summary="Was Sie sichern sollten.",
    body="Bildschirmfotos mit Datum und Adresse.",
    codes="A3",
)
_SUPPORT_ENTRY = {
    "land": "09",
    "kind": "training",
    "name": "Werkstatt Matrix",
    "description_de": "Workshops für Ratsmitglieder.",
    "description_en": "Workshops for council members.",
    "url": "https://example.org/werkstatt",
    "source": "Beispielverband: Programm",
    "source_url": "",
}
_SUPPORT_PAGE = "/intern/unterstuetzung/{entry_id}"
_NEW_REPORT = report_body(land="01", type_codes=["A3a"], description="Ein Brief.", channel="letter")
_INCIDENT = {"type_codes": ["A3a"], "description": "Noch ein Brief.", "channel": "letter"}
_CASE_PAGE = "/intern/faelle/{case_id}"
NOTIFY_ADDRESS = "melder-matrix@example.org"


# -- the matrix ----------------------------------------------------------------------------------------------

ROUTES: dict[tuple[str, str], Route] = {
    # Public: the same for everybody, 404 only for what does not exist.
    ("GET", "/openapi.json"): Route(Guard.PUBLIC, 200),
    ("GET", "/healthz"): Route(Guard.PUBLIC, 200),
    ("GET", "/static/{path}"): Route(Guard.PUBLIC, 200, OBJECT_VARIANTS),
    ("GET", "/"): Route(Guard.PUBLIC, 200),
    ("GET", "/melden"): Route(Guard.PUBLIC, 200),
    ("POST", "/melden"): Route(
        Guard.PUBLIC, 201, form=_form_view("/melden", **_NEW_REPORT), files=True, csrf="form"
    ),
    ("POST", "/melden/code-notiert"): Route(
        Guard.PUBLIC, 303, form=_form_view("/melden"), csrf="form", ok_location="/fall?notice=code_noted"
    ),
    ("POST", "/api/v1/reports"): Route(Guard.PUBLIC, 201, json=_fixed(**_NEW_REPORT)),
    ("GET", "/statistik"): Route(Guard.PUBLIC, 200),
    ("GET", "/statistik/{year}.json"): Route(Guard.PUBLIC, 200, OBJECT_VARIANTS),
    ("GET", "/statistik/{year}.csv"): Route(Guard.PUBLIC, 200, OBJECT_VARIANTS),
    ("GET", "/statistik/daten/katalog.ttl"): Route(Guard.PUBLIC, 200),
    ("GET", "/statistik/daten/{year}/dcat.ttl"): Route(Guard.PUBLIC, 200, OBJECT_VARIANTS),
    ("GET", "/statistik/daten/{year}/datapackage.json"): Route(Guard.PUBLIC, 200, OBJECT_VARIANTS),
    ("GET", "/statistik/daten/{year}/{resource}.csv"): Route(Guard.PUBLIC, 200, OBJECT_VARIANTS),
    ("GET", "/api/v1/public/releases"): Route(Guard.PUBLIC, 200),
    ("GET", "/wissen"): Route(Guard.PUBLIC, 200),
    ("GET", "/wissen/selbstcheck/fragen"): Route(Guard.PUBLIC, 200),
    # The self-check's evaluation and both printable plans change nothing: no form token to ask for.
    ("POST", "/wissen/selbstcheck/auswertung"): Route(Guard.PUBLIC, 200, form=_fixed(**_SELFCHECK)),
    ("POST", "/wissen/selbstcheck/plan"): Route(
        Guard.PUBLIC, 200, form=_fixed(**_SELFCHECK, step1="Konzept", owner1="Hauptamt", format="html")
    ),
    ("GET", "/wissen/sicherheitsplan"): Route(Guard.PUBLIC, 200),
    ("POST", "/wissen/sicherheitsplan"): Route(
        Guard.PUBLIC, 200, form=_fixed(**{"a.zwei-faktor-an": "no"}, format="html")
    ),
    # Keeping answers under a code: anyone may (a new code each time); opening and deleting need the code,
    # and one the world does not hold is a 404 for everybody.
    ("GET", "/wissen/selbstcheck/code"): Route(Guard.PUBLIC, 200),
    ("POST", "/wissen/selbstcheck/speichern"): Route(
        Guard.PUBLIC, 200, form=_fixed(**_SELFCHECK), csrf="form"
    ),
    ("POST", "/wissen/selbstcheck/code"): Route(
        Guard.PUBLIC, 200, (MISSING,), form=_fixed(code=UNKNOWN_SELFCHECK_CODE, action="open"), csrf="form"
    ),
    ("POST", "/wissen/selbstcheck/loeschen"): Route(
        Guard.PUBLIC, 200, (MISSING,), form=_fixed(code=UNKNOWN_SELFCHECK_CODE), csrf="form"
    ),
    ("GET", "/wissen/{slug}"): Route(Guard.PUBLIC, 200, OBJECT_VARIANTS),
    ("GET", "/wissen/{slug}/pdf"): Route(Guard.PUBLIC, 200, OBJECT_VARIANTS),
    ("GET", "/glossar"): Route(Guard.PUBLIC, 200),
    ("GET", "/leichte-sprache"): Route(Guard.PUBLIC, 200),
    ("GET", "/leichte-sprache/{page}"): Route(Guard.PUBLIC, 200, OBJECT_VARIANTS),
    # The embedded demo's placeholder Impressum and privacy notice (production: 404, the operator's pages).
    ("GET", "/impressum"): Route(Guard.PUBLIC, 200),
    ("GET", "/datenschutz"): Route(Guard.PUBLIC, 200),
    # Staff sign-in and sign-out.
    ("GET", "/anmelden"): Route(Guard.SIGN_IN_PAGE, 200),
    ("POST", "/anmelden"): Route(Guard.LOGIN, 303, form=_credentials("code"), csrf="form"),
    ("POST", "/api/v1/session"): Route(Guard.LOGIN, 200, json=_credentials("totp")),
    ("POST", "/abmelden"): Route(Guard.ANYONE, 200, form=_fixed(), csrf="form", fresh_session=True),
    ("GET", "/api/v1/session"): Route(Guard.PENDING, 200),
    ("DELETE", "/api/v1/session"): Route(Guard.PENDING, 204, csrf="header", fresh_session=True),
    ("POST", "/api/v1/session/password"): Route(
        Guard.PENDING, 204, json=_password_change(page=False), csrf="header", after=_password_changed
    ),
    ("GET", "/konto/passwort"): Route(Guard.PENDING, 200),
    ("POST", "/konto/passwort"): Route(
        Guard.PENDING,
        303,
        form=_password_change(page=True),
        csrf="form",
        ok_location="/intern",
        after=_password_changed,
    ),
    ("GET", "/intern"): Route(Guard.STAFF, 200),
    ("GET", "/konto/zwei-faktor"): Route(Guard.STAFF, 200),
    ("POST", "/konto/zwei-faktor"): Route(
        Guard.STAFF, 200, form=_reauthenticated(action="codes"), csrf="form"
    ),
    # The reporter: the receipt in a JSON body, or the session that /fall/anmelden opens with it.
    ("POST", "/api/v1/reports/lookup"): Route(Guard.RECEIPT, 200, json=_with_receipt(), plaintext=True),
    ("POST", "/api/v1/reports/incidents"): Route(Guard.RECEIPT, 201, json=_with_receipt(**_INCIDENT)),
    ("POST", "/api/v1/reports/messages"): Route(Guard.RECEIPT, 201, json=_with_receipt(body="Danke.")),
    ("POST", "/api/v1/reports/notify"): Route(
        Guard.RECEIPT, 204, json=_with_receipt(notify_email=NOTIFY_ADDRESS)
    ),
    ("POST", "/api/v1/reports/identifiers"): Route(
        Guard.RECEIPT,
        200,
        json=_with_receipt(
            perpetrator_identifiers=[{"kind": "handle", "value": "@authz_probe", "platform": "instagram"}],
            consent_matching=True,
        ),
    ),
    ("POST", "/api/v1/reports/identifiers/withdraw"): Route(Guard.RECEIPT, 204, json=_with_receipt()),
    ("POST", "/api/v1/reports/perpetrator-known"): Route(
        Guard.RECEIPT, 204, json=_with_receipt(seq=1, perpetrator_known_on="2026-01-05")
    ),
    ("POST", "/api/v1/reports/proceedings"): Route(
        Guard.RECEIPT, 204, json=_with_receipt(seq=1, file_number="1 Js 1/26", outcome="running")
    ),
    ("POST", "/api/v1/reports/attachments/{attachment_id}"): Route(
        Guard.RECEIPT, 200, REPORTER_FILE_VARIANTS, json=_with_receipt(), plaintext=True
    ),
    ("POST", "/fall/anmelden"): Route(
        Guard.RECEIPT, 303, form=_with_receipt(), csrf="form", ok_location="/fall"
    ),
    ("GET", "/fall"): Route(Guard.REPORTER, 200, no_reporter=Expect(200), plaintext=True),
    ("POST", "/fall/vorfall"): Route(
        Guard.REPORTER, 200, form=_form_view("/fall", **_INCIDENT), files=True, csrf="form"
    ),
    ("POST", "/fall/nachricht"): Route(
        Guard.REPORTER,
        303,
        form=_fixed(message="Danke."),
        files=True,
        csrf="form",
        ok_location="/fall?notice=message_sent",
    ),
    ("GET", "/fall/anhang/{attachment_id}"): Route(
        Guard.REPORTER, 200, REPORTER_FILE_VARIANTS, plaintext=True
    ),
    ("POST", "/fall/benachrichtigung"): Route(
        Guard.REPORTER,
        303,
        form=_fixed(action="save", notify_email=NOTIFY_ADDRESS),
        csrf="form",
        ok_location="/fall?notice=notify_saved",
    ),
    # Perpetrator identifiers for the repeat-perpetrator matching (docs/matching.md), with the consent.
    ("POST", "/fall/merkmale"): Route(
        Guard.REPORTER,
        303,
        form=_fixed(
            action="save", match_handle="@authz_probe", match_platform="instagram", consent_matching="1"
        ),
        csrf="form",
        ok_location="/fall?notice=identifiers_saved",
    ),
    ("POST", "/fall/tatperson"): Route(
        Guard.REPORTER,
        303,
        form=_fixed(seq="1", perpetrator_known_on="2026-01-05"),
        csrf="form",
        ok_location="/fall?notice=known_saved",
    ),
    # The dossier PDF (compressed: the plaintext checks cannot read it; tests/dossier extracts its text).
    ("POST", "/fall/dossier"): Route(Guard.REPORTER, 200, form=_fixed(), csrf="form"),
    # The evidence ZIP (deflated as it streams: tests/dossier/test_evidence_zip.py unpacks it).
    ("POST", "/fall/beweise"): Route(Guard.REPORTER, 200, form=_fixed(), csrf="form"),
    # A letter as plain text, with the incident's description.
    ("POST", "/fall/brief"): Route(
        Guard.REPORTER,
        200,
        form=_fixed(kind="strafanzeige", format="txt", letter_name="Erika"),
        csrf="form",
        plaintext=True,
    ),
    ("POST", "/fall/verfahren"): Route(
        Guard.REPORTER,
        303,
        form=_fixed(seq="1", file_number="1 Js 1/26", outcome="running"),
        csrf="form",
        ok_location="/fall?notice=proceedings_saved",
    ),
    # Declining: a confirmation would merge the world's case away (the merge is tested in tests/cases).
    ("POST", "/fall/zusammenfuehren"): Route(
        Guard.REPORTER, 303, form=_fixed(action="decline"), csrf="form", ok_location="/fall"
    ),
    ("POST", "/fall/abmelden"): Route(Guard.ANYONE, 200, form=_fixed(), csrf="form", fresh_session=True),
    # Case work, JSON API.
    ("GET", "/api/v1/cases"): Route(Guard.STAFF, 200, lists=True),
    ("GET", "/api/v1/cases/{case_id}"): Route(Guard.CASE, 200, CASE_VARIANTS, plaintext=True),
    ("PATCH", "/api/v1/cases/{case_id}"): Route(
        Guard.CASE, 204, CASE_VARIANTS, json=_fixed(acknowledge=True), csrf="header"
    ),
    ("POST", "/api/v1/cases/{case_id}/messages"): Route(
        Guard.CASE, 201, CASE_VARIANTS, json=_fixed(body="Wir melden uns morgen."), csrf="header"
    ),
    ("POST", "/api/v1/cases/{case_id}/notes"): Route(
        Guard.CASE, 201, CASE_VARIANTS, json=_fixed(body="Rückruf um zehn."), csrf="header"
    ),
    ("GET", "/api/v1/cases/{case_id}/attachments/{attachment_id}"): Route(
        Guard.CASE, 200, ATTACHMENT_VARIANTS, plaintext=True
    ),
    ("POST", "/api/v1/cases/{case_id}/incidents/{seq}/classification"): Route(
        Guard.CASE, 204, INCIDENT_VARIANTS, json=_fixed(type_codes=["A3b"]), csrf="header"
    ),
    ("POST", "/api/v1/cases/{case_id}/referrals"): Route(
        Guard.CASE, 204, CASE_VARIANTS, json=_referral(page=False), csrf="header"
    ),
    ("PUT", "/api/v1/cases/{case_id}/incidents/{seq}/proceedings"): Route(
        Guard.CASE,
        204,
        INCIDENT_VARIANTS,
        json=_fixed(file_number="1 Js 1/26", outcome="running"),
        csrf="header",
    ),
    ("PUT", "/api/v1/cases/{case_id}/incidents/{seq}/event"): Route(
        Guard.CASE, 204, INCIDENT_VARIANTS, json=_same_event_api, csrf="header"
    ),
    ("DELETE", "/api/v1/cases/{case_id}/incidents/{seq}/event"): Route(
        Guard.CASE, 204, INCIDENT_VARIANTS, csrf="header"
    ),
    ("PUT", "/api/v1/cases/{case_id}/merge-proposal"): Route(
        Guard.CASE, 422, CASE_VARIANTS, json=_own_case_as_older, csrf="header"
    ),
    ("DELETE", "/api/v1/cases/{case_id}/merge-proposal"): Route(
        Guard.CASE, 204, CASE_VARIANTS, csrf="header"
    ),
    # Case work, pages.
    ("GET", "/intern/faelle"): Route(Guard.STAFF, 200, lists=True),
    ("GET", _CASE_PAGE): Route(Guard.CASE, 200, CASE_VARIANTS, plaintext=True),
    ("POST", _CASE_PAGE + "/bestaetigen"): Route(
        Guard.CASE,
        303,
        CASE_VARIANTS,
        form=_fixed(),
        csrf="form",
        ok_location=_CASE_PAGE + "?notice=acknowledged",
    ),
    ("POST", _CASE_PAGE + "/status"): Route(
        Guard.CASE,
        303,
        CASE_VARIANTS,
        form=_fixed(status="in_progress"),
        csrf="form",
        ok_location=_CASE_PAGE + "?notice=status_saved",
    ),
    ("POST", _CASE_PAGE + "/zuweisen"): Route(
        Guard.CASE,
        303,
        CASE_VARIANTS,
        form=_fixed(action="me"),
        csrf="form",
        ok_location=_CASE_PAGE + "?notice=assigned",
    ),
    ("POST", _CASE_PAGE + "/labels"): Route(
        Guard.CASE,
        303,
        CASE_VARIANTS,
        form=_fixed(labels=["follow_up"]),
        csrf="form",
        ok_location=_CASE_PAGE + "?notice=labels_saved",
    ),
    ("POST", _CASE_PAGE + "/weitergeben"): Route(
        Guard.CASE,
        303,
        CASE_VARIANTS,
        form=_referral(page=True),
        csrf="form",
        ok_location=_CASE_PAGE + "?notice=referred",
    ),
    ("POST", _CASE_PAGE + "/vorfaelle/{seq}/einordnung"): Route(
        Guard.CASE,
        303,
        INCIDENT_VARIANTS,
        form=_fixed(type_codes=["A3b"]),
        csrf="form",
        ok_location=_CASE_PAGE + "?notice=reclassified",
    ),
    ("POST", _CASE_PAGE + "/nachricht"): Route(
        Guard.CASE,
        303,
        CASE_VARIANTS,
        form=_fixed(message="Wir melden uns morgen."),
        files=True,
        csrf="form",
        ok_location=_CASE_PAGE + "?notice=message_sent",
    ),
    ("POST", _CASE_PAGE + "/notiz"): Route(
        Guard.CASE,
        303,
        CASE_VARIANTS,
        form=_fixed(note="Rückruf um zehn."),
        csrf="form",
        ok_location=_CASE_PAGE + "?notice=note_added",
    ),
    ("POST", _CASE_PAGE + "/vorfaelle/{seq}/verfahren"): Route(
        Guard.CASE,
        303,
        INCIDENT_VARIANTS,
        form=_fixed(file_number="1 Js 1/26", outcome="running"),
        csrf="form",
        ok_location=_CASE_PAGE + "?notice=proceedings_saved",
    ),
    # The same event: the other case must be one the subject holds too (tests/cases covers the 404 for a
    # case of another organisation named in the form).
    ("POST", _CASE_PAGE + "/ereignis"): Route(
        Guard.CASE,
        303,
        CASE_VARIANTS,
        form=_same_event,
        csrf="form",
        ok_location=_CASE_PAGE + "?notice=linked",
    ),
    ("POST", _CASE_PAGE + "/ereignis/{seq}/loesen"): Route(
        Guard.CASE,
        303,
        INCIDENT_VARIANTS,
        form=_fixed(),
        csrf="form",
        ok_location=_CASE_PAGE + "?notice=unlinked",
    ),
    # Withdrawing (a no-op without a proposal): a proposal would depend on the holders the referral cells
    # leave behind; tests/cases/test_events_merge_proceedings.py proposes, confirms and refuses.
    ("POST", _CASE_PAGE + "/zusammenfuehren"): Route(
        Guard.CASE,
        303,
        CASE_VARIANTS,
        form=_fixed(action="withdraw"),
        csrf="form",
        ok_location=_CASE_PAGE + "?notice=merge_withdrawn",
    ),
    # Running the matching of waiting identifiers: nothing waits in the matrix's world (tests/matching/
    # test_resume_after_rotation.py makes them wait), so a holder's success says that nothing does.
    ("POST", _CASE_PAGE + "/abgleich"): Route(
        Guard.CASE,
        303,
        CASE_VARIANTS,
        form=_fixed(),
        csrf="form",
        ok_location=_CASE_PAGE + "?notice=matching_done",
    ),
    ("POST", _CASE_PAGE + "/dossier"): Route(Guard.CASE, 200, CASE_VARIANTS, form=_fixed(), csrf="form"),
    ("POST", _CASE_PAGE + "/beweise"): Route(Guard.CASE, 200, CASE_VARIANTS, form=_fixed(), csrf="form"),
    # A letter as plain text: it shows the case's plaintext (the description) to its holders only.
    ("POST", _CASE_PAGE + "/brief"): Route(
        Guard.CASE,
        200,
        CASE_VARIANTS,
        form=_fixed(kind="auskunftssperre", format="txt", letter_name="Erika"),
        csrf="form",
        plaintext=True,
    ),
    # Leads: their organisation's members and keys (a new key epoch with every revocation and renewal).
    ("GET", "/intern/organisationen"): Route(Guard.STAFF, 200),
    ("GET", _ORG_PAGE): Route(Guard.LEAD, 200, ORGANISATION_VARIANTS),
    ("POST", _ORG_PAGE + "/mitglieder"): Route(
        Guard.LEAD,
        303,
        ORGANISATION_VARIANTS,
        form=_grant,
        csrf="form",
        ok_location=_ORG_PAGE + "?notice=granted",
    ),
    ("POST", _ORG_PAGE + "/mitglieder/{user_id}/entfernen"): Route(
        Guard.LEAD,
        303,
        ORGANISATION_VARIANTS,
        form=_fixed(),
        csrf="form",
        ok_location=_ORG_PAGE + "?notice=revoked",
        after=_regranted,
    ),
    # Every organisation of the world has its key: the first-key form refuses (422) even for its lead.
    ("POST", _ORG_PAGE + "/schluessel"): Route(
        Guard.LEAD, 422, ORGANISATION_VARIANTS, form=_SHARES, csrf="form"
    ),
    ("POST", _ORG_PAGE + "/anteile"): Route(
        Guard.LEAD, 200, ORGANISATION_VARIANTS, form=_SHARES, csrf="form"
    ),
    ("GET", "/api/v1/organisations/{organisation_id}/members"): Route(Guard.LEAD, 200, ORGANISATION_VARIANTS),
    ("POST", "/api/v1/organisations/{organisation_id}/members"): Route(
        Guard.LEAD, 201, ORGANISATION_VARIANTS, json=_grant, csrf="header"
    ),
    ("DELETE", "/api/v1/organisations/{organisation_id}/members/{user_id}"): Route(
        Guard.LEAD, 204, ORGANISATION_VARIANTS, csrf="header", after=_regranted
    ),
    # Coordinators: the dashboard and the knowledge base.
    ("GET", "/api/v1/dashboard/response-times"): Route(Guard.COORDINATOR, 200),
    ("GET", "/api/v1/dashboard/snapshots"): Route(Guard.COORDINATOR, 200),
    ("GET", "/api/v1/dashboard/snapshots/{as_of}"): Route(Guard.COORDINATOR, 200, OBJECT_VARIANTS),
    ("GET", "/intern/statistik"): Route(Guard.COORDINATOR, 200),
    ("GET", "/intern/statistik/{as_of}.csv"): Route(Guard.COORDINATOR, 200, OBJECT_VARIANTS),
    ("GET", "/wissen/neu"): Route(Guard.COORDINATOR, 200),
    ("POST", "/wissen/neu"): Route(
        Guard.COORDINATOR, 303, form=_new_article, csrf="form", ok_location="/wissen/matrix-"
    ),
    ("GET", "/wissen/{slug}/bearbeiten"): Route(Guard.COORDINATOR, 200, OBJECT_VARIANTS),
    ("POST", "/wissen/{slug}/bearbeiten"): Route(
        Guard.COORDINATOR,
        303,
        OBJECT_VARIANTS,
        form=_ARTICLE_EDIT,
        csrf="form",
        ok_location=f"/wissen/{ARTICLE}?saved=1",
    ),
    # Coordinators keep the support directory (everyone reads its published entries).
    ("GET", "/wissen/unterstuetzung"): Route(Guard.PUBLIC, 200),
    ("GET", "/intern/unterstuetzung"): Route(Guard.COORDINATOR, 200),
    ("GET", "/intern/unterstuetzung/neu"): Route(Guard.COORDINATOR, 200),
    ("POST", "/intern/unterstuetzung/neu"): Route(
        Guard.COORDINATOR,
        303,
        form=_fixed(**_SUPPORT_ENTRY),
        csrf="form",
        ok_location="/intern/unterstuetzung/",
    ),
    ("GET", _SUPPORT_PAGE): Route(Guard.COORDINATOR, 200, OBJECT_VARIANTS),
    ("POST", _SUPPORT_PAGE): Route(
        Guard.COORDINATOR,
        303,
        OBJECT_VARIANTS,
        form=_fixed(**{**_SUPPORT_ENTRY, "land": "bund", "name": "Stark im Amt"}),
        csrf="form",
        ok_location=_SUPPORT_PAGE + "?notice=saved",
    ),
    ("POST", _SUPPORT_PAGE + "/pruefen"): Route(
        Guard.COORDINATOR,
        303,
        OBJECT_VARIANTS,
        form=_fixed(),
        csrf="form",
        ok_location=_SUPPORT_PAGE + "?notice=reviewed",
    ),
    ("POST", _SUPPORT_PAGE + "/zurueckziehen"): Route(
        Guard.COORDINATOR,
        303,
        OBJECT_VARIANTS,
        form=_fixed(action="retire"),
        csrf="form",
        ok_location=_SUPPORT_PAGE + "?notice=retired",
    ),
    ("POST", "/wissen/{slug}/pruefen"): Route(
        Guard.COORDINATOR,
        303,
        OBJECT_VARIANTS,
        form=_fixed(),
        csrf="form",
        ok_location=f"/wissen/{ARTICLE}?reviewed=1",
    ),
}

# Not a route: an address nothing answers must be a 404 for everybody (a catch-all or a frontend fallback
# added to the app would turn it into something else, and it would not be in the route table). Its
# "success" is that 404.
UNROUTED: dict[tuple[str, str], Route] = {("GET", "/gibt-es-nicht/{case_id}"): Route(Guard.PUBLIC, 404)}


# -- the route table -----------------------------------------------------------------------------------------


def route_keys(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of every route the app answers, at any depth of included routers.

    FastAPI 0.165 includes routers lazily (``app.routes`` holds ``_IncludedRouter`` entries without a path);
    ``iter_route_contexts`` is how FastAPI itself walks them to build the OpenAPI document, and it also
    yields the routes hidden from it (include_in_schema=False: every page). HEAD, which Starlette adds to
    every GET, is left out. A kind of route this function does not know gets a key no entry can have.
    """
    keys: set[tuple[str, str]] = set()
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        path = context.path or f"<no path: {route!r}>"
        if isinstance(route, Mount):
            kind = "GET" if isinstance(route.app, StaticFiles) else f"MOUNT {type(route.app).__name__}"
            keys.add((kind, f"{path}/{{path}}"))
        elif isinstance(route, WebSocketRoute) or type(route).__name__ == "APIWebSocketRoute":
            keys.add(("WEBSOCKET", path))
        elif isinstance(route, StarletteRoute):
            methods = set(context.methods or ())
            if "GET" in methods:
                methods.discard("HEAD")
            keys.update((method, path) for method in methods)
        else:
            keys.add((f"UNKNOWN {type(route).__name__}", path))
    return keys


@pytest.fixture
def bare_app(tmp_path: Path) -> Iterator[FastAPI]:
    """The app as served, built without a database: the route table needs none."""
    runtime = build_runtime(Settings(data_dir=tmp_path))
    try:
        yield create_app(runtime=runtime)
    finally:
        runtime.dispose()


def test_every_route_has_a_matrix_entry(bare_app: FastAPI) -> None:
    routes = route_keys(bare_app)
    assert len(routes) > 60, "the walk found the routes of the included routers"
    missing = sorted(routes - set(ROUTES))
    stale = sorted(set(ROUTES) - routes)
    assert not missing, f"routes without a matrix entry (decide who may call them): {missing}"
    assert not stale, f"matrix entries without a route: {stale}"


def test_the_route_walk_sees_routes_hidden_from_the_schema(bare_app: FastAPI) -> None:
    """The walk must not depend on the OpenAPI document: pages are not in it."""
    documented = {
        (method.upper(), path)
        for path, operations in bare_app.openapi()["paths"].items()
        for method in operations
    }
    routes = route_keys(bare_app)
    assert documented < routes
    assert ("GET", "/intern/faelle/{case_id}") in routes - documented
    assert ("GET", "/static/{path}") in routes


# -- expectations --------------------------------------------------------------------------------------------


def _owns(actor: Actor, variant: str) -> bool:
    """A reporter's own object: their case (SELF) or a file of it."""
    return actor.reporter_of is not None and variant in (SELF, actor.reporter_of)


def expected(key: tuple[str, str], route: Route, actor: Actor, variant: str, world: World) -> Expect:
    api = key[1].startswith("/api/")
    success = Expect(route.ok, route.ok_location.format(**params(world, variant)), allowed=True)
    not_found = Expect(404)
    guard = route.guard
    if guard is Guard.PUBLIC:
        return success if variant != MISSING else not_found
    if guard is Guard.ANYONE:
        return success
    if guard is Guard.RECEIPT:
        return success if _owns(actor, variant) else not_found
    if guard is Guard.REPORTER:
        if not actor.reporter_session:
            return route.no_reporter
        return success if _owns(actor, variant) else not_found
    if guard is Guard.LOGIN:
        if actor.staff is None or actor.disabled:
            return Expect(401)
        return (
            success if api else replace(success, location="/konto/passwort" if actor.pending else "/intern")
        )
    if guard is Guard.SIGN_IN_PAGE:
        return Expect(303, "/intern") if actor.signed_in else success
    if not actor.signed_in:
        return Expect(401) if api else Expect(303, "/anmelden")
    if guard is Guard.PENDING:
        return success
    if actor.pending:
        return Expect(403) if api else Expect(303, "/konto/passwort")
    if guard is Guard.STAFF:
        return success
    if guard is Guard.COORDINATOR:
        return success if actor.coordinator and variant != MISSING else not_found
    if guard is Guard.LEAD:
        return success if variant in actor.leads else not_found
    assert guard is Guard.CASE
    return success if variant in actor.holds else not_found


def expected_without_csrf(route: Route, actor: Actor, variant: str, with_token: Expect) -> Expect:
    """The same request without its CSRF token: never through, and changing nothing."""
    if route.csrf == "header":
        # The session comes first (401 without one), then the header; a missing case is not even looked up.
        return Expect(401) if not actor.signed_in else Expect(403)
    if route.guard in (Guard.PUBLIC, Guard.ANYONE, Guard.LOGIN, Guard.RECEIPT):
        return Expect(403)
    if route.guard is Guard.CASE and with_token.status == 404 and variant == NO_SEQ and A in actor.may_work:
        # The case is the holder's: the refused form shows its page again (403) before the incident
        # number is looked at.
        return Expect(403)
    # Forms behind a session or a role check those first, then the token.
    return Expect(403) if with_token.allowed else with_token


def params(world: World, variant: str) -> dict[str, str]:
    """The path parameters of a variant, for every kind of object a route can name."""
    case = {A: A, B: B, CROSS: A, NO_SEQ: A}.get(variant, MISSING)
    attachment = {A: A, B: B, CROSS: B}.get(variant)
    return {
        "case_id": world.case_id(case),
        "attachment_id": world.cases[attachment].attachment_id if attachment else world.missing_attachment_id,
        "seq": "99" if variant == NO_SEQ else "1",
        "as_of": SNAPSHOT_MONTH if variant != MISSING else "2019-01",
        "slug": ARTICLE if variant != MISSING else "gibt-es-nicht",
        "page": EASY_PAGE if variant != MISSING else "gibt-es-nicht",
        "year": str(RELEASE_YEAR) if variant != MISSING else "2019",
        "resource": "k1-persons-by-month" if variant != MISSING else "k9-gibt-es-nicht",
        "path": STATIC_FILE if variant != MISSING else "gibt-es-nicht.css",
        "organisation_id": world.organisation_id(variant),
        "entry_id": world.support_entry_id if variant != MISSING else world.missing_entry_id,
        "user_id": world.grantee.user_id if world.grantee else "",
    }


# -- running the matrix --------------------------------------------------------------------------------------


@dataclass
class Cell:
    key: tuple[str, str]
    route: Route
    actor: Actor
    variant: str
    with_token: bool
    expect: Expect
    cookies: dict[str, str]
    api_token: str
    # The form token of these cookies (a fresh session has its own: tokens are bound to the session).
    form_token: str = ""

    def __str__(self) -> str:
        token = "" if self.with_token else " WITHOUT CSRF"
        return f"{self.key[0]} {self.key[1]} [{self.variant}] as {self.actor.name}{token}"


@dataclass
class Answer:
    status: int
    content_type: str
    body: str


class Matrix:
    def __init__(self, world: World) -> None:
        self.world = world
        self.failures: list[str] = []
        self.answers: dict[tuple[tuple[str, str], str, str, bool], Answer] = {}
        self.cells = 0

    def fail(self, cell: Cell, problem: str) -> None:
        self.failures.append(f"{cell}: {problem}")

    def plan(self, key: tuple[str, str], route: Route) -> list[Cell]:
        cells = []
        for actor in self.world.actors:
            for variant in route.variants:
                expect = expected(key, route, actor, variant, self.world)
                for with_token in (True, False) if route.csrf else (True,):
                    cookies, api_token, form_token = actor.cookies, actor.api_token, actor.form_token
                    if route.fresh_session:
                        cookies, api_token, form_token = self.world.fresh_session(actor)
                    outcome = expect if with_token else expected_without_csrf(route, actor, variant, expect)
                    cells.append(
                        Cell(key, route, actor, variant, with_token, outcome, cookies, api_token, form_token)
                    )
        return cells

    def run(self, key: tuple[str, str], route: Route) -> None:
        """The refused cells of a route first, then the allowed ones.

        Reading every table costs more than a request, so the state is compared once around all refused
        cells of a route (none of them may change anything) rather than around each; the audit log, cheap
        to read, is checked cell by cell. Sessions that sign-out cells end are opened before either.
        """
        cells = self.plan(key, route)
        refused = [cell for cell in cells if not cell.expect.allowed]
        changes = key[0] != "GET"
        before = self.world.state() if changes and refused else None
        for cell in refused:
            self.send(cell)
        if before is not None:
            changed = self.world.state().changes_since(before)
            if changed:
                problem = f"one of its {len(refused)} refused requests changed {', '.join(changed)}"
                self.failures.append(f"{key[0]} {key[1]}: {problem}")
        for cell in cells:
            if cell.expect.allowed:
                self.send(cell)
                if changes and route.after is not None:
                    route.after(self.world, cell.actor)

    def send(self, cell: Cell) -> None:
        world, route, actor, variant = self.world, cell.route, cell.actor, cell.variant
        self.cells += 1
        method, path = cell.key
        # Built when sent: a body may depend on what earlier cells did (a referral, a new password).
        body = (route.json or route.form or _fixed())(world, actor, variant)
        files = None
        if route.files:
            # Files of their own, never a case's marker: an answer may show a subject what they sent.
            field = "attachments" if path in ("/melden", "/fall/vorfall") else "message_files"
            files = [(field, text_file("neu", "datei"))]
        call = Call(
            path.format(**params(world, variant)),
            json=body if route.json else None,
            data=body if route.form else None,
            files=files,
        )
        audit_head = world.audit_head()
        response = world.send(
            method,
            call,
            cell.cookies,
            csrf_header=cell.api_token if cell.with_token and route.csrf == "header" else "",
            form_token=cell.form_token if cell.with_token and route.csrf == "form" else "",
        )
        self.check_answer(cell, response)
        if not cell.expect.allowed:
            self.check_audit(cell, audit_head)
        self.answers[(cell.key, actor.name, variant, cell.with_token)] = Answer(
            response.status_code,
            response.headers.get("content-type", ""),
            self.normalised(response.text, call.url),
        )

    def check_answer(self, cell: Cell, response: httpx2.Response) -> None:
        world, actor, route, expect = self.world, cell.actor, cell.route, cell.expect
        if response.status_code != expect.status:
            self.fail(
                cell, f"status {response.status_code}, expected {expect.status}: {response.text[:200]!r}"
            )
            return
        api = cell.key[1].startswith("/api/")
        # One answer for "not yours" and "not there", down to the words.
        if expect.status == 404 and api and response.json() != {"detail": "Not found."}:
            self.fail(cell, f"a 404 of the API says {response.text[:200]!r}")
        location = response.headers.get("location", "")
        if expect.location and not location.startswith(expect.location):
            self.fail(cell, f"redirects to {location!r}, expected {expect.location!r}")
        seen = response.text + "\n" + "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        readable = actor.may_read(with_receipt=route.guard is Guard.RECEIPT)
        for ref in world.cases.values():
            if ref.key not in readable and ref.marker in seen:
                self.fail(cell, f"plaintext of case {ref.key} in the answer")
            if ref.key not in actor.may_work and ref.note_marker in seen:
                self.fail(cell, f"an internal note of case {ref.key} in the answer")
        if not actor.signed_in:
            # Reporters see the organisation, never which counsellor; the public sees nobody at all.
            others = {e: n for e, n in world.staff_names.items() if not actor.staff or e != actor.staff.email}
            if any(email in seen or name in seen for email, name in others.items()):
                self.fail(cell, "a member of staff is named in the answer")
        owner = actor.reporter_of if cell.variant == SELF else cell.variant
        shown = owner in world.cases and world.cases[owner].marker in response.text
        if expect.allowed and route.plaintext and owner in world.cases and not shown:
            self.fail(cell, f"the answer lacks the plaintext of case {owner}: the leak checks would be blind")
        if expect.allowed and route.lists:
            for ref in world.cases.values():
                if (ref.id in response.text) != (ref.key in actor.holds):
                    self.fail(cell, f"case {ref.key} listed: {ref.id in response.text}")

    def check_audit(self, cell: Cell, audit_head: int) -> None:
        """A refused request writes no audit event, but the reading of a case the subject may read: a
        refused form of the case page shows that page again."""
        with_receipt = cell.route.guard is Guard.RECEIPT
        readable = {self.world.cases[key].id for key in cell.actor.may_read(with_receipt)}
        for action, object_id in self.world.audit_since(audit_head):
            if not (action == "case.decrypt" and object_id in readable):
                self.fail(cell, f"a refused request wrote the audit event {action} on {object_id}")

    def normalised(self, text: str, url: str) -> str:
        """The answer without the identifiers the request named (pages link to themselves, to switch the
        language): what is left must not depend on whether the object exists."""
        text = text.replace(url, "<address>")
        for value in self.world.ids():
            text = text.replace(value, "<id>")
        return text

    def compare_not_visible_with_missing(self) -> int:
        """A 404 for something that exists but is not the subject's must be the 404 for nothing at all."""
        compared = 0
        for (key, actor, variant, with_token), answer in self.answers.items():
            if variant == MISSING or answer.status != 404:
                continue
            baseline = self.answers.get((key, actor, MISSING, with_token))
            if baseline is None:
                continue
            compared += 1
            if answer != baseline:
                lines = difflib.unified_diff(
                    baseline.body.splitlines(), answer.body.splitlines(), n=0, lineterm=""
                )
                self.failures.append(
                    f"{key[0]} {key[1]} [{variant}] as {actor}: the 404 differs from the one for a missing "
                    f"object ({answer.content_type} / {baseline.content_type}): {' | '.join(lines)[:400]}"
                )
        return compared


ALL = {**ROUTES, **UNROUTED}


@pytest.mark.parametrize("key", sorted(ALL), ids=lambda key: f"{key[0]} {key[1]}")
def test_route(world: World, key: tuple[str, str], caplog: pytest.LogCaptureFixture) -> None:
    """Every subject and every variant of the route's object, with and without the CSRF token."""
    route = ALL[key]
    matrix = Matrix(world)
    matrix.run(key, route)
    # Logs never echo what a request carried (security.md): no receipt, password, plaintext or address.
    secrets = [PASSWORD, OTHER_PASSWORD, NOTIFY_ADDRESS, *world.staff_names]
    secrets += [text for ref in world.cases.values() for text in (ref.receipt, ref.marker, ref.note_marker)]
    assert "rueckhalt.access" in caplog.text, "the requests' log lines were captured"
    logged = [secret for secret in secrets if secret in caplog.text]
    assert not logged, f"the log holds what requests carried: {logged}"
    compared = matrix.compare_not_visible_with_missing()
    if (
        route.guard in (Guard.CASE, Guard.COORDINATOR, Guard.RECEIPT, Guard.REPORTER)
        and MISSING in route.variants
    ):
        assert compared, "some subject's 404 for an existing object was compared with the one for nothing"
    assert not matrix.failures, f"{len(matrix.failures)} of {matrix.cells} cells failed:\n" + "\n".join(
        matrix.failures
    )
