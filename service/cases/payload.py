"""The sealed records of a report as filed, decrypted: one shape for every module that writes or reads
them (the intake, the reporter's "known since" form, the case file, the deadlines).

The incident (``incident.payload``) is written by ``service/reports/rows.py`` with every key; ``known_on``
came later, and a stored record is never rewritten to add a key, so every key but the description may be
missing from an older one (``total=False``).
"""

from __future__ import annotations

from typing import Required, TypedDict


class PerpetratorPayload(TypedDict, total=False):
    """What the reporter said about the perpetrator: taxonomy codes, and text."""

    familiarity: str | None
    residence: str | None
    number: str | None
    details: str | None
    # Since when the reporter knows who it was (ISO day): the Strafantrag period starts then.
    known_on: str | None


class ReportPayload(TypedDict, total=False):
    """The incident's sealed fields; its dates are ISO days (the exact day is never kept in clear)."""

    description: Required[str]
    type_other: str | None
    occurred_on: str | None
    place: str | None
    platform: str | None
    url: str | None
    perpetrator: PerpetratorPayload | None


class ContactPayload(TypedDict):
    """How the reporter may be contacted (``case.contact_ciphertext``, written by the intake only when one
    of them is given)."""

    name: str | None
    email: str | None
    phone: str | None
