"""UI strings: both languages complete, every key a page uses exists, fallbacks behave.

A missing key does not crash a page (it shows the key), so only these tests notice it before a reporter does.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace

import pytest

from service import i18n
from service.cases.models import CaseStatus, GrantRole
from service.cases.pages import _NOTICES as CASE_PAGE_NOTICES
from service.cases.service import LABELS, OUTCOMES
from service.i18n import SUPPORTED, Translator, format_date, format_datetime, load_catalogue, pick, translate
from service.knowledge.support import FIELDS as SUPPORT_FIELDS
from service.knowledge.support import SupportKind
from service.knowledge.support_pages import _NOTICES as SUPPORT_NOTICES
from service.reports.pages import CASE_NOTICES
from service.routing.engine import ReasonKind

ROOT = Path(__file__).resolve().parent.parent
PAGES = ROOT / "templates" / "pages"
I18N = ROOT / "templates" / "i18n"

# t("key") or t('key'), with or without keyword arguments after it.
T_CALL = re.compile(r"""\bt\(\s*(["'])([^"']+)\1""")
# Any t( whose first argument is not a string literal: its key could not be checked here.
T_DYNAMIC = re.compile(r"""\bt\(\s*(?!["'])""")
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

# Keys the server code looks up itself (errors, validation, deadlines, statuses, notices).
SERVER_KEYS = [
    *(
        f"error.{name}.{part}"
        for name in ("not_found", "server", "too_large", "rate_limited", "no_recipient", "csrf")
        for part in ("title", "message")
    ),
    "validation.required",
    "validation.invalid_code",
    "validation.invalid",
    "validation.too_long",
    "validation.date_future",
    "validation.district_land",
    "validation.email",
    "validation.control_chars",
    "validation.attachment_type",
    "validation.attachment_size",
    "validation.attachment_count",
    "validation.attachment_broken",
    "upload.file_n",
    "login.invalid",
    "deadline.minutes",
    "deadline.hours",
    "deadline.days",
    *(
        f"status.{name}"
        for name in ("new", "acknowledged", "in_progress", "referred", "waiting_for_reporter", "closed")
    ),
    "notice.incident_added",
    "notice.signed_out",
    # Counsellor pages (service/cases/pages.py) turn codes into labels; a missing one would show the code.
    *(f"case_status.{status.value}" for status in CaseStatus),
    *(f"urgency.{code}" for code in ("acute", "high", "normal")),
    *(f"outcome.{code}" for code in OUTCOMES),
    *(f"case_label.{code}" for code in LABELS),
    *(f"grant_role.{role.value}" for role in GrantRole),
    *(f"routing_reason.{kind.value}" for kind in ReasonKind),
    # The leads' pages (service/organisations/pages.py) translate notices and the codes of refusals; an
    # unknown code falls back to organisation.error.account, which says less.
    *(f"organisation.notice.{name}" for name in ("granted", "revoked")),
    *(
        f"organisation.error.{code}"
        for code in (
            "account",
            "unknown_account",
            "no_own_password",
            "staff_role",
            "disabled",
            "role",
            "incomplete_keys",
            "custodians",
            "custodian_name",
            "custodian_twice",
            "threshold",
            "has_key",
            "no_key",
        )
    ),
    *(
        f"history.{action}"
        for action in (
            "case.decrypt",
            "case.acknowledge",
            "case.assign",
            "case.status",
            "case.labels",
            "case.message",
            "case.note",
            "case.reclassify",
            "case.refer",
            "case.transfer",
            "attachment.download",
        )
    ),
    *(
        f"duration.{kind}.{unit}"
        for kind in ("left", "overdue", "after")
        for unit in ("minutes", "hours", "days")
    ),
    *(key for key, _section in CASE_PAGE_NOTICES.values()),
    *CASE_NOTICES.values(),
    *(
        f"case_page.field.{name}"
        for name in ("message", "note", "status", "outcome", "labels", "assign", "form")
    ),
    "case_page.error.outcome_required",
    "case_page.history.someone",
    "case_page.conversation.reporter",
    "case_page.holders.waiting",
    "case_page.holders.not_needed",
    "case_page.holders.inactive",
    "case.messages.from_me",
    *(f"complaint.{name}" for name in ("days", "days_one", "today", "past")),
    *(
        f"inbox.filter.{name}"
        for name in ("type_group", "status_open", "status_all", "any", "assignee_any", "assignee_me")
    ),
    # The support directory's pages (service/knowledge/support_pages.py) name kinds, states, notices and
    # the fields of their errors by key.
    *(f"support.kind.{kind.value}" for kind in SupportKind),
    *(f"support.status.{name}" for name in ("published", "awaiting", "retired", "due")),
    *(f"support.notice.{name}" for name in SUPPORT_NOTICES),
    *(f"support.field.{name}" for name in (*SUPPORT_FIELDS, "action")),
    *(f"support.error.{name}" for name in ("length", "https", "choice")),
    "support.land.bund",
]

# Every form field name; the server names fields in error summaries with field.<name>.
FORM_FIELDS = [
    "type_codes",
    "type_other",
    "description",
    "occurred_on",
    "channel",
    "place",
    "platform",
    "url",
    "land",
    "district_ags",
    "municipality",
    "targets",
    "office",
    "perpetrator_familiarity",
    "perpetrator_residence",
    "perpetrator_number",
    "perpetrator_details",
    "urgency",
    "support_needs",
    "consent_counselling",
    "consent_police",
    "contact_name",
    "contact_email",
    "contact_phone",
    "attachments",
    "receipt",
    "message",
    "csrf_token",
]


@functools.cache
def catalogues() -> dict[str, dict[str, str]]:
    # Read once per process: a test per server-side key would otherwise parse both files again each time.
    return {lang: load_catalogue(I18N / f"{lang}.yaml") for lang in SUPPORTED}


def template_files() -> list[Path]:
    files = sorted(PAGES.glob("*.html"))
    assert files, f"no templates found in {PAGES}"
    return files


def used_keys() -> set[str]:
    return {match.group(2) for path in template_files() for match in T_CALL.finditer(path.read_text())}


def test_both_languages_have_exactly_the_same_keys() -> None:
    cats = catalogues()
    assert set(cats["de"]) - set(cats["en"]) == set(), "missing in en.yaml"
    assert set(cats["en"]) - set(cats["de"]) == set(), "missing in de.yaml"


def test_every_key_used_in_a_template_exists_in_both_languages() -> None:
    keys = used_keys()
    assert len(keys) > 50, "the t(...) pattern found suspiciously few keys"
    for lang, cat in catalogues().items():
        assert sorted(keys - set(cat)) == [], f"keys used in templates/pages but missing in {lang}.yaml"


def test_templates_call_t_with_literal_keys_only() -> None:
    # A computed key (t("status." ~ x)) would slip past the check above.
    for path in template_files():
        assert T_DYNAMIC.findall(path.read_text()) == [], f"{path.name} calls t() with a computed key"


@pytest.mark.parametrize("key", SERVER_KEYS + [f"field.{name}" for name in FORM_FIELDS])
def test_keys_the_server_uses_exist(key: str) -> None:
    for lang, cat in catalogues().items():
        assert cat.get(key, "").strip(), f"{key} missing or empty in {lang}.yaml"


def test_placeholders_agree_between_languages() -> None:
    cats = catalogues()
    for key, german in cats["de"].items():
        english = cats["en"].get(key, "")
        assert set(PLACEHOLDER.findall(german)) == set(PLACEHOLDER.findall(english)), key


def test_no_empty_strings() -> None:
    for lang, cat in catalogues().items():
        assert [key for key, text in cat.items() if not text.strip()] == [], lang


def test_templates_have_no_inline_script_or_style() -> None:
    # The CSP has no 'unsafe-inline': inline code or styles would silently not work.
    forbidden = re.compile(r"<script|<style|\sstyle\s*=|\son[a-z]+\s*=|javascript:", re.IGNORECASE)
    for path in template_files():
        assert forbidden.findall(path.read_text()) == [], path.name


def test_translate_fills_placeholders() -> None:
    assert translate("de", "deadline.hours", n=24) == "innerhalb von 24 Stunden"
    assert translate("en", "deadline.hours", n=24) == "within 24 hours"


def test_a_placeholder_without_value_stays_visible_and_attributes_are_not_reachable() -> None:
    assert translate("de", "deadline.hours") == "innerhalb von {n} Stunden"
    assert "{n}" in translate("de", "deadline.hours", other=1)


def test_unknown_language_falls_back_to_german() -> None:
    assert translate("fr", "form.title") == translate("de", "form.title")
    assert Translator("xx").lang == "de"


def test_unknown_key_falls_back_to_the_key() -> None:
    assert translate("en", "no.such.key") == "no.such.key"
    assert Translator("en")("no.such.key") == "no.such.key"


def test_missing_english_falls_back_to_german(monkeypatch: pytest.MonkeyPatch) -> None:
    fake: dict[str, Mapping[str, str]] = {"de": {"only.de": "Nur {x}"}, "en": {}}
    monkeypatch.setattr(i18n, "catalogue", lambda lang: fake[lang])
    assert translate("en", "only.de", x="Deutsch") == "Nur Deutsch"


def test_translator_is_bound_to_its_language() -> None:
    assert Translator("de")("form.submit") == "Bericht verschlüsselt absenden"
    assert Translator("en")("form.submit") != Translator("de")("form.submit")


def test_pick_takes_mappings_and_label_objects() -> None:
    label = {"de": "Beleidigung", "en": "Insult"}
    assert pick(label, "en") == "Insult"
    assert pick(label, "de") == "Beleidigung"
    assert pick(label, "fr") == "Beleidigung"
    assert pick({"de": "Nur Deutsch"}, "en") == "Nur Deutsch"
    assert pick(None, "de") == ""
    assert pick(SimpleNamespace(de="Telefon", en="Phone"), "en") == "Phone"
    assert pick(SimpleNamespace(de="Telefon", en=""), "en") == "Telefon"


def test_catalogue_refuses_nested_or_non_string_values(tmp_path: Path) -> None:
    path = tmp_path / "xx.yaml"
    path.write_text("a:\n  b: nested\n")
    with pytest.raises(i18n.CatalogueError):
        load_catalogue(path)
    path.write_text("a: 1\n")
    with pytest.raises(i18n.CatalogueError):
        load_catalogue(path)


def test_dates_and_times_are_shown_in_german_time_and_format() -> None:
    # 23:30 UTC on 1 March is already 2 March in Germany (CET, UTC+1); in July Germany is UTC+2.
    assert format_date("2026-03-01T23:30:00+00:00", "de") == "02.03.2026"
    assert format_date("2026-03-01", "de") == "01.03.2026"
    assert format_date("2026-03-01", "en") == "2026-03-01"
    assert format_datetime("2026-07-01T10:00:00+00:00", "de") == "01.07.2026, 12:00"
    assert format_datetime("2026-07-01T10:00:00+00:00", "en") == "2026-07-01 12:00"
