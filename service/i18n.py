"""UI strings in German (first) and English (second).

The strings live in ``templates/i18n/<lang>.yaml`` as flat dotted keys, so translators edit data, not code.
A missing English string falls back to German and a missing German string to the key itself: a page always
renders, and a visible key in the UI is easier to spot and fix than a crash in front of a threatened reporter.

Placeholders are ``{name}``. They are substituted by a plain pattern, not ``str.format``, so a translation
can never reach attributes of the values passed in, and a placeholder without a value stays visible instead
of raising.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Final, Protocol
from zoneinfo import ZoneInfo

from service.yaml_load import safe_load

SUPPORTED: Final = ("de", "en")
DEFAULT_LANG: Final = "de"
I18N_DIR: Final = Path(__file__).resolve().parent.parent / "templates" / "i18n"

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

# The people who use the service work in Germany: times are shown in German time, whatever zone the server
# runs in (containers usually run in UTC, and "14:05" must mean the same to the counsellor and the reporter).
LOCAL_ZONE: Final = ZoneInfo("Europe/Berlin")


def service_today() -> date:
    """Today in the service's calendar (Europe/Berlin), whatever the machine's zone: on a server in UTC,
    ``date.today()`` is still yesterday between midnight and one (two in summer) in Germany, and a mayor
    reporting at half past midnight what happened that evening was told the date lay in the future."""
    return datetime.now(LOCAL_ZONE).date()


class Bilingual(Protocol):
    """A taxonomy label object with a German and an English text (``service.taxonomy.Label``)."""

    @property
    def de(self) -> str: ...

    @property
    def en(self) -> str: ...


class CatalogueError(ValueError):
    """A translation file is not a flat mapping of string keys to string values."""


def normalise_lang(lang: str | None) -> str:
    """The language to use for ``lang``: itself if supported, German otherwise."""
    return lang if lang in SUPPORTED else DEFAULT_LANG


def load_catalogue(path: Path) -> dict[str, str]:
    """Read one YAML file of flat dotted keys; refuse anything else rather than guess."""
    data = safe_load(path.read_text(encoding="utf-8"))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CatalogueError(f"{path.name}: expected a mapping of keys to strings")
    catalogue: dict[str, str] = {}
    for key, value in data.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise CatalogueError(f"{path.name}: key {key!r} must be a string with a string value")
        catalogue[key] = value
    return catalogue


@lru_cache(maxsize=len(SUPPORTED))
def catalogue(lang: str) -> Mapping[str, str]:
    """The strings of a supported language, read once per process."""
    if lang not in SUPPORTED:
        raise KeyError(lang)
    return load_catalogue(I18N_DIR / f"{lang}.yaml")


def _substitute(text: str, values: Mapping[str, object]) -> str:
    if not values:
        return text

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        return str(values[name]) if name in values else match.group(0)

    return _PLACEHOLDER.sub(replace, text)


def translate(lang: str, key: str, **kwargs: object) -> str:
    """The string for ``key`` in ``lang``, else in German, else the key itself; placeholders filled."""
    text = catalogue(normalise_lang(lang)).get(key)
    if text is None:
        text = catalogue(DEFAULT_LANG).get(key, key)
    return _substitute(text, kwargs)


class Translator:
    """``translate`` bound to one language; templates receive it as ``t``: ``t("form.title")``."""

    __slots__ = ("lang",)

    def __init__(self, lang: str) -> None:
        self.lang = normalise_lang(lang)

    def __call__(self, key: str, **kwargs: object) -> str:
        return translate(self.lang, key, **kwargs)

    def __repr__(self) -> str:
        return f"Translator({self.lang!r})"


def pick(label: Mapping[str, str] | Bilingual | None, lang: str) -> str:
    """A taxonomy label in ``lang``, falling back to German, then to any text; "" for no label.

    Takes the plain mapping ``{de: ..., en: ...}`` of the YAML as well as the taxonomy's label objects.
    """
    if label is None:
        return ""
    wanted = normalise_lang(lang)
    if isinstance(label, Mapping):
        text = label.get(wanted) or label.get(DEFAULT_LANG)
        return text or next((value for value in label.values() if value), "")
    return (label.en if wanted == "en" else label.de) or label.de


def local_time(value: datetime | str) -> datetime:
    """A stored UTC timestamp (or its ISO text) in German time; a naive value is taken as UTC."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo("UTC"))
    return moment.astimezone(LOCAL_ZONE)


def format_datetime(value: datetime | str, lang: str) -> str:
    """``12.03.2026, 14:05`` in German, ``2026-03-12 14:05`` in English (unambiguous for every reader)."""
    moment = local_time(value)
    if normalise_lang(lang) == "de":
        return moment.strftime("%d.%m.%Y, %H:%M")
    return moment.strftime("%Y-%m-%d %H:%M")


def format_date(value: date | datetime | str, lang: str) -> str:
    """A calendar day. Days (deadlines, incident dates) are shown as stored; the day of a timestamp is its
    day in German time, so that a report filed at 00:30 is not dated the day before."""
    if isinstance(value, datetime) or (isinstance(value, str) and len(value) > 10):
        day = local_time(value).date()
    else:
        day = date.fromisoformat(value) if isinstance(value, str) else value
    if normalise_lang(lang) == "de":
        return day.strftime("%d.%m.%Y")
    return day.isoformat()


def has_key(key: str) -> bool:
    """Whether the German catalogue (the complete one) has ``key``: for labels of codes that may be newer
    than the translations, so that the code itself is shown rather than a dotted key."""
    return key in catalogue(DEFAULT_LANG)


def format_size(size_bytes: int, lang: str) -> str:
    """A file size as people read it ("1,2 MB" in German, "1.2 MB" in English)."""
    if size_bytes < 1024:
        text = f"{size_bytes} B"
    elif size_bytes < 1024 * 1024:
        text = f"{size_bytes / 1024:.0f} KB"
    else:
        text = f"{size_bytes / (1024 * 1024):.1f} MB"
    return text.replace(".", ",") if lang == "de" else text


def duration_text(t: Translator, minutes: int, kind: str = "within") -> str:
    """A span in words: kind "within" ("innerhalb von 24 Stunden"), "left" ("noch 5 Std."), "overdue"
    ("seit 3 Tagen überfällig") or "after" ("nach 4 Std."). The units switch at 2 hours and 3 days, so that
    no "1 Stunden" or "1 Tage" is ever shown."""
    minutes = max(minutes, 1)
    if minutes < 120:
        unit, n = "minutes", minutes
    elif minutes < 72 * 60:
        unit, n = "hours", minutes // 60
    else:
        unit, n = "days", minutes // (24 * 60)
    return t(f"deadline.{unit}" if kind == "within" else f"duration.{kind}.{unit}", n=n)
