"""Every page a person can open, and every other GET route with the reason it is not a page.

tests/browser/test_accessibility.py runs axe-core on each page of ``PAGES`` (and on the error pages of
``ERROR_PAGES`` and the answers of ``FORM_ANSWER_PAGES``); tests/browser/test_page_catalogue.py fails when
the application answers a GET on a route that is in neither list, so a new page cannot go unchecked.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

# GET route (as declared) -> who opens it and what it shows.
PAGES: dict[str, str] = {
    "/": "everyone: the start page",
    "/melden": "reporters: the report form (POST shows the errors or the receipt)",
    "/fall": "reporters: sign-in with the receipt, or the signed-in case file with its forms",
    "/wissen": "visitors: the Handlungsempfehlungen, with search",
    "/wissen/selbstcheck/fragen": "visitors: the municipal self-check (its evaluation answers a POST)",
    "/wissen/selbstcheck/code": "visitors: open a self-check kept under a code (again, or to delete it)",
    "/wissen/sicherheitsplan": "visitors: the questionnaire of the personal safety plan",
    "/wissen/{slug}": "visitors: one article (a coordinator also sees the edit link)",
    "/wissen/neu": "coordinators: publish a new article",
    "/wissen/{slug}/bearbeiten": "coordinators: edit an article",
    "/wissen/unterstuetzung": "visitors: the support directory by Land (?land= filters, without JavaScript)",
    "/intern/unterstuetzung": "coordinators: every directory entry with its state, past review flagged",
    "/intern/unterstuetzung/neu": "coordinators: a new directory entry (public after a second review)",
    "/intern/unterstuetzung/{entry_id}": "coordinators: one entry to edit, review, retire or restore",
    "/glossar": "visitors: the legal terms the pages use, in plain words",
    "/leichte-sprache": "visitors: the pages in Leichte Sprache (easy-to-read German)",
    "/leichte-sprache/{page}": "visitors: one page in Leichte Sprache",
    "/impressum": "visitors: the demo's placeholder Impressum (production links the operator's page)",
    "/datenschutz": "visitors: the demo's placeholder privacy notice (production links the operator's page)",
    "/statistik": "visitors: the published statistics (?jahr= for earlier years)",
    "/anmelden": "staff: sign-in with password and authenticator code",
    "/intern": "staff: start page, different for counsellors, leads, coordinators and administrators",
    "/konto/passwort": "staff: change the password (forced after the first sign-in)",
    "/konto/zwei-faktor": "staff: new authenticator app (QR code) and recovery codes",
    "/intern/faelle": "counsellors: the inbox with its filters",
    "/intern/faelle/{case_id}": "counsellors: one case with messages, notes, history and its forms",
    "/intern/statistik": "coordinators: the anonymised dashboard",
    "/intern/organisationen": "members: their organisations; leads reach each one's page (or set its key up)",
    "/intern/organisationen/{organisation_id}": (
        "leads: the first key pair, or members and their keys, granting, revoking and the recovery shares"
    ),
}

# Pages that only the answer to a form shows, with no GET route of their own: POST route -> what it shows.
FORM_ANSWER_PAGES: dict[str, str] = {
    "/wissen/selbstcheck/auswertung": "visitors: the self-check evaluated, with forms to keep and print it",
    "/wissen/selbstcheck/code": "visitors: the questionnaire filled from a kept self-check, or the error",
    "/wissen/selbstcheck/loeschen": "visitors: a kept self-check deleted (the code page with its notice)",
    "/wissen/selbstcheck/speichern": "visitors: the self-check kept; a new code, shown once",
    "/wissen/selbstcheck/plan": "visitors: the self-check's answers and next steps, as a page to print",
    "/wissen/sicherheitsplan": "visitors: the personal safety plan, as a page to print",
    "/intern/organisationen/{organisation_id}/schluessel": (
        "leads: the first key pair is made; its recovery shares, shown once, one printed page per custodian"
    ),
    "/intern/organisationen/{organisation_id}/anteile": (
        "leads: new recovery shares, shown once, one printed page per custodian"
    ),
}

# GET routes that answer with something other than an HTML page, by route, with the reason.
NOT_PAGES: dict[str, str] = {
    "/openapi.json": "JSON: the API contract",
    "/healthz": "JSON: health of database, broker and worker",
    "/api/v1/session": "JSON API: who is signed in",
    "/api/v1/cases": "JSON API: the case list",
    "/api/v1/cases/{case_id}": "JSON API: one case",
    "/api/v1/cases/{case_id}/attachments/{attachment_id}": "download: a decrypted file (case page)",
    "/api/v1/organisations/{organisation_id}/members": "JSON API: an organisation's members (its leads)",
    "/api/v1/dashboard/response-times": "JSON API: response times per organisation",
    "/api/v1/dashboard/snapshots": "JSON API: the coordinators' snapshots",
    "/api/v1/dashboard/snapshots/{as_of}": "JSON API: one snapshot",
    "/api/v1/public/releases": "JSON API: the public statistics releases",
    "/fall/anhang/{attachment_id}": "download: a file of the reporter's case (always an attachment)",
    "/statistik/{year}.json": "download: a public release as JSON",
    "/wissen/{slug}/pdf": "download: a published article as PDF (the dialogue checklist links it)",
    "/statistik/{year}.csv": "download: a public release as CSV",
    # Open data (service/statistics/public/opendata.py): files for portals to harvest, linked from /statistik.
    "/statistik/daten/katalog.ttl": "open data: the DCAT-AP.de catalogue of every release (Turtle)",
    "/statistik/daten/{year}/dcat.ttl": "open data: one release's DCAT-AP.de dataset (Turtle)",
    "/statistik/daten/{year}/datapackage.json": "open data: one release's Frictionless Data Package (JSON)",
    "/statistik/daten/{year}/{resource}.csv": "open data: one table of a release (CSV)",
    "/intern/statistik/{as_of}.csv": "download: a dashboard snapshot as CSV",
    "/static/{path:path}": "files: the stylesheet and the icon",
}

# Error pages by status: no route of their own, rendered by the error handlers for any path.
ERROR_PAGES: dict[int, str] = {
    403: "a form sent with an expired or missing token",
    404: "an address that does not exist (or a case the person may not see)",
    429: "too many reports or sign-ins from one address",
}

# The pages a reporter or visitor sees: checked in German and in English.
# Texts in Leichte Sprache exist in German only (the English page says so and shows them as they are):
# checked in German, where the rules of Leichte Sprache apply.
GERMAN_ONLY_PAGES = {"/leichte-sprache/{page}"}

REPORTER_PAGES = {
    "/",
    "/melden",
    "/fall",
    "/wissen",
    "/wissen/selbstcheck/fragen",
    "/wissen/selbstcheck/code",
    "/wissen/sicherheitsplan",
    "/wissen/{slug}",
    "/wissen/unterstuetzung",
    "/glossar",
    "/leichte-sprache",
    "/leichte-sprache/{page}",
    "/statistik",
}


def get_routes(app: Any) -> set[str]:
    """The paths of every route of ``app`` that answers GET (mounted applications as ``<mount>/{path:path}``).

    FastAPI 0.165 includes routers lazily: ``app.routes`` holds one ``_IncludedRouter`` per include_router
    call, which keeps the router it was given (``original_router``) and the prefix of the include
    (``include_context.prefix``). Walking those gives the routes as declared, whatever FastAPI builds from
    them on the first request. Both names are private, so anything unknown fails here rather than being
    skipped: a route this walk cannot read would otherwise escape the catalogue.
    """
    return routes_answering(app, "GET")


def routes_answering(app: Any, method: str) -> set[str]:
    """The paths of every route of ``app`` that answers ``method`` (see ``get_routes``)."""
    return {path for path, methods in _walk(app.routes, "") if methods is None or method in methods}


def _walk(routes: Iterable[BaseRoute], prefix: str) -> Iterator[tuple[str, set[str] | None]]:
    for route in routes:
        branch: Any = route
        if getattr(branch, "original_router", None) is not None:
            yield from _walk(branch.original_router.routes, prefix + branch.include_context.prefix)
        elif isinstance(route, Route):
            # A route declared without methods answers every method.
            yield prefix + route.path, None if route.methods is None else set(route.methods)
        elif isinstance(route, Mount):
            # A mounted application (the static files) answers every method on every path below it.
            yield prefix + route.path + "/{path:path}", None
        elif not isinstance(route, WebSocketRoute):  # a websocket is no page (and the app has none)
            raise TypeError(f"a route the catalogue cannot read: {type(route).__name__}")
