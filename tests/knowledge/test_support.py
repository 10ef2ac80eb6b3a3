"""The support directory (Empowerment): every entry shows its source and the day it was checked; the public
page filters by Land without JavaScript; coordinators create, edit, review and retire entries (audited), a
second coordinator publishes a new one, bad input changes nothing, and entries past review are flagged and
mailed."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from service.audit.models import AuditEvent
from service.db import utcnow
from service.identity.models import MembershipRole
from service.knowledge.models import SupportEntry
from service.knowledge.seed import seed_articles
from service.knowledge.support import NATIONWIDE, SupportKind, seed_support, shipped_entries
from service.notifications.mail import render
from service.notifications.recipients import Directory, Member, recipients
from service.outbox.models import OutboxMessage
from service.runtime import Runtime
from tests.support.forms import csrf_token
from tests.support.staff import MakeStaff, Staff

Browser = Callable[[Staff | None], TestClient]

NEW_ENTRY = {
    "land": "09",
    "kind": "training",
    "name": "Werkstatt Dialog Bayern (Test)",
    "description_de": "Workshops für Ratsmitglieder zu schwierigen Bürgerversammlungen.",
    "description_en": "Workshops for council members on difficult citizens' assemblies.",
    "url": "https://example.org/werkstatt",
    "source": "Beispielverband: Programm 2026",
    "source_url": "https://example.org/programm",
}


@pytest.fixture
def seeded(runtime: Runtime) -> Runtime:
    with runtime.sessions() as db:
        seed_articles(db)
        seed_support(db, runtime.support)
        db.commit()
    return runtime


def _entries(page: str) -> list[str]:
    """Each entry of the public page as its text."""
    return [
        html.unescape(re.sub(r"<[^>]+>", " ", block))
        for block in re.findall(r'<li class="support-entry">(.*?)</li>', page, re.S)
    ]


def _count(runtime: Runtime) -> int:
    with runtime.sessions() as db:
        return db.scalar(select(func.count()).select_from(SupportEntry)) or 0


def test_every_shipped_entry_names_its_source_and_date_and_the_page_shows_both(
    browser: Browser, seeded: Runtime
) -> None:
    shipped = shipped_entries()
    assert len(shipped) >= 12
    assert {seed.values.land for seed in shipped} >= {NATIONWIDE, "09", "11"}
    assert {seed.values.kind for seed in shipped} == {kind.value for kind in SupportKind}
    for seed in shipped:
        assert seed.values.source.strip(), seed.key
        assert not seed.values.source_url or seed.values.source_url.startswith("https://"), seed.key
        assert seed.checked.isoformat() >= "2026-01-01", seed.key
    with seeded.sessions() as db:
        assert seed_support(db, seeded.support) == 0, "a second start adds nothing"
    for lang, checked in (("de", "geprüft am"), ("en", "checked on")):
        page = browser(None).get(f"/wissen/unterstuetzung?lang={lang}").text
        shown = _entries(page)
        assert len(shown) == len(shipped)
        for text in shown:
            assert ("Quelle:" if lang == "de" else "Source:") in text, text
            assert re.search(rf"{checked}: 20\d\d-\d\d-\d\d", text), text


def test_the_page_filters_by_land_with_the_nationwide_entries(browser: Browser) -> None:
    visitor = browser(None)
    everything = _entries(visitor.get("/wissen/unterstuetzung").text)
    bavaria = visitor.get("/wissen/unterstuetzung", params={"land": "09"})
    assert bavaria.status_code == 200
    shown = _entries(bavaria.text)
    assert any("RIAS Bayern" in text for text in shown)
    assert any("Stark im Amt" in text for text in shown), "nationwide offers help in every Land"
    assert not any("Berlin (MBR)" in text for text in shown)
    assert len(shown) < len(everything)
    assert '<option value="09" selected>' in bavaria.text
    nationwide = _entries(visitor.get("/wissen/unterstuetzung", params={"land": "bund"}).text)
    assert nationwide
    assert not any("RIAS Bayern" in text for text in nationwide)
    english = visitor.get("/wissen/unterstuetzung", params={"land": "11", "lang": "en"}).text
    assert "entries for Berlin and nationwide" in english
    assert "Has advised civil society" in english

    # A Land that is not in the list: said so, in both languages, and the whole directory is shown.
    refused = browser(None).get("/wissen/unterstuetzung", params={"land": "99"})
    assert refused.status_code == 422
    assert "Bitte wählen Sie einen Eintrag aus der Liste." in refused.text
    assert len(_entries(refused.text)) == len(everything)
    refused_en = visitor.get("/wissen/unterstuetzung", params={"land": "<script>", "lang": "en"})
    assert "Please choose an entry from the list." in refused_en.text
    assert "<script>" not in refused_en.text


def test_a_coordinator_adds_an_entry_that_a_second_coordinator_publishes(
    browser: Browser, seeded: Runtime, make_staff: MakeStaff
) -> None:
    author = browser(make_staff(coordinator=True))
    form = author.get("/intern/unterstuetzung/neu")
    assert form.status_code == 200
    created = author.post(
        "/intern/unterstuetzung/neu",
        data={**NEW_ENTRY, "csrf_token": csrf_token(form.text)},
        follow_redirects=False,
    )
    assert created.status_code == 303
    entry_page = created.headers["location"].split("?")[0]
    assert re.fullmatch(r"/intern/unterstuetzung/[0-9a-f-]{36}", entry_page)
    visitor = browser(None)
    assert "Werkstatt Dialog Bayern" not in visitor.get("/wissen/unterstuetzung").text
    own = author.get(entry_page).text
    assert "wartet auf Prüfung" in own
    assert f'action="{entry_page}/pruefen"' not in own
    refused = author.post(
        f"{entry_page}/pruefen", data={"csrf_token": csrf_token(own)}, follow_redirects=False
    )
    assert refused.headers["location"].endswith("?notice=own")
    assert "Werkstatt Dialog Bayern" not in visitor.get("/wissen/unterstuetzung").text

    second = browser(make_staff(coordinator=True))
    page = second.get(entry_page).text
    assert "Geprüft: veröffentlichen" in page
    done = second.post(f"{entry_page}/pruefen", data={"csrf_token": csrf_token(page)}, follow_redirects=False)
    assert done.headers["location"] == f"{entry_page}?notice=published"
    shown = _entries(visitor.get("/wissen/unterstuetzung", params={"land": "09"}).text)
    ours = next(text for text in shown if "Werkstatt Dialog Bayern" in text)
    assert "Beispielverband: Programm 2026" in ours
    assert f"geprüft am: {utcnow().date().isoformat()}" in ours
    with seeded.sessions() as db:
        actions = db.scalars(
            select(AuditEvent.action).where(AuditEvent.action.like("support.%")).order_by(AuditEvent.seq)
        ).all()
        assert list(actions) == ["support.create", "support.publish"]


def test_edit_retire_and_restore_are_audited_and_change_the_public_page(
    browser: Browser, seeded: Runtime, make_staff: MakeStaff
) -> None:
    coordinator = browser(make_staff(coordinator=True))
    listing = coordinator.get("/intern/unterstuetzung")
    assert listing.status_code == 200
    with seeded.sessions() as db:
        entry = db.scalars(select(SupportEntry).where(SupportEntry.seed_key == "mbr-berlin")).one()
    page_url = f"/intern/unterstuetzung/{entry.id}"
    assert page_url in listing.text
    form = coordinator.get(page_url).text
    values = {
        name: html.unescape(m.group(1))
        for name in ("name", "url", "source", "source_url")
        if (m := re.search(rf'name="{name}" value="([^"]*)"', form))
    }
    data = {
        **values,
        "land": "11",
        "kind": "mobile_counselling",
        "description_de": "Berät in Berlin Politik und Verwaltung (geändert).",
        "description_en": "Advises politics and administration in Berlin (changed).",
        "csrf_token": csrf_token(form),
    }
    saved = coordinator.post(page_url, data=data, follow_redirects=False)
    assert saved.status_code == 303
    assert "(geändert)" in browser(None).get("/wissen/unterstuetzung?land=11").text

    retired = coordinator.post(
        f"{page_url}/zurueckziehen", data={"csrf_token": csrf_token(form), "action": "retire"}
    )
    assert "zurückgezogen" in retired.text
    assert "(geändert)" not in browser(None).get("/wissen/unterstuetzung?land=11").text
    assert "zurückgezogen" in coordinator.get("/intern/unterstuetzung").text
    coordinator.post(f"{page_url}/zurueckziehen", data={"csrf_token": csrf_token(form), "action": "restore"})
    assert "(geändert)" in browser(None).get("/wissen/unterstuetzung?land=11").text
    with seeded.sessions() as db:
        events = db.execute(
            select(AuditEvent.action, AuditEvent.object_id, AuditEvent.details)
            .where(AuditEvent.action.like("support.%"))
            .order_by(AuditEvent.seq)
        ).all()
        assert [e.action for e in events] == ["support.edit", "support.retire", "support.restore"]
        assert {e.object_id for e in events} == {entry.id}
        assert events[0].details["changed"] == "description_de,description_en"
        assert seed_support(db, seeded.support) == 0, "the seed never brings back an edited entry"


@pytest.mark.parametrize("lang", ["de", "en"])
def test_bad_input_is_refused_with_clear_errors_and_changes_nothing(
    browser: Browser, seeded: Runtime, make_staff: MakeStaff, lang: str
) -> None:
    coordinator = browser(make_staff(coordinator=True))
    with seeded.sessions() as db:
        entry = db.scalars(select(SupportEntry).where(SupportEntry.seed_key == "vbrg")).one()
        before = (entry.name, entry.source, entry.reviewed_at)
        audit_before = db.scalar(select(func.count()).select_from(AuditEvent))
    count = _count(seeded)
    bad = {
        "land": "17",
        "kind": "hotline",
        "name": "",
        "description_de": "x" * 1001,
        "description_en": "",
        "url": "http://example.org",
        "source": " ",
        "source_url": "javascript:alert(1)",
    }
    new_form = coordinator.get(f"/intern/unterstuetzung/neu?lang={lang}").text
    refused = coordinator.post(
        f"/intern/unterstuetzung/neu?lang={lang}", data={**bad, "csrf_token": csrf_token(new_form)}
    )
    assert refused.status_code == 422
    expected = {
        "de": [
            "Land: Bitte wählen Sie",
            "Art: Bitte wählen Sie",
            "Name: Bitte 1 bis 200 Zeichen.",
            "Beschreibung (Deutsch): Bitte 1 bis 1000 Zeichen.",
            "Website: Bitte eine vollständige Adresse",
            "Quelle: Bitte 1 bis 500 Zeichen.",
            "Adresse der Quelle: Bitte eine vollständige Adresse",
        ],
        "en": [
            "Land: Please choose",
            "Kind: Please choose",
            "Name: Please enter 1 to 200 characters.",
            "Description (English): Please enter 1 to 1000 characters.",
            "Website: Please enter a full address",
            "Source: Please enter 1 to 500 characters.",
            "Address of the source: Please enter a full address",
        ],
    }[lang]
    text = html.unescape(refused.text)
    for message in expected:
        assert message in text, message
    assert 'href="#field-source_url"' in refused.text
    edit_form = coordinator.get(f"/intern/unterstuetzung/{entry.id}?lang={lang}").text
    refused_edit = coordinator.post(
        f"/intern/unterstuetzung/{entry.id}?lang={lang}", data={**bad, "csrf_token": csrf_token(edit_form)}
    )
    assert refused_edit.status_code == 422
    forged = coordinator.post(
        f"/intern/unterstuetzung/{entry.id}", data={**NEW_ENTRY, "csrf_token": "0" * 64}
    )
    assert forged.status_code == 403
    unknown_action = coordinator.post(
        f"/intern/unterstuetzung/{entry.id}/zurueckziehen",
        data={"csrf_token": csrf_token(edit_form), "action": "delete"},
    )
    assert unknown_action.status_code == 422
    assert _count(seeded) == count
    with seeded.sessions() as db:
        entry = db.scalars(select(SupportEntry).where(SupportEntry.seed_key == "vbrg")).one()
        assert (entry.name, entry.source, entry.reviewed_at) == before
        assert entry.retired_at is None
        assert db.scalar(select(func.count()).select_from(AuditEvent)) == audit_before


def test_only_coordinators_reach_the_staff_pages(
    browser: Browser, seeded: Runtime, make_staff: MakeStaff
) -> None:
    with seeded.sessions() as db:
        entry_id = db.scalars(select(SupportEntry.id).limit(1)).one()
    signed_out = browser(None).get("/intern/unterstuetzung", follow_redirects=False)
    assert signed_out.status_code == 303
    assert signed_out.headers["location"].startswith("/anmelden")
    for staff in (
        make_staff(memberships=[("beratung-by", MembershipRole.counsellor)]),
        make_staff(memberships=[("beratung-by", MembershipRole.lead)]),
        make_staff(admin=True),
    ):
        other = browser(staff)
        for path in (
            "/intern/unterstuetzung",
            "/intern/unterstuetzung/neu",
            f"/intern/unterstuetzung/{entry_id}",
        ):
            assert other.get(path).status_code == 404, path
    coordinator = browser(make_staff(coordinator=True))
    assert coordinator.get("/intern/unterstuetzung/00000000-0000-0000-0000-000000000000").status_code == 404


def test_entries_past_review_are_flagged_and_in_the_coordinators_reminder(
    browser: Browser, seeded: Runtime, make_staff: MakeStaff
) -> None:
    now = utcnow()
    with seeded.sessions() as db:
        assert seeded.support.due_for_review(db, now) == []
        db.execute(
            update(SupportEntry)
            .where(SupportEntry.seed_key == "rias-bayern")
            .values(reviewed_at=now - timedelta(days=366))
        )
        db.commit()
        due = seeded.support.due_for_review(db, now)
        assert due == ["Recherche- und Informationsstelle Antisemitismus Bayern (RIAS Bayern) (09)"]
        assert seeded.knowledge.remind_review(db, now, entries=due) == due
        row = db.scalars(
            select(OutboxMessage).where(OutboxMessage.topic == "notifications.knowledge_review_due")
        ).one()
        chosen = recipients(row.topic, row.payload, Directory(coordinators=(Member("c1", "k@example.org"),)))
        assert chosen[0].context["entries"] == due
        assert chosen[0].context["articles"] == []
        subject, body = render(chosen[0].template, {**chosen[0].context, "link": "https://x.example/wissen"})
        assert "0 Artikel und 1 Einträge" in subject
        assert "- Recherche- und Informationsstelle Antisemitismus Bayern (RIAS Bayern) (09)" in body
    coordinator = browser(make_staff(coordinator=True))
    listing = coordinator.get("/intern/unterstuetzung").text
    assert "1 Einträge wurden seit mehr als einem Jahr nicht geprüft." in listing
    assert "Prüfung fällig" in listing
    # Checked again: no longer due.
    with seeded.sessions() as db:
        entry_id = db.scalars(select(SupportEntry.id).where(SupportEntry.seed_key == "rias-bayern")).one()
    page = coordinator.get(f"/intern/unterstuetzung/{entry_id}").text
    assert "Prüfung fällig" in page
    coordinator.post(f"/intern/unterstuetzung/{entry_id}/pruefen", data={"csrf_token": csrf_token(page)})
    with seeded.sessions() as db:
        assert seeded.support.due_for_review(db, utcnow()) == []
