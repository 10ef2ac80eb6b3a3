"""The reporter's HTML pages: CSRF, nothing lost on a bad field, the receipt page, the way back in."""

from __future__ import annotations

import io
import re

from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select

from service.app import create_app
from service.cases.models import Case, Incident
from service.config import Settings
from service.crypto import Context, normalize_receipt, open_stream, unwrap_for_reporter
from service.evidence.models import Attachment
from service.runtime import Runtime, build_runtime
from tests.support.forms import csrf_token, report_body, submission_token
from tests.support.staff import with_policy_organisations


def receipt_from(html: str) -> str:
    text = re.sub(r"<[^>]+>", "", html)
    match = re.search(r"[0-9A-HJKMNP-TV-Z]{4}(?:-[0-9A-HJKMNP-TV-Z]{4}){4}", text)
    assert match, "the receipt page shows the code"
    return match.group(0)


def base_fields(client: TestClient) -> dict[str, object]:
    form = client.get("/melden").text
    return report_body(
        csrf_token=csrf_token(form),
        submission_token=submission_token(form),
        district_ags="09162",
        type_codes=["A3a", "A9"],
        description="Drohbrief im Briefkasten des Rathauses.",
        channel="letter",
        urgency="normal",
        consent_counselling="1",
    )


def cases(runtime: Runtime) -> int:
    with runtime.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Case)) or 0)


def test_form_page_in_german_and_english(client: TestClient) -> None:
    german = client.get("/melden")
    assert german.status_code == 200
    assert '<html lang="de"' in german.text
    assert 'name="description"' in german.text
    english = client.get("/melden?lang=en")
    assert '<html lang="en"' in english.text
    # The choice sticks for the next page.
    assert '<html lang="en"' in client.get("/").text


def test_form_files_a_report_and_shows_the_receipt(client: TestClient, runtime: Runtime) -> None:
    response = client.post("/melden", data=base_fields(client))
    assert response.status_code == 201, response.text
    receipt = receipt_from(response.text)
    assert cases(runtime) == 1
    assert client.post("/api/v1/reports/lookup", json={"receipt": receipt}).status_code == 200
    assert "no-store" in response.headers["cache-control"]


def test_missing_csrf_token_is_refused_and_the_input_comes_back(client: TestClient, runtime: Runtime) -> None:
    fields = base_fields(client)
    fields["csrf_token"] = "0" * 64
    response = client.post("/melden", data=fields)
    assert response.status_code == 403
    assert "Drohbrief im Briefkasten des Rathauses." in response.text
    assert cases(runtime) == 0


def test_a_bad_field_keeps_every_value_and_names_the_field(client: TestClient, runtime: Runtime) -> None:
    fields = base_fields(client)
    fields["type_codes"] = []
    fields["place"] = "Marktplatz 1"
    response = client.post("/melden", data=fields)
    assert response.status_code == 422
    assert 'href="#field-type_codes"' in response.text
    assert "Drohbrief im Briefkasten des Rathauses." in response.text
    assert "Marktplatz 1" in response.text
    assert cases(runtime) == 0


def jpeg_with_gps() -> bytes:
    image = Image.new("RGB", (64, 48), (200, 30, 30))
    exif = Image.Exif()
    exif[0x010F] = "CanaryCam"  # Make
    gps = {1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 36.0)}
    exif[0x8825] = gps
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif.tobytes())
    data = out.getvalue()
    assert b"CanaryCam" in data
    return data


def test_image_metadata_is_removed_before_encryption(client: TestClient, runtime: Runtime) -> None:
    files = [("attachments", ("../../etc/passwd.jpg", jpeg_with_gps(), "image/jpeg"))]
    response = client.post("/melden", data=base_fields(client), files=files)
    assert response.status_code == 201, response.text
    receipt = receipt_from(response.text)
    with runtime.sessions() as session:
        case = session.scalars(select(Case)).one()
        attachment = session.scalars(select(Attachment)).one()
    assert attachment.content_type == "image/jpeg"
    assert "passwd" not in attachment.blob_name
    key = unwrap_for_reporter(
        case.reporter_wrapped_key,
        normalize_receipt(receipt),
        case.reporter_salt,
        Context("reporter_key", case_id=case.id),
    )
    with runtime.blobs.open(attachment.blob_name) as blob:
        plain = b"".join(
            open_stream(key, Context("attachment", case_id=case.id, record_id=attachment.id), blob)
        )
    assert b"CanaryCam" not in plain
    with Image.open(io.BytesIO(plain)) as cleaned:
        assert cleaned.size == (64, 48)
        assert not cleaned.getexif()


def test_a_file_of_the_wrong_type_is_refused_with_a_clear_message(
    client: TestClient, runtime: Runtime
) -> None:
    files = [
        (
            "attachments",
            ("innocent.pdf", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00" + b"\x00" * 100, "application/pdf"),
        )
    ]
    response = client.post("/melden", data=base_fields(client), files=files)
    assert response.status_code == 422
    assert 'href="#field-attachments"' in response.text
    assert cases(runtime) == 0
    blob_files = (
        [p for p in runtime.settings.blob_dir.rglob("*") if p.is_file()]
        if runtime.settings.blob_dir.exists()
        else []
    )
    assert blob_files == [], "a refused request leaves no blob behind"


def test_a_broken_image_is_refused(client: TestClient, runtime: Runtime) -> None:
    files = [("attachments", ("photo.jpg", b"\xff\xd8\xff\xe0" + b"garbage" * 100, "image/jpeg"))]
    response = client.post("/melden", data=base_fields(client), files=files)
    assert response.status_code == 422
    assert cases(runtime) == 0


def test_reporter_signs_in_sees_the_case_and_adds_an_incident(client: TestClient, runtime: Runtime) -> None:
    receipt = receipt_from(client.post("/melden", data=base_fields(client)).text)
    login_page = client.get("/fall")
    assert 'name="receipt"' in login_page.text

    signed_in = client.post(
        "/fall/anmelden", data={"csrf_token": csrf_token(login_page.text), "receipt": receipt.lower()}
    )
    assert signed_in.status_code == 200
    assert "Drohbrief im Briefkasten des Rathauses." in signed_in.text

    added = client.post(
        "/fall/vorfall",
        data={
            "csrf_token": csrf_token(signed_in.text),
            "submission_token": submission_token(signed_in.text),
            "type_codes": ["A11"],
            "description": "Wieder standen Leute vor meinem Haus.",
            "channel": "in_person.home",
            "urgency": "high",
        },
        files=[("attachments", ("notiz.txt", b"Uhrzeit 21:40", "text/plain"))],
    )
    assert added.status_code == 200, added.text
    assert "Wieder standen Leute vor meinem Haus." in added.text
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Incident)) == 2
        assert session.scalar(select(func.count()).select_from(Attachment)) == 1

    case_page = client.get("/fall")
    # Without the form's token the sign-out is refused and the session lives on (CSRF: security.md).
    refused = client.post("/fall/abmelden")
    assert refused.status_code == 403
    assert "Wieder standen" in client.get("/fall").text

    out = client.post("/fall/abmelden", data={"csrf_token": csrf_token(case_page.text)})
    assert out.status_code == 200
    assert "Wieder standen" not in client.get("/fall").text


def test_a_wrong_receipt_gets_one_message(client: TestClient) -> None:
    page = client.get("/fall")
    response = client.post("/fall/anmelden", data={"csrf_token": csrf_token(page.text), "receipt": "ABCD"})
    assert response.status_code == 404
    assert 'name="receipt"' in response.text


def test_a_forged_session_cookie_opens_nothing(client: TestClient) -> None:
    client.cookies.set("rh_reporter", "AAAA.BBBB")
    response = client.get("/fall")
    assert 'name="receipt"' in response.text


def test_unknown_page_is_a_friendly_404(client: TestClient) -> None:
    response = client.get("/nothing-here")
    assert response.status_code == 404
    assert "<html" in response.text


def test_a_bad_further_incident_keeps_the_text_and_adds_nothing(client: TestClient, runtime: Runtime) -> None:
    receipt = receipt_from(client.post("/melden", data=base_fields(client)).text)
    page = client.get("/fall")
    signed_in = client.post("/fall/anmelden", data={"csrf_token": csrf_token(page.text), "receipt": receipt})

    response = client.post(
        "/fall/vorfall",
        data={
            "csrf_token": csrf_token(signed_in.text),
            "submission_token": submission_token(signed_in.text),
            "type_codes": ["NOPE"],
            "description": "Dieser Text bleibt erhalten.",
            "channel": "email",
        },
    )

    assert response.status_code == 422
    assert "Dieser Text bleibt erhalten." in response.text
    assert 'href="#field-type_codes"' in response.text
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Incident)) == 1


def test_a_further_incident_without_a_session_goes_to_sign_in(client: TestClient, runtime: Runtime) -> None:
    response = client.post("/fall/vorfall", data={"description": "x"}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/fall"


def test_an_oversized_attachment_is_refused_and_leaves_no_blob(settings: Settings) -> None:
    small = settings.model_copy(update={"max_attachment_bytes": 10_000, "max_image_bytes": 5_000})
    runtime = build_runtime(small)
    with_policy_organisations(runtime)
    try:
        with TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1") as client:
            files = [("attachments", ("log.txt", b"Zeile\n" * 5_000, "text/plain"))]
            response = client.post("/melden", data=base_fields(client), files=files)
        assert response.status_code == 422
        assert 'href="#field-attachments"' in response.text
        assert cases(runtime) == 0
        blobs = [p for p in small.blob_dir.rglob("*") if p.is_file()] if small.blob_dir.exists() else []
        assert blobs == []
    finally:
        runtime.dispose()


def test_too_many_attachments_are_refused(client: TestClient, runtime: Runtime) -> None:
    limit = runtime.settings.max_attachments_per_report
    files = [("attachments", (f"n{i}.txt", b"note", "text/plain")) for i in range(limit + 1)]
    response = client.post("/melden", data=base_fields(client), files=files)
    assert response.status_code == 422
    assert cases(runtime) == 0


def test_a_form_over_the_size_limit_gets_a_page_in_german_and_stores_nothing(settings: Settings) -> None:
    """Given a Content-Length over the limit on the report form, the reporter gets the 413 as a page in
    their language (not a line of JSON), and no case is stored; the API keeps its JSON answer."""
    runtime = with_policy_organisations(
        build_runtime(settings.model_copy(update={"max_upload_body_bytes": 4096}))
    )
    try:
        with TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1") as client:
            fields = base_fields(client)
            big = ("attachments", ("video.txt", b"x" * 20_000, "text/plain"))
            response = client.post("/melden", data=fields, files=[big])
            assert response.status_code == 413
            assert response.headers["content-type"].startswith("text/html")
            assert "Zu große Datenmenge" in response.text
            english = client.post("/melden?lang=en", data=fields, files=[big])
            assert english.status_code == 413
            assert 'lang="en"' in english.text
            api = client.post(
                "/api/v1/reports",
                content=b"{" + b" " * 300_000 + b"}",
                headers={"content-type": "application/json"},
            )
            assert api.status_code == 413
            assert api.headers["content-type"].startswith("application/json")
        with runtime.sessions() as db:
            assert db.scalar(select(func.count()).select_from(Case)) == 0
    finally:
        runtime.dispose()
