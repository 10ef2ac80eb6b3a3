"""A reporter's browser on /melden and /fall with evidence files: for the download and dossier tests.

Each reporter gets a client of their own (cookies are never shared); files go through the real multipart
form, so they are encrypted while they stream in, as in production.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import MetaData, select

from service.app import create_app
from service.cases.models import Case
from service.identity.models import MembershipRole
from service.runtime import Runtime
from tests.support.forms import csrf_token, report_form_tokens
from tests.support.staff import MakeStaff, Staff

PDF = b"%PDF-1.4\n% Screenshot des Drohkommentars\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"
# A text file longer than the sniff window and the 64 KiB stream chunk: the download crosses chunks.
TEXT = ("Chatverlauf vom 3. Dezember, 21:40 Uhr: „Wir wissen, wo du wohnst.“\n" * 1500).encode()
SHA_PDF = hashlib.sha256(PDF).hexdigest()
SHA_TEXT = hashlib.sha256(TEXT).hexdigest()
DESCRIPTION = "Drohbrief im Briefkasten des Rathauses: „Wir wissen, wo du wohnst.“"


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 12), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def receipt_from(html: str) -> str:
    text = re.sub(r"<[^>]+>", "", html)
    match = re.search(r"[0-9A-HJKMNP-TV-Z]{4}(?:-[0-9A-HJKMNP-TV-Z]{4}){4}", text)
    assert match, "the receipt page shows the code"
    return match.group(0)


class Browsers:
    """Fresh clients of one app, each with its own cookies."""

    def __init__(self, runtime: Runtime, stack: ExitStack) -> None:
        self._runtime = runtime
        self._stack = stack

    def new(self) -> TestClient:
        app = create_app(runtime=self._runtime)
        return self._stack.enter_context(TestClient(app, base_url="http://127.0.0.1"))


@contextmanager
def browsers(runtime: Runtime) -> Iterator[Browsers]:
    with ExitStack() as stack:
        yield Browsers(runtime, stack)


def file_report(
    client: TestClient,
    files: list[tuple[str, tuple[str, bytes, str]]],
    *,
    description: str = DESCRIPTION,
    type_codes: tuple[str, ...] = ("A3a", "A9"),
    occurred_on: str = "",
    channel: str = "letter",
    extra: dict[str, str] | None = None,
) -> str:
    """File a report through the HTML form with ``files`` (``extra``: further fields such as ``url``);
    returns the receipt."""
    fields: dict[str, object] = {
        **report_form_tokens(client.get("/melden").text),
        "land": "09",
        "district_ags": "09162",
        "type_codes": list(type_codes),
        "description": description,
        "channel": channel,
        "urgency": "normal",
        "consent_counselling": "1",
    }
    if occurred_on:
        fields["occurred_on"] = occurred_on
    fields.update(extra or {})
    response = client.post("/melden", data=fields, files=files)
    assert response.status_code == 201, response.text
    return receipt_from(response.text)


def sign_in(client: TestClient, receipt: str) -> str:
    """Sign the client in on /fall with the receipt; returns the case page."""
    token = csrf_token(client.get("/fall").text)
    response = client.post("/fall/anmelden", data={"csrf_token": token, "receipt": receipt})
    assert response.status_code == 200, response.text
    return response.text


def download_links(page: str) -> list[str]:
    return re.findall(r'<a href="(/fall/anhang/[^"]+)" download>', page)


def flat(text: str) -> str:
    """Extracted text with line breaks and runs of spaces made single spaces (a hash may not be broken)."""
    return re.sub(r"\s+", " ", text)


def every_stored_value(runtime: Runtime) -> list[str | bytes]:
    """Every cell of every table, as the database holds it: what a thief of a dump reads."""
    values: list[str | bytes] = []
    metadata = MetaData()
    metadata.reflect(bind=runtime.engine)
    with runtime.engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(table.select()):
                for cell in row:
                    if isinstance(cell, bytes | memoryview):
                        values.append(bytes(cell))
                    elif cell is not None:
                        values.append(str(cell))
    return values


def data_files(runtime: Runtime) -> set[Path]:
    """Files in the data folder but the SQLite database and its journals (the audit row changes them)."""
    root = runtime.settings.data_dir
    return {path for path in root.rglob("*") if path.is_file() and not path.name.startswith("rueckhalt.db")}


def assert_nothing_in_clear(runtime: Runtime, secrets: list[str]) -> None:
    for value in every_stored_value(runtime):
        for secret in secrets:
            if isinstance(value, bytes):
                assert secret.encode() not in value
                assert bytes.fromhex(secret) not in value if re.fullmatch(r"[0-9a-f]{64}", secret) else True
            else:
                assert secret not in value
    for path in data_files(runtime):
        content = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in content, path


def staff_browser(open_browser: Browsers, staff: Staff, code: Callable[[Staff], str]) -> TestClient:
    """A new client signed in as ``staff`` through the staff sign-in form."""
    client = open_browser.new()
    form = {
        "csrf_token": csrf_token(client.get("/anmelden").text),
        "email": staff.email,
        "password": staff.password,
        "code": code(staff),
    }
    assert client.post("/anmelden", data=form, follow_redirects=False).status_code == 303
    return client


def holder_on_case_page(
    runtime: Runtime, open_browser: Browsers, make_staff: MakeStaff, code: Callable[[Staff], str]
) -> tuple[Staff, TestClient, str, str]:
    """A counsellor of the organisation holding the only case, signed in: (staff, browser, case URL, page)."""
    with runtime.sessions() as db:
        case_id = db.scalars(select(Case.id)).one()
    holder = make_staff(memberships=[("beratung-by", MembershipRole.counsellor)])
    counsellor = staff_browser(open_browser, holder, code)
    url = f"/intern/faelle/{case_id}"
    return holder, counsellor, url, counsellor.get(url).text
