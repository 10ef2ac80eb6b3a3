"""Web plumbing shared by every feature: reading requests and their limits, language, templates, pages,
downloads. The headers and the access log of every response are in service/hardening.py, the error
handlers in service/error_handlers.py.

Nothing here may log or echo request content: errors name fields, never values.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Coroutine, Iterator, MutableMapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, TypeVar
from urllib.parse import quote, urlencode

from fastapi import Header, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from jinja2 import BytecodeCache, Environment, FileSystemLoader, select_autoescape
from jinja2.bccache import Bucket
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException

from service import csrf, session_cookie, strict_json
from service.config import PROJECT_ROOT
from service.display import invisible_marks, user_text
from service.errors import BadInput, NotFound, PayloadTooLarge, UnsupportedMediaType
from service.i18n import SUPPORTED, Translator, pick
from service.legal_links import IMPRINT_PLACEHOLDER, PRIVACY_PLACEHOLDER, LegalLinks

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LANG_COOKIE = "rh_lang"


# -- reading requests: one way only -------------------------------------------------------------------------

_NUL = "\x00"


def _nul_refused(where: str) -> BadInput:
    return BadInput([{"loc": [where], "type": "invalid_characters", "msg": "NUL is not allowed"}])


class StrictRequest(Request):
    """A request whose JSON body is read by service.strict_json: duplicate keys, NaN, NUL and the like are
    invalid JSON (422) instead of something each handler and the database would meet unprepared."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = strict_json.loads(await self.body())
        return self._json


def refuse_nul_in_url(request: Request) -> None:
    """NUL names nothing, and PostgreSQL refuses to compare text with it (a 500 before this check): a path
    with one is not found, a query string with one is invalid."""
    if _NUL in request.scope["path"]:
        raise NotFound()
    raw = request.scope.get("query_string", b"")
    # Decoded, a query has a NUL only where its bytes hold one or "%00": the others are not parsed (most
    # requests have no query; parsing one was a hundredth of the intake's CPU).
    if (b"\x00" in raw or b"%00" in raw) and any(
        _NUL in name or _NUL in value for name, value in request.query_params.multi_items()
    ):
        raise _nul_refused("query")


class BodyKind(StrEnum):
    """What a route's body may be, and so how large it may grow (each with its own setting)."""

    json = "json"  # the API (and any route under /api/): max_json_body_bytes
    form = "form"  # a page's form without files: max_form_body_bytes
    long_form = "long_form"  # a page's form with a long text (an article): max_long_form_body_bytes
    upload = "upload"  # a form that takes files, the only kind that may be multipart: max_upload_body_bytes


@dataclass(frozen=True)
class BodyLimits:
    json: int
    form: int
    long_form: int
    upload: int

    def of(self, kind: BodyKind) -> int:
        limit: int = getattr(self, kind.value)
        return limit

    @property
    def largest(self) -> int:
        return max(self.json, self.form, self.long_form, self.upload)


_BODY_KIND = "_rueckhalt_body_kind"
EndpointT = TypeVar("EndpointT", bound=Callable[..., Any])


def body(kind: BodyKind) -> Callable[[EndpointT], EndpointT]:
    """Declares a route's body (below the ``@router.post`` line). Without it, routes under /api/ take JSON
    and every other route a form without files: a route takes files only where it says so."""

    def mark(endpoint: EndpointT) -> EndpointT:
        setattr(endpoint, _BODY_KIND, kind)
        return endpoint

    return mark


def body_kind_of(path: str, endpoint: Callable[..., Any]) -> BodyKind:
    declared: BodyKind | None = getattr(endpoint, _BODY_KIND, None)
    if declared is not None:
        return declared
    return BodyKind.json if path.startswith("/api/") or path == "/healthz" else BodyKind.form


def limited_receive(request: Request, kind: BodyKind) -> Receive:
    """The route's body limit, before anything is read (a declared length) and while the body streams in
    (no length, or a wrong one): a flood is refused before any handler, rate limit or parser sees it."""
    limits: BodyLimits = request.app.state.body_limits
    limit = limits.of(kind)
    content_type = request.headers.get("content-type", "").lower()
    if kind is not BodyKind.upload and kind is not BodyKind.json and content_type.startswith("multipart/"):
        # A JSON route never parses multipart (it answers 422, within its small limit); a page's form
        # would, so it refuses it outright.
        raise UnsupportedMediaType()
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            too_large = int(declared) > limit
        except ValueError:
            too_large = True
        if too_large:
            raise PayloadTooLarge()
    upstream = request.receive
    received = 0

    async def receive() -> Message:
        nonlocal received
        message = await upstream()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise PayloadTooLarge()
        return message

    return receive


# An ``Idempotency-Key`` header of the JSON API: long enough to hold 128 random bits (22 base64url characters;
# a UUID is 36), and of characters a header carries as they are.
IDEMPOTENCY_KEY = r"^[A-Za-z0-9_-]{22,128}$"
# The header of a message or a note written through the API (``IntakeService.claim_once``).
OnceKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=IDEMPOTENCY_KEY,
        description=(
            "Optional: a random string of your own (a UUID, say) for this message or note. Sending it again "
            "with the same key and text (after a lost answer or a 503) stores nothing a second time and "
            "answers 409, for a day or two; the same key with another text is stored."
        ),
    ),
]


class StrictRoute(APIRoute):
    """The route class of every router (``route_class=StrictRoute``): the URL is checked, the route's body
    limit applied (``BodyKind``) and the JSON body read strictly before any dependency or handler runs."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        # Before the base class builds the handler, which reads it.
        self.body_kind = body_kind_of(path, endpoint)
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        kind = self.body_kind

        async def strict_handler(request: Request) -> Response:
            refuse_nul_in_url(request)
            try:
                receive = limited_receive(request, kind)
                return await handler(StrictRequest(request.scope, receive))
            except StarletteHTTPException as exc:
                # FastAPI turns any failure while reading a JSON body into a 400; a body that grew past
                # the limit while it streamed in (no Content-Length) is the documented 413.
                if isinstance(exc.__cause__, PayloadTooLarge):
                    raise exc.__cause__ from None
                raise

        return strict_handler


async def read_form(
    request: Request, *, max_fields: int, free_text: frozenset[str] = frozenset()
) -> FormData:
    """A form without files, for the pages that read their form themselves. NUL in a name or a value is
    refused like anywhere else (no person types it, and PostgreSQL cannot store it), except in the
    ``free_text`` fields: their validators refuse it with every other control character, at the field,
    and the page keeps what was typed."""
    form = await request.form(max_files=0, max_fields=max_fields)
    for name, value in form.multi_items():
        if _NUL in name or (isinstance(value, str) and _NUL in value and name not in free_text):
            raise _nul_refused("body")
    return form


# -- language and templates -------------------------------------------------------------------------------


def cookie_name(request: Request, base: str) -> str:
    """Behind TLS every cookie of ours is ``__Host-`` prefixed: Secure, Path=/, no Domain, so no sibling
    subdomain (and no plain-HTTP page) can set or overwrite it."""
    pages: Pages | None = getattr(request.app.state, "pages", None)
    return f"__Host-{base}" if pages is not None and pages.behind_tls else base


def read_cookie(request: Request, base: str) -> str | None:
    return request.cookies.get(cookie_name(request, base))


def request_lang(request: Request) -> str:
    wanted = request.query_params.get("lang") or read_cookie(request, LANG_COOKIE) or "de"
    return wanted if wanted in SUPPORTED else "de"


# Pages that answer a POST switch language on the page a GET can reach again.
_GET_PAGE_OF = {
    "/melden": "/melden",
    "/fall/anmelden": "/fall",
    "/fall/vorfall": "/fall",
    "/fall/tatperson": "/fall",
    "/fall/abmelden": "/fall",
    "/fall/nachricht": "/fall",
    "/anmelden": "/anmelden",
    "/abmelden": "/anmelden",
    "/konto/passwort": "/konto/passwort",
    "/konto/zwei-faktor": "/konto/zwei-faktor",
    "/wissen/selbstcheck/auswertung": "/wissen/selbstcheck/fragen",
    "/wissen/selbstcheck/code": "/wissen/selbstcheck/code",
    "/wissen/selbstcheck/speichern": "/wissen/selbstcheck/code",
    "/wissen/selbstcheck/loeschen": "/wissen/selbstcheck/code",
    "/wissen/selbstcheck/plan": "/wissen/selbstcheck/fragen",
    "/wissen/sicherheitsplan": "/wissen/sicherheitsplan",
}


# The forms of a case page post to /intern/faelle/<id>/<action>; the page itself is /intern/faelle/<id>.
_CASE_FORM = re.compile(r"^(/intern/faelle/[0-9a-f-]{36})/[a-z]+$")
# The forms of an organisation's page (a grant, a revocation, the key, the shares) likewise.
_ORGANISATION_FORM = re.compile(
    r"^(/intern/organisationen/[0-9a-f-]{36})/(?:mitglieder(?:/[0-9a-f-]{36}/entfernen)?|schluessel|anteile)$"
)


# The support directory's forms: a new entry, an entry's page itself, its review and its retirement.
_SUPPORT_FORM = re.compile(r"^(/intern/unterstuetzung/(?:neu|[0-9a-f-]{36}))(?:/(?:pruefen|zurueckziehen))?$")


def _get_page_of(path: str) -> str:
    if path in _GET_PAGE_OF:
        return _GET_PAGE_OF[path]
    form_page = _CASE_FORM.match(path) or _ORGANISATION_FORM.match(path) or _SUPPORT_FORM.match(path)
    return form_page.group(1) if form_page else "/"


# A path of this site: one slash, then no second slash or backslash (browsers read "/\\host" as "//host"),
# and nothing a browser would take for another scheme, host or a line break.
_SAME_ORIGIN_PATH = re.compile(r"^/(?![/\\])[^\\\x00-\x1f\x7f]*$")


def same_origin_path(path: str) -> str:
    """``path`` if it can only name a page of this site, else "/": the link is built from what the client
    asked for (``GET //evil.example`` has the path ``//evil.example``), and must never lead elsewhere."""
    if not _SAME_ORIGIN_PATH.match(path):
        return "/"
    # Percent-encoded again (the path arrives decoded): "?" or "#" in it stays part of the path.
    return quote(path, safe="/-._~!$&'()*+,;=:@")


def switch_lang_url(request: Request, lang: str) -> str:
    other = "en" if lang == "de" else "de"
    # The decoded path of the scope: request.url.path is partly encoded again, and would be encoded twice.
    path: str = request.scope["path"] if request.method == "GET" else _get_page_of(request.url.path)
    return f"{same_origin_path(path)}?{urlencode({'lang': other})}"


class CompiledTemplates(BytecodeCache):
    """The process's compiled templates, shared by every environment ``make_templates`` builds.

    Each application has an environment of its own (its footer's legal links differ), and an environment
    compiles a template the first time it renders it: about 40 % of the CPU of a test module that builds
    an application per test went into Jinja's lexer, parser and code generator, compiling the same
    templates again. Jinja keys the code by the template's name and checks it against a hash of the
    source, so an edited template is compiled anew; every environment made here has the same settings,
    filters and tests, which is what compiled code depends on.
    """

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)  # discarded by Jinja when the source's hash differs

    def dump_bytecode(self, bucket: Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()


_COMPILED = CompiledTemplates()


def make_templates(legal: LegalLinks | None = None) -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(PROJECT_ROOT / "templates")),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
        bytecode_cache=_COMPILED,
    )
    env.globals["pick"] = pick
    env.globals["static_url"] = lambda name: f"/static/{name}"
    # Text a person wrote: isolated where it is shown, its invisible characters named for counsellors.
    env.filters["user_text"] = user_text
    env.filters["invisible_marks"] = invisible_marks
    # Every page's footer links the operator's Impressum and privacy notice (the demo: its placeholders).
    env.globals["legal"] = legal or LegalLinks(IMPRINT_PLACEHOLDER, PRIVACY_PLACEHOLDER, False, False)
    return env


class Pages:
    """Renders pages with the context every template expects (language, CSRF token, switch link)."""

    def __init__(self, env: Environment, csrf_key: bytes, behind_tls: bool) -> None:
        self.env = env
        self._csrf_key = csrf_key
        self.behind_tls = behind_tls

    def name(self, base: str) -> str:
        return f"__Host-{base}" if self.behind_tls else base

    def _csrf_binding(self, request: Request) -> str:
        """What the form token is bound to (service.csrf): the staff session, else the reporter
        session, else the signed-out CSRF cookie (made here when the browser has none yet). After a
        sign-out in this request, the sessions it ended no longer count."""
        if not getattr(request.state, "csrf_signed_out", False):
            for kind, base in (("staff", csrf.STAFF_COOKIE), ("reporter", csrf.REPORTER_COOKIE)):
                id_hash = session_cookie.id_hash_of(request.cookies.get(self.name(base)))
                if id_hash is not None:
                    return f"{kind}:{id_hash}"
        cookie: str | None = getattr(request.state, "new_csrf_cookie", None)
        cookie = cookie or request.cookies.get(self.name(csrf.COOKIE))
        if not cookie:
            cookie = request.state.new_csrf_cookie = csrf.new_cookie_value()
        return f"anon:{cookie}"

    def signed_out(self, request: Request) -> None:
        """This request ended the browser's session: a page it renders carries a token for a signed-out
        browser, under a CSRF cookie that is new as well (render sets it)."""
        request.state.csrf_signed_out = True
        request.state.new_csrf_cookie = csrf.new_cookie_value()

    def rotate_csrf(self, request: Request, response: Response) -> None:
        """A new signed-out CSRF cookie (at every sign-in and sign-out): a value planted or seen before the
        sign-in is worth nothing after it."""
        request.state.new_csrf_cookie = csrf.new_cookie_value()
        self.set_cookie(response, csrf.COOKIE, request.state.new_csrf_cookie, max_age=None)

    def render(self, request: Request, name: str, status: int = 200, **context: object) -> HTMLResponse:
        lang = request_lang(request)
        had_cookie = request.cookies.get(self.name(csrf.COOKIE))
        binding = self._csrf_binding(request)
        body = self.env.get_template(f"pages/{name}").render(
            t=Translator(lang),
            lang=lang,
            switch_lang_url=switch_lang_url(request, lang),
            csrf_token=csrf.token_for(self._csrf_key, binding),
            request_path=request.url.path,
            **context,
        )
        response = HTMLResponse(body, status_code=status)
        new_cookie = getattr(request.state, "new_csrf_cookie", None)
        if new_cookie and new_cookie != had_cookie:
            self.set_cookie(response, csrf.COOKIE, new_cookie, max_age=None)
        if request.query_params.get("lang") in SUPPORTED:
            self.set_cookie(response, LANG_COOKIE, lang, max_age=365 * 24 * 3600)
        return response

    def set_cookie(self, response: Response, name: str, value: str, max_age: int | None) -> None:
        response.set_cookie(
            self.name(name),
            value,
            max_age=max_age,
            httponly=True,
            samesite="strict",
            secure=self.behind_tls,
            path="/",
        )

    def delete_cookie(self, response: Response, name: str) -> None:
        # With the attributes it was set with: a browser ignores a __Host- cookie without Secure and Path=/.
        response.delete_cookie(
            self.name(name), path="/", httponly=True, samesite="strict", secure=self.behind_tls
        )

    def csrf_ok(self, request: Request, token: str | None) -> bool:
        return csrf.valid(self._csrf_key, self._csrf_binding(request), token)


# -- pages or the API --------------------------------------------------------------------------------------


def is_page(path: str) -> bool:
    return not path.startswith("/api/") and path != "/healthz"


def wants_html(request: Request) -> bool:
    return is_page(request.url.path)


def content_disposition(filename: str) -> str:
    """An attachment header that no file name can break out of (RFC 6266 / RFC 5987)."""
    ascii_name = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in filename)[:100]
    encoded = quote(filename[:200], safe="")
    return f"attachment; filename=\"{ascii_name or 'beweis'}\"; filename*=UTF-8''{encoded}"


def download(filename: str, content_type: str, size_bytes: int, chunks: Iterator[bytes]) -> StreamingResponse:
    """A decrypted file, streamed as it is decrypted; always a download, never rendered inline."""
    return StreamingResponse(
        chunks,
        media_type=content_type,
        headers={"content-disposition": content_disposition(filename), "content-length": str(size_bytes)},
    )
