"""Pasted threats with bidi and format characters (issue 15, "Pasted threats are refused").

Messaging apps put direction marks, isolates and zero-width characters around names. A threat pasted from a
chat is accepted as sent, sealed verbatim, given back byte for byte, and shown isolated so that it cannot
reorder the page around it ("Trojan Source"). Control characters that drive terminals stay refused, with a
message that keeps what was typed. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from typing import Any

import markupsafe
from fastapi.testclient import TestClient

from service.config import PROJECT_ROOT
from service.display import BIDI_CONTROLS, FSI, PDI, invisible_marks, plain_isolated
from service.identity.models import MembershipRole
from tests.support.forms import csrf_token, report_body, report_form_tokens
from tests.support.staff import MakeStaff

# As a messenger pastes it: a name in first-strong isolates with marks, a zero-width joiner in an emoji, a
# byte-order mark, and a right-to-left override that is never closed (the Trojan Source case).
THREAT = (
    "Nachricht von \u2068\u200eMax M.\u200f\u2069: Wir wissen, wo du wohnst \U0001f468\u200d\U0001f469 "
    "\ufeff\u2067שלום\u2069 \u202a\u202b\u202c Rechnung\u202efdp.exe und ein Zero\u200bwidth-Wort"
)
NAME = "\u2066Erika\u2069 \u200dM."


def receipt_from(html: str) -> str:
    match = re.search(r"[0-9A-HJKMNP-TV-Z]{4}(?:-[0-9A-HJKMNP-TV-Z]{4}){4}", re.sub(r"<[^>]+>", "", html))
    assert match
    return match.group(0)


def report_form(client: TestClient, **fields: str) -> Any:
    data = {
        **report_form_tokens(client.get("/melden").text),
        "land": "09",
        "type_codes": ["A3a"],
        "channel": "messenger",
        "urgency": "normal",
        "consent_counselling": "1",
        **fields,
    }
    return client.post("/melden", data=data, files=[("attachments", ("", b"", "application/octet-stream"))])


def isolated(text: str) -> str:
    return f'<bdi class="user-text" dir="auto">{markupsafe.escape(text)}</bdi>'


def outside_isolates(page: str) -> str:
    """The page with every isolated user text cut out: what the browser lays out around it."""
    return re.sub(r'<bdi class="user-text" dir="auto">.*?</bdi>', "", page, flags=re.S)


def test_a_pasted_threat_is_accepted_kept_byte_for_byte_and_shown_isolated(
    client: TestClient, make_staff: MakeStaff, login: Any
) -> None:
    """Given a threat pasted with RLO, LRI/RLI/FSI, ZWJ, LRM/RLM, BOM and an unclosed override, when it is
    sent with the form, then it is filed (201), the counsellor's decrypted case holds exactly these
    characters, and both the counsellor's page and /fall show it inside an isolate, the invisible characters
    named for the counsellor, and no bidi control anywhere outside an isolate."""
    filed = report_form(client, description=THREAT, municipality=NAME, contact_name=NAME)
    assert filed.status_code == 201, filed.text[:2000]
    receipt = receipt_from(filed.text)

    counsellor = login(make_staff(memberships=[("beratung-by", MembershipRole.counsellor)]))
    (summary,) = counsellor.get("/api/v1/cases").json()
    case = counsellor.get(f"/api/v1/cases/{summary['id']}").json()
    assert case["incidents"][0]["description"].encode() == THREAT.encode(), "sealed and opened verbatim"

    staff_page = counsellor.get(f"/intern/faelle/{summary['id']}").text
    assert isolated(THREAT) in staff_page
    assert isolated(NAME) in staff_page, "names the reporter typed are isolated too"
    assert "U+202E RIGHT-TO-LEFT OVERRIDE" in staff_page
    assert "U+200D ZERO WIDTH JOINER" in staff_page
    assert not BIDI_CONTROLS & set(outside_isolates(staff_page)), "nothing outside an isolate can reorder"

    token = csrf_token(client.get("/fall").text)
    client.post("/fall/anmelden", data={"csrf_token": token, "receipt": receipt})
    reporter_page = client.get("/fall").text
    assert isolated(THREAT) in reporter_page
    assert not BIDI_CONTROLS & set(outside_isolates(reporter_page))

    css = (PROJECT_ROOT / "service" / "static" / "app.css").read_text()
    assert ".user-text { unicode-bidi: isolate; }" in css


def test_messages_both_ways_are_isolated_and_kept(
    client: TestClient, make_staff: MakeStaff, login: Any
) -> None:
    receipt = client.post("/api/v1/reports", json=report_body(description="x")).json()["receipt"]
    counsellor = login(make_staff(memberships=[("beratung-by", MembershipRole.counsellor)]))
    case_id = counsellor.get("/api/v1/cases").json()[0]["id"]
    answer = "Wir haben \u202eden Text\u202c gelesen"
    assert counsellor.post(f"/api/v1/cases/{case_id}/messages", json={"body": answer}).status_code == 201
    token = csrf_token(client.get("/fall").text)
    client.post("/fall/anmelden", data={"csrf_token": token, "receipt": receipt})
    page = client.get("/fall").text
    reply = "Danke \u2067\u200fעברית"
    sent = client.post(
        "/fall/nachricht",
        data={"csrf_token": csrf_token(page), "message": reply},
        files=[("message_files", ("", b"", "application/octet-stream"))],
        follow_redirects=False,
    )
    assert sent.status_code == 303
    assert isolated(answer) in client.get("/fall").text
    staff_page = counsellor.get(f"/intern/faelle/{case_id}").text
    assert isolated(reply) in staff_page
    assert "U+2067 RIGHT-TO-LEFT ISOLATE" in staff_page
    bodies = [m["body"] for m in counsellor.get(f"/api/v1/cases/{case_id}").json()["messages"]]
    assert bodies == [answer, reply]


def test_terminal_control_characters_stay_refused_and_the_text_stays_in_the_field(client: TestClient) -> None:
    typed = "Drohung \x1b[31mrot\x1b[0m"
    refused = report_form(client, description=typed)
    assert refused.status_code == 422
    assert "technisches Steuerzeichen" in refused.text
    assert "Richtungs- und Formatzeichen aus Messengern sind erlaubt" in refused.text
    assert f">{markupsafe.escape(typed)}</textarea>" in refused.text, "what was typed is still there"


def test_plain_text_display_copies_are_isolated_line_by_line() -> None:
    """For plain-text outputs (mails carry no report content today): bidi controls leave the displayed
    copy, every line is isolated; the stored text is not touched."""
    text = "Rechnung\u202efdp.exe\n\u2066zweite\u2069 Zeile \u200d"
    shown = plain_isolated(text)
    assert shown == f"{FSI}Rechnungfdp.exe{PDI}\n{FSI}zweite Zeile \u200d{PDI}"
    assert invisible_marks(text) == [
        "U+202E RIGHT-TO-LEFT OVERRIDE",
        "U+2066 LEFT-TO-RIGHT ISOLATE",
        "U+2069 POP DIRECTIONAL ISOLATE",
        "U+200D ZERO WIDTH JOINER",
    ]
    assert invisible_marks("Gewöhnlicher Text") == []
