"""The municipal self-check (issue 21) and the printable plans (issue 19), on both databases.

- Answering, the evaluation, the printable pages and the PDFs store nothing: every row of every table and
  every byte under the data folder are the same before and after.
- Kept under a code, the answers open again with the code only; a wrong code answers 404 with one message,
  whether the code is unknown, mistyped or malformed; opening counts against a limit.
- An operator with the dump and every server secret reads no answer and cannot tell which row answered what.
- The coordinators' aggregate hides every number that fewer than five municipalities stand behind.
- The PDFs carry the answers, the recommendations, the steps and their owners (read back with pypdf).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape
from pypdf import PdfReader

from service.app import create_app
from service.config import Settings
from service.crypto import CryptoError, open_sealed
from service.crypto.keyed import hkdf_sha256
from service.crypto.selfcheck_code import _context
from service.knowledge.plan_limit import MAX_KEYS, MemoryWindowLimiter
from service.knowledge.selfcheck import ANSWERS, load_selfcheck, questions
from service.knowledge.selfcheck_dashboard import aggregate
from service.knowledge.selfcheck_store import Tallies
from service.runtime import Runtime
from tests.support.custody import dump_database
from tests.support.forms import csrf_token
from tests.support.stack import all_bytes_under
from tests.support.staff import MakeStaff, Staff

Browser = Callable[[Staff | None], TestClient]
CODE = re.compile(r"[0-9A-HJKMNP-TV-Z]{4}(?:-[0-9A-HJKMNP-TV-Z]{4}){4}")


def answer_all(pattern: tuple[str, ...] = ANSWERS) -> dict[str, str]:
    """An answer to every question, cycling through ``pattern``."""
    return {q.id: pattern[index % len(pattern)] for index, q in enumerate(questions())}


def form_of(answers: dict[str, str], **extra: str) -> dict[str, str]:
    return {**{f"a.{qid}": answer for qid, answer in answers.items()}, **extra}


def hidden_fields(html: str, form_action: str) -> dict[str, str]:
    """The hidden fields of the form posting to ``form_action`` (what a browser sends back of them)."""
    start = html.index(f'action="{form_action}')
    block = html[start : html.index("</form>", start)]
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', block))


@contextmanager
def nothing_stored(runtime: Runtime) -> Iterator[None]:
    """Every row of every table (rate-limit counters and audit included) and every file with its bytes
    under the data folder are exactly the same afterwards. SQLite's shared-memory index of its write-ahead log
    (``-shm``) is the one file left out: every reader marks it, the dump above included, and it holds no
    data (the database file and the log itself are compared byte for byte)."""

    def state() -> tuple[Any, dict[str, bytes]]:
        # The dump first: opening the database is what makes SQLite's log file appear.
        dump = dump_database(runtime.engine)
        files = {
            str(path): data
            for path, data in all_bytes_under(runtime.settings.data_dir)
            if not path.name.endswith("-shm")
        }
        return dump, files

    before = state()
    yield
    after = state()
    assert after[0] == before[0], "the database changed"
    assert after[1].keys() == before[1].keys(), "files appeared or went in the data folder"
    assert after[1] == before[1], "a file in the data folder changed"


def save_new(client: TestClient, answers: dict[str, str], note: str = "") -> str:
    page = client.post("/wissen/selbstcheck/auswertung", data=form_of(answers))
    assert page.status_code == 200
    fields = hidden_fields(page.text, "/wissen/selbstcheck/speichern")
    saved = client.post("/wissen/selbstcheck/speichern", data={**fields, "note": note})
    assert saved.status_code == 200, saved.text
    found = CODE.search(re.sub(r"<[^>]+>", "", saved.text))
    assert found, "the code is shown"
    return found.group(0)


def open_with(client: TestClient, code: str) -> Any:
    page = client.get("/wissen/selbstcheck/code")
    return client.post(
        "/wissen/selbstcheck/code", data={"csrf_token": csrf_token(page.text), "code": code, "action": "open"}
    )


# -- the questionnaire and its evaluation --------------------------------------------------------------------


def test_three_areas_every_question_linked_to_an_existing_article() -> None:
    areas = load_selfcheck()
    assert [area.id for area in areas] == ["integration", "vernetzung", "schutz"]
    slugs = {path.name.split(".")[0] for path in Path("service/knowledge/articles").glob("*.de.md")}
    for area in areas:
        assert len(area.questions) >= 5
        for q in area.questions:
            assert q.article in slugs, q.id
            assert q.text["de"]
            assert q.text["en"]
            assert q.recommendation["de"]
            assert q.recommendation["en"]
    ids = [q.id for q in questions()]
    assert len(ids) == len(set(ids))


def test_answering_and_evaluating_stores_nothing(browser: Browser, seeded: Runtime) -> None:
    visitor = browser(None)
    answers = answer_all()
    with nothing_stored(seeded):
        form = visitor.get("/wissen/selbstcheck/fragen")
        assert form.status_code == 200
        assert len(re.findall(r'name="a\.([a-z0-9-]+)" value="partly"', form.text)) == len(questions())
        assert 'method="post"' in form.text
        result = visitor.post(
            "/wissen/selbstcheck/auswertung", data=form_of(answers, **{"a.not-a-question": "no"})
        )
        assert result.status_code == 200
        english = visitor.post("/wissen/selbstcheck/auswertung?lang=en", data=form_of(answers))
        printed = visitor.post(
            "/wissen/selbstcheck/plan", data=form_of(answers, step1="Konzept", format="html")
        )
        pdf = visitor.post("/wissen/selbstcheck/plan", data=form_of(answers, step1="Konzept", format="pdf"))
    total = len(questions())
    assert f"Ergebnis: {total} von {total} Fragen beantwortet." in result.text
    gaps = sum(1 for answer in answers.values() if answer != "yes")
    assert f"Bei {gaps} Fragen gibt es etwas zu tun;" in result.text
    assert result.text.count("Mehr dazu: „") == gaps
    # Every "no" comes before every "partly" within an area, each with its recommendation and article.
    first = next(q for q in questions() if answers[q.id] == "no")
    assert first.recommendation["de"] in result.text
    assert f'href="/wissen/{first.article}"' in result.text
    assert "Evaluation of the self-check" in english.text
    assert str(escape(first.recommendation["en"])) in english.text
    assert printed.status_code == 200
    assert "Konzept" in printed.text
    assert pdf.headers["content-type"] == "application/pdf"


def test_a_partly_answer_gets_its_own_recommendation(browser: Browser) -> None:
    concept = next(q for q in questions() if q.partly)
    result = browser(None).post("/wissen/selbstcheck/auswertung", data=form_of({concept.id: "partly"}))
    assert concept.partly is not None
    assert concept.partly["de"] in result.text
    assert concept.recommendation["de"] not in result.text


# -- kept under a code ---------------------------------------------------------------------------------------


def test_kept_under_a_code_opens_again_and_shows_what_changed(browser: Browser, seeded: Runtime) -> None:
    visitor = browser(None)
    first = answer_all(("no",))
    code = save_new(visitor, first, note="Bürgermeisterin und Hauptamt")

    # Another browser, a year later: the code opens the questionnaire with the answers filled in.
    later = browser(None)
    opened = open_with(later, code.lower().replace("-", " "))
    assert opened.status_code == 200
    some = questions()[0]
    assert f'id="q-{some.id}-no" name="a.{some.id}" value="no" checked' in opened.text
    assert "Ihre Antwort im" in opened.text
    carried = hidden_fields(opened.text, "/wissen/selbstcheck/auswertung")
    assert carried["code"] == code
    assert carried[f"p.{some.id}"] == "no"

    # Two answers changed: the evaluation shows them beside the previous ones, "changed since <month>".
    second = dict(first)
    changed = [q.id for q in questions()[:2]]
    for qid in changed:
        second[qid] = "yes"
    result = later.post("/wissen/selbstcheck/auswertung", data={**form_of(second), **carried})
    assert re.search(r"Verändert seit (Januar|Februar|März|April|Mai|Juni|Juli|August|September|Oktober"
                     r"|November|Dezember) \d{4}", result.text)  # fmt: skip
    assert result.text.count("jetzt Ja, vorher Nein") == 2

    # Saved again under the same code (same month: the take is replaced, not added).
    fields = hidden_fields(result.text, "/wissen/selbstcheck/speichern")
    assert fields["code"] == code
    again = later.post("/wissen/selbstcheck/speichern", data={**fields, "note": ""})
    assert again.status_code == 200
    assert "Die neue Bestandsaufnahme ist unter Ihrem Code gespeichert" in again.text
    assert CODE.search(re.sub(r"<[^>]+>", "", again.text)) is None, "the code is not shown again"
    reopened = open_with(later, code)
    assert f'id="q-{changed[0]}-yes" name="a.{changed[0]}" value="yes" checked' in reopened.text

    with seeded.sessions() as db:
        tallies = seeded.selfchecks.tallies(db)
    assert tallies.saved == 1
    assert tallies.counts[changed[0]] == {"no": 0, "yes": 1}
    assert tallies.counts[questions()[5].id] == {"no": 1}


def test_a_wrong_code_is_a_404_that_reveals_nothing(browser: Browser, seeded: Runtime) -> None:
    visitor = browser(None)
    code = save_new(visitor, answer_all())
    wrong = code[:-1] + ("0" if code[-1] != "0" else "1")
    answers = [open_with(visitor, text) for text in (wrong, "ABCD", "ÄÖÜ-" * 5, "")]
    for answer in answers:
        assert answer.status_code == 404
        assert "Mit diesem Code lässt sich kein Selbstcheck öffnen." in answer.text
        assert 'aria-invalid="true"' in answer.text
    # The same page for an unknown, a mistyped and a malformed code (the form token aside).
    bodies = {re.sub(r'value="[0-9a-f]{64}"', "", a.text) for a in answers}
    assert len(bodies) == 1
    # Saving again or deleting under a wrong code: the same 404, nothing changed.
    before = dump_database(seeded.engine)["selfcheck_saved"]
    token = csrf_token(visitor.get("/wissen/selbstcheck/code").text)
    for path, chosen in (
        ("/wissen/selbstcheck/speichern", answer_all()),
        ("/wissen/selbstcheck/loeschen", {}),
    ):
        refused = visitor.post(path, data={"csrf_token": token, "code": wrong, **form_of(chosen)})
        assert refused.status_code == 404
        assert "Mit diesem Code lässt sich kein Selbstcheck öffnen." in refused.text
    assert dump_database(seeded.engine)["selfcheck_saved"] == before


def test_code_look_ups_are_limited_like_receipts(settings: Settings) -> None:
    limited = Settings(**{**settings.model_dump(), "receipt_limit_per_hour": 3})
    from service.runtime import build_runtime

    runtime = build_runtime(limited)
    try:
        with TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1") as client:
            statuses = [open_with(client, "0000-0000-0000-0000-0000").status_code for _ in range(5)]
    finally:
        runtime.dispose()
    assert statuses[:3] == [404, 404, 404]
    assert statuses[3:] == [429, 429]


def test_pdfs_are_bounded_per_client_in_memory_and_still_write_nothing(settings: Settings) -> None:
    """A PDF costs CPU, so a client gets as many per hour as receipt look-ups; the count lives in the
    process's memory, so refusing (and allowing) still writes nothing."""
    limited = Settings(**{**settings.model_dump(), "receipt_limit_per_hour": 2})
    from service.runtime import build_runtime

    runtime = build_runtime(limited)
    try:
        with (
            TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1") as client,
            nothing_stored(runtime),
        ):
            statuses = [
                client.post("/wissen/sicherheitsplan", data={"format": "pdf"}).status_code,
                client.post("/wissen/selbstcheck/plan", data={"format": "pdf"}).status_code,
                client.post("/wissen/selbstcheck/plan", data={"format": "pdf"}).status_code,
                client.post("/wissen/sicherheitsplan", data={"format": "html"}).status_code,
            ]
    finally:
        runtime.dispose()
    assert statuses == [200, 200, 429, 200]


def test_the_memory_window_forgets_old_hours_and_bounds_its_keys() -> None:
    limiter = MemoryWindowLimiter(per_hour=2)
    assert [limiter.allow("a", now=3600 * 10 + s) for s in (1, 2, 3)] == [True, True, False]
    assert limiter.allow("a", now=3600 * 11 + 1), "a new hour, a new allowance"
    for index in range(MAX_KEYS + 50):
        limiter.allow(f"client-{index}", now=3600 * 12)
    assert len(limiter._counts) <= MAX_KEYS + 1


def test_saving_needs_the_form_token_and_the_explicit_choice(browser: Browser, seeded: Runtime) -> None:
    visitor = browser(None)
    with nothing_stored(seeded):
        refused = visitor.post("/wissen/selbstcheck/speichern", data=form_of(answer_all()))
        token = csrf_token(visitor.get("/wissen/selbstcheck/code").text)
        empty = visitor.post("/wissen/selbstcheck/speichern", data={"csrf_token": token})
    assert refused.status_code == 403
    assert empty.status_code == 422
    assert "nichts aufzubewahren" in empty.text


def test_deleting_takes_the_answers_out_of_the_counts(browser: Browser, seeded: Runtime) -> None:
    visitor = browser(None)
    code = save_new(visitor, answer_all(("yes",)))
    confirm = visitor.post(
        "/wissen/selbstcheck/code",
        data={
            "csrf_token": csrf_token(visitor.get("/wissen/selbstcheck/code").text),
            "code": code,
            "action": "delete",
        },
    )
    assert confirm.status_code == 200
    fields = hidden_fields(confirm.text, "/wissen/selbstcheck/loeschen")
    deleted = visitor.post(
        "/wissen/selbstcheck/loeschen", data={**fields, "csrf_token": csrf_token(confirm.text)}
    )
    assert deleted.status_code == 200
    assert "Der Selbstcheck ist gelöscht." in deleted.text
    assert open_with(visitor, code).status_code == 404
    with seeded.sessions() as db:
        tallies = seeded.selfchecks.tallies(db)
    assert tallies.saved == 0
    assert all(count == 0 for answers in tallies.counts.values() for count in answers.values())


# -- the operator with the dump and every server secret ------------------------------------------------------


def test_the_operator_with_dump_and_secrets_reads_no_answer(browser: Browser, seeded: Runtime) -> None:
    """Two municipalities keep opposite answers. The operator holds every row and every server secret: no
    key they can make opens a row, no row holds an answer or the note in clear, and nothing in a row or in
    the counts tells which row answered what."""
    visitor = browser(None)
    note = "QZSELFCHECKNOTECANARY"
    codes = [save_new(visitor, answer_all(("yes",)), note=note), save_new(visitor, answer_all(("no",)))]
    dump = dump_database(seeded.engine)
    rows = dump["selfcheck_saved"]
    assert len(rows) == 2
    assert {tuple(row) for row in rows} == {("lookup_hash", "salt", "sealed")}, (
        "nothing beside the sealed row"
    )
    secrets = seeded.secrets
    held = [value for value in vars(secrets).values() if isinstance(value, bytes)]
    held += [p for p in getattr(secrets, "key_peppers", ()) if isinstance(p, bytes)]
    assert secrets.lookup_pepper in held
    everything = json.dumps(dump, default=lambda v: v.hex() if isinstance(v, bytes) else str(v)).encode()
    for row in rows:
        for secret in held:
            for key in (
                secret[:32].ljust(32, b"\0"),
                hkdf_sha256(secret, row["salt"], b"rueckhalt/selfcheck-key/v1"),
            ):
                with pytest.raises(CryptoError):
                    open_sealed(key, row["sealed"], _context(row["lookup_hash"]))
        assert note.encode() not in row["sealed"]
    for code in codes:
        assert code.encode() not in everything
        assert code.replace("-", "").encode() not in everything
    assert note.encode() not in everything
    for q in questions():
        for answer in ANSWERS:
            assert f'"{q.id}": "{answer}"'.encode() not in everything
    # The counts: one "yes" and one "no" for every question, no row id, no time.
    tally = dump["selfcheck_tally"]
    assert {tuple(sorted(row)) for row in tally} == {("answer", "count", "question_id")}
    assert {(row["question_id"], row["answer"]): row["count"] for row in tally} == {
        (q.id, answer): 1 for q in questions() for answer in ("yes", "no")
    }
    # Only the codes open them, each its own.
    with seeded.sessions() as db:
        assert seeded.selfchecks.open(db, codes[0]).takes[0].answers == answer_all(("yes",))
        assert seeded.selfchecks.open(db, codes[1]).takes[0].note == ""


# -- the coordinators' aggregate -----------------------------------------------------------------------------


def test_the_aggregate_hides_every_number_under_five() -> None:
    ids = [q.id for q in questions()]
    four = aggregate(Tallies(saved=4, counts={ids[0]: {"yes": 4}}), "de")
    assert four.saved == "< 5"
    assert four.areas == []

    counts = {
        ids[0]: {"yes": 6, "partly": 0, "no": 5},  # 11 answered of 11: shown
        ids[1]: {"yes": 7, "no": 4},  # a 4: the whole question is hidden
        ids[2]: {"yes": 9},  # two did not answer: hidden
        ids[3]: {"yes": 11},  # shown (0 for the others)
    }
    shown = aggregate(Tallies(saved=11, counts=counts), "de")
    assert shown.saved == "11"
    rows = {row.id: row for area in shown.areas for row in area.rows}
    assert [cell.text for cell in rows[ids[0]].cells] == ["6 (55 %)", "0", "5 (45 %)"]
    assert rows[ids[1]].hidden
    assert all(cell.text == "–" for cell in rows[ids[1]].cells)
    assert rows[ids[2]].hidden
    assert [cell.text for cell in rows[ids[3]].cells] == ["11 (100 %)", "0", "0"]
    # A question nobody answered: every count is 0 and the unanswered are 11: shown as zeros.
    assert [cell.text for cell in rows[ids[4]].cells] == ["0", "0", "0"]
    # No number from 1 to 4 appears anywhere.
    texts = [cell.text for row in rows.values() for cell in row.cells]
    assert not [text for text in texts if re.fullmatch(r"[1-4](?: \(.*\))?", text)]


def test_coordinators_see_the_aggregate_on_their_dashboard(
    browser: Browser, seeded: Runtime, make_staff: MakeStaff
) -> None:
    visitor = browser(None)
    for _ in range(4):
        save_new(visitor, answer_all(("yes",)))
    coordinator = browser(make_staff(coordinator=True))
    page = coordinator.get("/intern/statistik")
    assert page.status_code == 200
    assert "Selbstcheck der Kommunen" in page.text
    assert "weniger als fünf" in page.text
    save_new(visitor, answer_all(("yes",)))
    dashboard = coordinator.get("/intern/statistik").text
    first = questions()[0]
    assert "5 (100 %)" in dashboard
    assert first.text["de"] in dashboard


# -- the printable plans -------------------------------------------------------------------------------------


def outline_titles(items: list[Any]) -> list[str]:
    """Every bookmark's title, nested ones included (pypdf gives children as a list after their parent)."""
    return [t for item in items for t in (outline_titles(item) if isinstance(item, list) else [item.title])]


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def test_the_self_check_plan_pdf_holds_answers_recommendations_and_steps(
    browser: Browser, seeded: Runtime
) -> None:
    visitor = browser(None)
    answers = answer_all()
    steps = {
        "step1": "Integrationskonzept QZSTEPONE entwerfen",
        "owner1": "Frau QZOWNERONE",
        "step2": "Runden Tisch einladen",
        "owner2": "Hauptamt",
        "step3": "",
        "owner3": "",
    }
    with nothing_stored(seeded):
        response = visitor.post("/wissen/selbstcheck/plan", data=form_of(answers, format="pdf", **steps))
        page = visitor.post("/wissen/selbstcheck/plan", data=form_of(answers, format="html", **steps))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert "attachment" in response.headers["content-disposition"]
    text = re.sub(r"\s+", " ", pdf_text(response.content))
    for value in steps.values():
        assert value in text
    assert "Selbstcheck: Ergebnis und nächste Schritte" in text
    no = next(q for q in questions() if answers[q.id] == "no")
    assert re.sub(r"\s+", " ", no.recommendation["de"])[:60] in text
    assert "jetzt" not in text  # no previous take
    assert "Integrationskonzept und Strukturen" in text
    # The title, the language and the headings as bookmarks (docs/pdf-accessibility.md).
    reader = PdfReader(io.BytesIO(response.content))
    assert reader.metadata is not None
    assert reader.metadata.title == "Selbstcheck: Ergebnis und nächste Schritte"
    root: Any = reader.trailer["/Root"]
    assert root["/Lang"] == "de-DE"
    assert "Integrationskonzept und Strukturen" in outline_titles(reader.outline)
    assert "QZSTEPONE" in page.text
    assert 'class="plan"' in page.text


def test_the_safety_plan_is_built_from_the_answers_and_stored_nowhere(
    browser: Browser, seeded: Runtime
) -> None:
    visitor = browser(None)
    form = visitor.get("/wissen/sicherheitsplan")
    assert form.status_code == 200
    data = {
        "a.adresse-oeffentlich": "yes",
        "a.zwei-faktor-an": "no",
        "a.kinder-im-haushalt": "no",
        "f.vertrauensperson": "QZTRUSTEDCANARY 0170",
        "f.naechste-sitzung": "Donnerstag, Ratssaal",
    }
    with nothing_stored(seeded):
        pdf = visitor.post("/wissen/sicherheitsplan", data={**data, "format": "pdf"})
        page = visitor.post("/wissen/sicherheitsplan", data={**data, "format": "html"})
        english = visitor.post("/wissen/sicherheitsplan?lang=en", data={**data, "format": "pdf"})
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    text = re.sub(r"\s+", " ", pdf_text(pdf.content))
    assert "Mein Sicherheitsplan" in text
    assert "QZTRUSTEDCANARY 0170" in text
    assert "Donnerstag, Ratssaal" in text
    assert "Auskunftssperre" in text  # the address is public
    assert "Zwei-Faktor-Anmeldung" in text  # two-factor is off
    assert "Kita oder Schule" not in text  # no children
    assert "https://www.gesetze-im-internet.de/bmg/__51.html" in text
    assert "110" in text
    assert "QZTRUSTEDCANARY" in page.text
    assert "/wissen/auskunftssperre" in page.text
    assert "My safety plan" in pdf_text(english.content)


def test_typed_text_is_set_as_text_in_the_pdf(browser: Browser) -> None:
    typed = "<b>fett</b> \u202eabc ü"
    response = browser(None).post(
        "/wissen/selbstcheck/plan", data=form_of({}, format="pdf", step1=typed, owner1="x")
    )
    text = pdf_text(response.content)
    assert "<b>fett</b>" in text
    assert "\u202e" not in text
