"""The support directory (Empowerment): offices, networks and offers that decision makers can turn to, per
Land.

Coordinators keep it. Every entry names its source (institution and title, an address where one was checked)
and shows the day it was last checked; a coordinator's new entry is public only after a second coordinator's
review, and an entry nobody checked for ``REVIEW_INTERVAL`` is named in the coordinators' weekly reminder, as
the knowledge base's articles are. Entries are retired, never deleted: the audit log keeps what was public.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.audit import AuditLog
from service.auth.subject import Subject
from service.db import utcnow
from service.errors import ErrorDetail, NotFound, ValidationFailed
from service.knowledge.models import SupportEntry
from service.knowledge.service import REVIEW_INTERVAL
from service.validation import public_error
from service.yaml_load import safe_load

SUPPORT_FILE = Path(__file__).resolve().parent / "support.yaml"
# The directory's "Land" for offers open to everyone in the country.
NATIONWIDE = "bund"
FIELDS = ("land", "kind", "name", "description_de", "description_en", "url", "source", "source_url")
LIMITS = {"name": 200, "description_de": 1000, "description_en": 1000, "source": 500}
_URL_LIMIT = 500


class SupportKind(StrEnum):
    """What an entry offers, in the order the public page lists them."""

    portal = "portal"  # a portal or central contact point that finds the right help
    police = "police"  # a police contact point or prevention offer
    victim_support = (
        "victim_support"  # counselling for people affected by right-wing, racist, antisemitic violence
    )
    mobile_counselling = (
        "mobile_counselling"  # mobile counselling against the far right, for municipalities too
    )
    antisemitism = "antisemitism"  # reporting and documentation of antisemitic incidents (RIAS)
    training = "training"  # workshops, webinars, moderation and practical aids


_KIND_ORDER = {kind.value: index for index, kind in enumerate(SupportKind)}


@dataclass(frozen=True)
class SupportEntryView:
    id: str
    land: str
    kind: str
    name: str
    description_de: str
    description_en: str
    url: str
    source: str
    source_url: str
    # "geprüft am" as an ISO date, and whether that is longer ago than the review interval.
    reviewed_on: str
    review_due: bool
    awaiting_review: bool
    retired: bool
    author_id: str | None

    def description(self, lang: str) -> str:
        return self.description_en if lang == "en" else self.description_de


@dataclass(frozen=True)
class SupportValues:
    """What a coordinator's form sends, as text (nothing is stored unless all of it is valid)."""

    land: str = ""
    kind: str = ""
    name: str = ""
    description_de: str = ""
    description_en: str = ""
    url: str = ""
    source: str = ""
    source_url: str = ""

    @classmethod
    def of(cls, fields: dict[str, str]) -> SupportValues:
        return cls(**{name: fields.get(name, "") for name in FIELDS})

    def as_dict(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in FIELDS}


def _https(value: str) -> bool:
    if len(value) > _URL_LIMIT or any(c.isspace() for c in value):
        return False
    parts = urlsplit(value)
    return parts.scheme == "https" and bool(parts.hostname) and not parts.username and not parts.password


def _view(entry: SupportEntry, now: datetime) -> SupportEntryView:
    return SupportEntryView(
        id=entry.id,
        land=entry.land,
        kind=entry.kind,
        name=entry.name,
        description_de=entry.description_de,
        description_en=entry.description_en,
        url=entry.url or "",
        source=entry.source,
        source_url=entry.source_url or "",
        reviewed_on=entry.reviewed_at.date().isoformat(),
        review_due=_due(entry, now),
        awaiting_review=entry.awaiting_review,
        retired=entry.retired_at is not None,
        author_id=entry.author_id,
    )


def _due(entry: SupportEntry, now: datetime) -> bool:
    return (
        entry.retired_at is None and not entry.awaiting_review and entry.reviewed_at < now - REVIEW_INTERVAL
    )


class SupportDirectory:
    def __init__(self, lands: Collection[str], audit: AuditLog) -> None:
        # The Land codes of policies/districts.csv ("01" .. "16"); NATIONWIDE besides.
        self._lands = frozenset(lands) | {NATIONWIDE}
        self._audit = audit

    @property
    def lands(self) -> frozenset[str]:
        return self._lands

    def public(self, session: Session, land: str = "") -> list[SupportEntryView]:
        """Published entries that are not retired: for a Land, its own and the nationwide ones (what a person
        there can turn to); for NATIONWIDE, those alone; without a Land, all. Nationwide entries come last."""
        query = select(SupportEntry).where(
            SupportEntry.retired_at.is_(None), SupportEntry.awaiting_review.is_(False)
        )
        if land == NATIONWIDE:
            query = query.where(SupportEntry.land == NATIONWIDE)
        elif land:
            query = query.where(SupportEntry.land.in_((land, NATIONWIDE)))
        return _ordered(_view(entry, utcnow()) for entry in session.scalars(query))

    def all(self, session: Session) -> list[SupportEntryView]:
        """Every entry, retired and waiting ones too (the coordinators' page)."""
        return _ordered(_view(entry, utcnow()) for entry in session.scalars(select(SupportEntry)))

    def entry(self, session: Session, entry_id: str) -> SupportEntryView:
        return _view(self._row(session, entry_id), utcnow())

    def _row(self, session: Session, entry_id: str, *, lock: bool = False) -> SupportEntry:
        query = select(SupportEntry).where(SupportEntry.id == entry_id[:36])
        found = session.scalar(query.with_for_update() if lock else query)
        if found is None:
            raise NotFound()
        return found

    def check(self, values: SupportValues) -> list[ErrorDetail]:
        """Every problem with the values at once, each with its field and a stable code."""
        errors: list[ErrorDetail] = []
        if values.land not in self._lands:
            errors.append(public_error(["land"], "invalid_choice", "choose a Land from the list"))
        if values.kind not in _KIND_ORDER:
            errors.append(public_error(["kind"], "invalid_choice", "choose a kind from the list"))
        for name, limit in LIMITS.items():
            text = getattr(values, name).strip()
            if not text or len(text) > limit:
                errors.append(public_error([name], "length", f"1 to {limit} characters"))
        for name in ("url", "source_url"):
            text = getattr(values, name).strip()
            if text and not _https(text):
                errors.append(public_error([name], "https_only", "an https:// address"))
        return errors

    def create(self, session: Session, subject: Subject, values: SupportValues) -> str:
        """A coordinator's new entry: stored, waiting for a second coordinator's review. Audited."""
        errors = self.check(values)
        if errors:
            raise ValidationFailed(errors)
        now = utcnow()
        entry = SupportEntry(
            author_id=subject.user_id,
            created_at=now,
            reviewed_at=now,
            reviewed_by_id=subject.user_id,
            awaiting_review=True,
        )
        _apply(entry, values, now)
        session.add(entry)
        session.flush()
        self._audited(session, subject, "support.create", entry, {"land": entry.land, "kind": entry.kind})
        return entry.id

    def edit(self, session: Session, subject: Subject, entry_id: str, values: SupportValues) -> None:
        """A coordinator's correction; whoever saves it checked it against the source ("geprüft am" is
        today). A new entry still waits for its review. Audited with the names of the changed fields."""
        entry = self._row(session, entry_id, lock=True)
        errors = self.check(values)
        if errors:
            raise ValidationFailed(errors)
        before = {name: getattr(entry, name) or "" for name in FIELDS}
        now = utcnow()
        _apply(entry, values, now)
        changed = [name for name in FIELDS if (getattr(entry, name) or "") != before[name]]
        entry.reviewed_at = now
        entry.reviewed_by_id = subject.user_id
        self._audited(session, subject, "support.edit", entry, {"changed": ",".join(changed)})

    def review(self, session: Session, subject: Subject, entry_id: str) -> bool:
        """A coordinator confirms the entry against its source; for a new entry this is the second
        coordinator's review that publishes it (never its author's). Audited. Returns whether it published."""
        entry = self._row(session, entry_id, lock=True)
        published = entry.awaiting_review
        if published and entry.author_id == subject.user_id:
            raise ValidationFailed(
                [public_error(["review"], "own_entry", "a second coordinator must review a new entry")]
            )
        entry.awaiting_review = False
        entry.reviewed_at = utcnow()
        entry.reviewed_by_id = subject.user_id
        self._audited(session, subject, "support.publish" if published else "support.review", entry, {})
        return published

    def retire(self, session: Session, subject: Subject, entry_id: str, *, retired: bool) -> bool:
        """Takes an entry off the public page (retired=True) or puts it back. Audited; returns whether
        anything changed (a second retirement of the same entry is a no-op)."""
        entry = self._row(session, entry_id, lock=True)
        if (entry.retired_at is not None) == retired:
            return False
        entry.retired_at = utcnow() if retired else None
        entry.updated_at = utcnow()
        self._audited(session, subject, "support.retire" if retired else "support.restore", entry, {})
        return True

    def due_for_review(self, session: Session, now: datetime) -> list[str]:
        """Published, not retired entries nobody checked within the review interval, as "name (Land)"."""
        rows = session.scalars(
            select(SupportEntry)
            .where(SupportEntry.retired_at.is_(None), SupportEntry.awaiting_review.is_(False))
            .order_by(SupportEntry.land, SupportEntry.name)
        )
        return [f"{entry.name} ({entry.land})" for entry in rows if _due(entry, now)]

    def _audited(
        self, session: Session, subject: Subject, action: str, entry: SupportEntry, details: dict[str, str]
    ) -> None:
        self._audit.append(
            session,
            actor_kind="staff",
            actor_id=subject.user_id,
            action=action,
            object_type="support_entry",
            object_id=entry.id,
            details=dict(details),
        )


def _apply(entry: SupportEntry, values: SupportValues, now: datetime) -> None:
    entry.land = values.land
    entry.kind = values.kind
    entry.name = values.name.strip()
    entry.description_de = values.description_de.strip().replace("\r\n", "\n")
    entry.description_en = values.description_en.strip().replace("\r\n", "\n")
    entry.url = values.url.strip() or None
    entry.source = values.source.strip()
    entry.source_url = values.source_url.strip() or None
    entry.updated_at = now


def _ordered(views: Iterable[SupportEntryView]) -> list[SupportEntryView]:
    """By Land (nationwide last), then kind, then name."""
    return sorted(
        views,
        key=lambda v: (v.land == NATIONWIDE, v.land, _KIND_ORDER.get(v.kind, 99), v.name.casefold()),
    )


# -- the shipped entries -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedEntry:
    key: str
    values: SupportValues
    checked: date


def shipped_entries(file: Path = SUPPORT_FILE) -> list[SeedEntry]:
    """The entries of support.yaml, each with the day its source was checked."""
    data = safe_load(file.read_text(encoding="utf-8"))
    entries = []
    for raw in data["entries"]:
        if not isinstance(raw.get("checked"), date):
            raise ValueError(f"{raw.get('key')}: checked must be a date (YYYY-MM-DD)")
        values = SupportValues(
            land=str(raw["land"]),
            kind=str(raw["kind"]),
            name=str(raw["name"]),
            description_de=str(raw["description"]["de"]).strip(),
            description_en=str(raw["description"]["en"]).strip(),
            url=str(raw.get("url") or ""),
            source=str(raw["source"]).strip(),
            source_url=str(raw.get("source_url") or ""),
        )
        entries.append(SeedEntry(key=str(raw["key"]), values=values, checked=raw["checked"]))
    return entries


def seed_support(session: Session, directory: SupportDirectory, file: Path = SUPPORT_FILE) -> int:
    """Adds the shipped entries whose key is not there yet (an edited or retired one stays as it is)."""
    existing = set(session.scalars(select(SupportEntry.seed_key).where(SupportEntry.seed_key.is_not(None))))
    added = 0
    now = utcnow()
    for seed in shipped_entries(file):
        if seed.key in existing:
            continue
        errors = directory.check(seed.values)
        if errors:
            raise ValueError(f"{seed.key}: {errors}")
        entry = SupportEntry(
            seed_key=seed.key,
            created_at=now,
            reviewed_at=datetime.combine(seed.checked, time(12), tzinfo=UTC),
            awaiting_review=False,
        )
        _apply(entry, seed.values, now)
        session.add(entry)
        added += 1
    return added
