"""The database-dump canary over the whole running product.

The product runs as in production, in processes of its own: `rueckhalt up` (api, Celery worker, beat) on
PostgreSQL and Redis (broker and rate limits), mail into the Maildir of its data folder. Every free-text,
contact, note, message and attachment field — from the report form, the JSON API, the reporter's follow-up
and the counsellor's side — carries a unique marker. The service must show each marker to those who may
see it, and then none may appear in a `pg_dump`, in a dump of Redis (`redis-cli --rdb`) or its
append-only files, anywhere in the data folder (blobs, mail, secrets) or in any line the processes logged.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.knowledge.selfcheck import ANSWERS, questions
from tests.support.browser import Authenticator
from tests.support.forms import REPORT_TEXT_FIELDS, csrf_token, submission_token
from tests.support.notification import RedisProcess
from tests.support.stack import PgCluster, all_bytes_under, free_port, pg_dump

ROOT = Path(__file__).resolve().parent.parent.parent
RECEIPT = re.compile(r"[0-9A-HJKMNP-TV-Z]{4}(?:-[0-9A-HJKMNP-TV-Z]{4}){4}")
BAYERN = "Beratungsstelle Rückhalt Bayern (Demo)"


def markers(prefix: str) -> dict[str, str]:
    values = {field: f"QZ{prefix}{index:02d}CANARY" for index, field in enumerate(REPORT_TEXT_FIELDS)}
    values["contact_email"] = f"qz{prefix.lower()}mail@canary.example"
    return values


NOTIFY = "qznotifycanary@canary.example"
# Perpetrator identifiers for the matching (docs/matching.md), given on the form with consent: sealed in the
# case and stored as keyed tokens. The markers survive normalisation (E.164 digits, the plate without
# separators, the handle without @), so neither the typed nor the normalised form may be at rest.
IDENTIFIER_FIELDS = {
    "match_name": "QZNAMEIDCANARY Person",
    "match_handle": "@QZHANDLEIDCANARY",
    "match_platform": "instagram",
    "match_phone": "0171 7315843",
    "match_email": "qzmailidcanary@canary.example",
    "match_plate": "QZ-CY 4712",
    "consent_matching": "1",
}
# Sixteen hex digits or more in a row: ciphertext as a dump writes bytea, keyed tokens, ids without dashes.
_LONG_HEX = re.compile(rb"[0-9a-fA-F]{16,}")

IDENTIFIER_MARKERS = (
    "QZNAMEIDCANARY",
    "QZHANDLEIDCANARY",
    "7315843",
    "qzmailidcanary",
    "QZCY4712",
    "QZ-CY 4712",
)
# The self-check kept under a code (its note), and what the printable plans are made from (never stored).
SELFCHECK = {
    "note": "QZSELFCHECKNOTECANARY",
    "step": "QZSELFCHECKSTEPCANARY",
    "owner": "QZSELFCHECKOWNERCANARY",
    "safety": "QZSAFETYPLANCANARY",
}
CASEWORK = {
    "message": "QZMESSAGECANARY",
    "note": "QZNOTECANARY",
    "staff_file": "QZSTAFFFILECANARY",
    "staff_filename": "QZSTAFFNAMECANARY",
    "reply": "QZREPLYCANARY",
    "reply_file": "QZREPLYFILECANARY",
    "reply_filename": "QZREPLYNAMECANARY",
    "evidence": "QZEVIDENCECANARY",
    "evidence_filename": "QZEVIDENCENAMECANARY",
}


# Typed on the letter forms (service/dossier/letters.py) by the reporter and by the counsellor: each goes into
# the letter that is sent back and must come to rest nowhere.
LETTER_KINDS = ("strafanzeige", "auskunftssperre", "plattform", "strafantrag_dienst", "hausverbot")


def letter_markers(who: str) -> dict[str, str]:
    return {
        "letter_name": f"QZ{who}LETTERNAMECANARY",
        "letter_address": f"QZ{who}LETTERSTREETCANARY 1\n99999 QZ{who}LETTERTOWNCANARY",
        "letter_reference": f"QZ{who}LETTERREFCANARY",
        "letter_recipient": f"QZ{who}LETTERTOCANARY",
        "letter_household": f"QZ{who}LETTERHOUSEHOLDCANARY, 01.02.2003",
        "letter_email": f"qz{who.lower()}lettermail@canary.example",
        "letter_urls": f"https://canary.example/QZ{who}LETTERURLCANARY",
        "letter_explanation": f"QZ{who}LETTERWHYCANARY",
        "letter_official": f"QZ{who}LETTEROFFICIALCANARY",
        "letter_premises": f"QZ{who}LETTERPREMISESCANARY",
    }


def every_letter(client: httpx.Client, page: str, action: str, typed: dict[str, str]) -> None:
    """Each letter once, PDF and text in turn; the text ones show what was typed for them."""
    for number, kind in enumerate(LETTER_KINDS):
        token = csrf_token(client.get(page).text)
        fmt = "txt" if number % 2 == 0 else "pdf"
        made = client.post(action, data={"csrf_token": token, "kind": kind, "format": fmt, **typed})
        assert made.status_code == 200, made.text
        if fmt == "txt":
            assert typed["letter_name"] in made.text


@dataclass
class Product:
    url: str
    data_dir: Path
    database_url: str
    redis: RedisProcess
    redis_dir: Path
    log: Path


@pytest.fixture
def product(pg_cluster: PgCluster, tmp_path: Path) -> Iterator[Product]:
    name = f"rh_canary_{os.getpid()}"
    with pg_cluster.admin() as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE rh_template")
    redis_dir = tmp_path / "redis"
    redis_dir.mkdir()
    redis = RedisProcess(redis_dir, free_port())
    redis.start()
    data_dir = tmp_path / "data"
    log = tmp_path / "processes.log"
    port = free_port()
    database_url = pg_cluster.url(name)
    env = {
        **os.environ,
        "RUECKHALT_DATA_DIR": str(data_dir),
        "RUECKHALT_DATABASE_URL": database_url,
        "RUECKHALT_REDIS_URL": f"redis://127.0.0.1:{redis.port}/0",
        "RUECKHALT_BROKER_URL": f"redis://127.0.0.1:{redis.port}/1",
        "RUECKHALT_DEMO": "true",
    }
    cli = [sys.executable, "-m", "service.cli"]
    server: subprocess.Popen[bytes] | None = None
    with log.open("wb") as out:
        try:
            for step in ("migrate", "demo"):
                subprocess.run([*cli, step], env=env, cwd=ROOT, check=True, stdout=out, stderr=out)
            server = subprocess.Popen(
                [*cli, "up", "--port", str(port)], env=env, cwd=ROOT, stdout=out, stderr=out
            )
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
            else:
                raise RuntimeError("the product did not become healthy:\n" + log.read_text(errors="replace"))
            yield Product(base, data_dir, database_url, redis, redis_dir, log)
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=30)
            redis.stop()


def wait_for_mail_to(maildir: Path, address: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for _path, data in all_bytes_under(maildir) if maildir.exists() else []:
            if address.encode() in data:
                return
        time.sleep(0.25)
    raise AssertionError(f"no mail to {address} within {seconds} s")


def test_no_marker_in_any_dump_file_or_log(product: Product) -> None:
    api, web, follow = markers("API"), markers("WEB"), markers("FUP")
    reporter = httpx.Client(base_url=product.url, timeout=30)

    # The report form, with evidence and the notification address.
    form = reporter.get("/melden").text
    fields = {
        "csrf_token": csrf_token(form),
        "submission_token": submission_token(form),
        "land": "09",
        "type_codes": ["A1"],
        "channel": "email",
        "notify_email": NOTIFY,
        **web,
        **IDENTIFIER_FIELDS,
    }
    evidence = (f"{CASEWORK['evidence_filename']}.txt", CASEWORK["evidence"].encode() * 40, "text/plain")
    filed = reporter.post("/melden", data=fields, files=[("attachments", evidence)])
    assert filed.status_code == 201, filed.text
    found = RECEIPT.search(re.sub(r"<[^>]+>", "", filed.text))
    assert found
    receipt = found.group(0)

    # The JSON API and a further incident on the same case.
    created = reporter.post(
        "/api/v1/reports", json={"land": "09", "type_codes": ["X1"], "channel": "email", **api}
    )
    assert created.status_code == 201, created.text
    further = {
        "receipt": receipt,
        "type_codes": ["A1"],
        "channel": "email",
        **{k: follow[k] for k in ("description", "place", "perpetrator_details")},
    }
    assert reporter.post("/api/v1/reports/incidents", json=further).status_code == 201

    # The counsellor of Bayern answers with a message, a file and a note.
    account = next(
        a for a in _demo_credentials(product) if a["role"] == "counsellor" and BAYERN in a["organisations"]
    )
    phone = Authenticator(account["totp_secret"])
    staff = httpx.Client(base_url=product.url, timeout=30)
    signed_in = staff.post(
        "/api/v1/session",
        json={"email": account["email"], "password": account["password"], "totp": phone.code()},
    )
    assert signed_in.status_code == 200, signed_in.text
    staff.headers["X-CSRF-Token"] = signed_in.json()["csrf_token"]
    cases = staff.get("/api/v1/cases").json()
    case_id = next(c["id"] for c in cases if _holds(staff, c["id"], web["description"]))
    assert staff.post(f"/api/v1/cases/{case_id}/notes", json={"body": CASEWORK["note"]}).status_code == 201
    page = staff.get(f"/intern/faelle/{case_id}").text
    staff_file = (f"{CASEWORK['staff_filename']}.txt", CASEWORK["staff_file"].encode() * 40, "text/plain")
    sent = staff.post(
        f"/intern/faelle/{case_id}/nachricht",
        data={"csrf_token": csrf_token(page), "message": CASEWORK["message"]},
        files=[("message_files", staff_file)],
        follow_redirects=False,
    )
    assert sent.status_code == 303, sent.text

    # The reporter signs in on the pages, reads the answer and replies with a file.
    signed = reporter.post(
        "/fall/anmelden", data={"csrf_token": csrf_token(reporter.get("/fall").text), "receipt": receipt}
    )
    assert signed.status_code in (200, 303), signed.text
    case_page = reporter.get("/fall").text
    assert CASEWORK["message"] in case_page
    reply_file = (f"{CASEWORK['reply_filename']}.txt", CASEWORK["reply_file"].encode() * 40, "text/plain")
    replied = reporter.post(
        "/fall/nachricht",
        data={"csrf_token": csrf_token(case_page), "message": CASEWORK["reply"]},
        files=[("message_files", reply_file)],
        follow_redirects=False,
    )
    assert replied.status_code == 303, replied.text

    # Both write every letter from the case, with names, addresses and the household typed on the page.
    reporter_letters, staff_letters = letter_markers("REP"), letter_markers("STF")
    every_letter(reporter, "/fall", "/fall/brief", reporter_letters)
    every_letter(staff, f"/intern/faelle/{case_id}", f"/intern/faelle/{case_id}/brief", staff_letters)

    # Those who may see the content do see it: the counsellor reads everything in the clear.
    case = staff.get(f"/api/v1/cases/{case_id}").json()
    text = str(case)
    for value in (*web.values(), *(follow[k] for k in ("description", "place", "perpetrator_details"))):
        assert value in text
    assert {CASEWORK["message"], CASEWORK["reply"]} <= {m["body"] for m in case["messages"]}
    assert CASEWORK["note"] in text
    # The identifiers as the reporter typed them, for the holders of the case.
    for value in ("QZNAMEIDCANARY Person", "@QZHANDLEIDCANARY", "0171 7315843", "QZ-CY 4712"):
        assert value in text
    downloads = b"".join(
        staff.get(f"/api/v1/cases/{case_id}/attachments/{a['id']}").content for a in case["attachments"]
    )
    for content in ("evidence", "staff_file", "reply_file"):
        assert CASEWORK[content].encode() in downloads

    # The reporter was told of the counsellor's message (content-free) at the notification address.
    wait_for_mail_to(product.data_dir / "maildir", NOTIFY)
    reporter.close()
    staff.close()

    # A municipality keeps its self-check under a code, opens it again, and prints both plans.
    selfcheck_code, selfcheck_answers = _selfcheck(product)

    # Now every place where data comes to rest, with the processes' logs.
    rdb = product.redis_dir / "canary.rdb"
    subprocess.run(
        [_redis_cli(), "-p", str(product.redis.port), "--rdb", str(rdb)], check=True, capture_output=True
    )
    places: list[tuple[str, bytes]] = [
        ("pg_dump", pg_dump(product.database_url)),
        *((str(path), data) for path, data in all_bytes_under(product.redis_dir)),
    ]
    # The dump holds what Redis held: rate-limit windows and the broker's bindings (so it is worth searching).
    dump = rdb.read_bytes()
    assert b"rl:" in dump
    assert b"_kombu" in dump
    for path, data in all_bytes_under(product.data_dir):
        if "maildir" in path.parts:
            # The reporter's own address is where the notice goes: allowed in the To header, nowhere else.
            data = re.sub(rb"(?m)^To: .*$", b"To: (recipient)", data)
        places.append((str(path), data))
    assert any("blobs" in path for path, _ in places), "the blob folder is searched"
    assert any("maildir" in path for path, _ in places), "the mail folder is searched"
    places.append(("process logs", product.log.read_bytes()))
    everything = [
        *api.values(),
        *web.values(),
        *(follow[k] for k in ("description", "place", "perpetrator_details")),
        *CASEWORK.values(),
        NOTIFY,
        receipt,
        *SELFCHECK.values(),
        selfcheck_code,
        selfcheck_code.replace("-", ""),
        # The sealed answers as the service writes them (the coordinators' counts hold no such pair).
        *(f'"{qid}": "{answer}"' for qid, answer in selfcheck_answers.items()),
        *(
            part
            for typed in (reporter_letters, staff_letters)
            for value in typed.values()
            for part in value.split("\n")
        ),
        *IDENTIFIER_MARKERS,
    ]
    # A marker of digits only (the phone number) is also a string of hex digits: inside a ciphertext's or a
    # keyed token's hex (a dump writes bytea as hex; ids and tokens are hex) seven of them turn up by chance
    # in one dump of a hundred (it happened). Such runs are searched without their long hex runs for those
    # markers; a phone number as stored in the clear (at most 15 digits, E.164) is never such a run.
    unhexed = {where: _LONG_HEX.sub(b"#", data) for where, data in places}
    hits = [
        (marker, where)
        for marker in everything
        for where, data in places
        for searched in ([unhexed[where]] if marker.isdigit() else [data])
        if marker.encode() in searched or marker.lower().encode() in searched.lower()
    ]
    assert hits == []


def _selfcheck(product: Product) -> tuple[str, dict[str, str]]:
    """Answer, keep under a code with a note, open with the code (the note and the answers come back), and
    make the printable plans (steps, owners, the safety plan's lines): the note and the answers live sealed,
    the rest nowhere."""
    client = httpx.Client(base_url=product.url, timeout=30)
    answers = {q.id: ANSWERS[index % 3] for index, q in enumerate(questions())}
    fields = {f"a.{qid}": answer for qid, answer in answers.items()}
    result = client.post("/wissen/selbstcheck/auswertung", data=fields)
    assert result.status_code == 200, result.text
    saved = client.post(
        "/wissen/selbstcheck/speichern",
        data={**fields, "csrf_token": csrf_token(result.text), "note": SELFCHECK["note"]},
    )
    assert saved.status_code == 200, saved.text
    found = RECEIPT.search(re.sub(r"<[^>]+>", "", saved.text))
    assert found
    code = found.group(0)
    page = client.get("/wissen/selbstcheck/code")
    opened = client.post(
        "/wissen/selbstcheck/code", data={"csrf_token": csrf_token(page.text), "code": code, "action": "open"}
    )
    assert SELFCHECK["note"] in opened.text
    first = questions()[0].id
    assert f'name="a.{first}" value="{answers[first]}" checked' in opened.text
    plan = client.post(
        "/wissen/selbstcheck/plan",
        data={**fields, "step1": SELFCHECK["step"], "owner1": SELFCHECK["owner"], "format": "pdf"},
    )
    assert plan.status_code == 200
    safety = client.post(
        "/wissen/sicherheitsplan", data={"f.vertrauensperson": SELFCHECK["safety"], "format": "html"}
    )
    assert SELFCHECK["safety"] in safety.text
    client.close()
    return code, answers


def _demo_credentials(product: Product) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads((product.data_dir / "demo-credentials.json").read_text())
    return data


def _holds(staff: httpx.Client, case_id: str, marker: str) -> bool:
    return marker in staff.get(f"/api/v1/cases/{case_id}").text


def _redis_cli() -> str:
    binary = shutil.which("redis-cli")
    if binary is None:
        raise RuntimeError("redis-cli is missing: `make test` installs redis-server, which brings it")
    return binary
