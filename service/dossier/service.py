"""The case dossier: what the police or a lawyer needs to see of a case, read from the decrypted case.

Built in the session of someone who already holds the case key (the reporter on /fall, a counsellor of a
holding organisation), in memory only: nothing of it is stored, and its generation is audited without
content (``dossier.generated``, with the number of files it lists).

Evidence is every file the reporter sent (with an incident or a message); files a counsellor sent (a leaflet)
are not evidence and are left out. Each file carries the SHA-256 of its plaintext as stored: sealed at upload
since uploads are hashed, computed now (decrypted as it streams) for a file stored before, and said so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import date, datetime

from sqlalchemy.orm import Session

from service.audit import AuditLog
from service.cases import proceedings
from service.cases import repository as cases
from service.cases.deadlines import payload_complaint_deadline
from service.cases.models import Case, GrantRole, Incident
from service.crypto import Context, open_sealed
from service.db import utcnow
from service.dossier.names import numbered
from service.evidence import attachments as files
from service.evidence.blobs import BlobStore
from service.evidence.repository import attachments
from service.taxonomy import Taxonomy

EVIDENCE_SENDER = "reporter"


@dataclass(frozen=True)
class Coded:
    """A taxonomy code with its label in the dossier's language (the code alone if it is no longer known)."""

    code: str
    label: str
    # The provisions the taxonomy names for an incident type ("§ 241 StGB"); empty for channels and for
    # codes no longer known. The letters cite them as what "comes into consideration", never as a finding.
    statute: str = ""


@dataclass(frozen=True)
class EvidenceFile:
    attachment_id: str
    name: str
    content_type: str
    size_bytes: int
    # When the service received it (the upload's time, to the minute).
    received_at: datetime
    sha256: str
    # True: sealed at upload; False: computed while generating this dossier (a file stored before hashing).
    hash_sealed: bool
    # The file's name in the dossier's list and in the evidence ZIP ("01-Drohbrief.pdf", service/dossier/
    # names.py): its place in the dossier and a name safe to unpack. Set once the chronology is sorted.
    listed_name: str = ""


@dataclass(frozen=True)
class DossierIncident:
    seq: int
    received_at: datetime
    occurred_on: date | None
    types: list[Coded]
    channel: Coded
    description: str
    place: str
    platform: str
    url: str
    files: list[EvidenceFile]
    # The last day for the Strafantrag (§ 77b StGB) where the case allows counting one (a complaint-only
    # offence whose perpetrator the reporter knows since a given day), for the letters' notes.
    complaint_ends_on: date | None = None
    # The day a Strafantrag was filed for it, where the proceedings record one (service/cases/proceedings.py):
    # the letters then say so and count no deadline for it.
    application_on: date | None = None
    # Whether it came through an online channel (the platform notice lists these).
    online: bool = False


@dataclass(frozen=True)
class Holder:
    """An organisation that holds the case key, with what its grant allows now (``state``: see below)."""

    name: str
    # "sees" (works the case), "referred" (handed on to it), "standby" (a stand-in that opens the case only
    # if nobody acknowledges it in time), "stepped_in" (a stand-in that did), "inactive" (access ended).
    state: str


@dataclass(frozen=True)
class Dossier:
    case_created_at: datetime
    generated_at: datetime
    incidents: list[DossierIncident]
    # Files the reporter sent with messages (not with an incident), in upload order.
    message_files: list[EvidenceFile]
    holders: list[Holder]

    @property
    def files(self) -> list[EvidenceFile]:
        """Every evidence file in the order the dossier lists (and numbers) them."""
        return [file for incident in self.incidents for file in incident.files] + self.message_files

    @property
    def file_count(self) -> int:
        return len(self.files)

    @property
    def hashed_now(self) -> int:
        return sum(1 for file in self.files if not file.hash_sealed)


def _coded(taxonomy: Taxonomy, kind: str, code: str, lang: str) -> Coded:
    try:
        label = taxonomy.label(kind, code, lang)
    except KeyError:
        return Coded(code=code, label=code)
    statute = ""
    if kind == "incident_types":
        statute = taxonomy.incident_type(code).statute or ""
    return Coded(code=code, label=label, statute=statute)


def coded_types(taxonomy: Taxonomy, codes: list[str], lang: str) -> list[Coded]:
    """Incident type codes with their labels and statutes (the platform notice's explanation is built from
    them)."""
    return [_coded(taxonomy, "incident_types", code, lang) for code in codes]


def _online(taxonomy: Taxonomy, channel: str) -> bool:
    try:
        return taxonomy.channel_is_online(channel)
    except KeyError:
        return False


def _holder_state(role: str, active: bool) -> str:
    if role == GrantRole.escalation.value:
        return "stepped_in" if active else "standby"
    if not active:
        return "inactive"
    return "referred" if role == GrantRole.referral.value else "sees"


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def build(
    session: Session, case: Case, data_key: bytes, blobs: BlobStore, taxonomy: Taxonomy, lang: str
) -> Dossier:
    """The dossier of ``case``, decrypted with ``data_key`` (which the caller's access check gave it)."""
    evidence: dict[str | None, list[EvidenceFile]] = {}
    for attachment in attachments(session, case.id):
        if attachment.uploaded_by != EVIDENCE_SENDER:
            continue
        found = files.file_hash(attachment, data_key, blobs)
        evidence.setdefault(attachment.incident_id, []).append(
            EvidenceFile(
                attachment_id=attachment.id,
                name=files.display_name_of(attachment, data_key),
                content_type=attachment.content_type,
                size_bytes=attachment.size_bytes,
                received_at=attachment.created_at,
                sha256=found.sha256,
                hash_sealed=found.sealed,
            )
        )
    incidents = []
    for incident in case.incidents:
        context = Context("incident", case_id=case.id, record_id=incident.id)
        payload = json.loads(open_sealed(data_key, incident.payload, context))
        occurred = payload.get("occurred_on")
        incidents.append(
            DossierIncident(
                seq=incident.seq,
                received_at=incident.created_at,
                occurred_on=date.fromisoformat(occurred) if isinstance(occurred, str) and occurred else None,
                types=[_coded(taxonomy, "incident_types", code, lang) for code in incident.type_codes],
                channel=_coded(taxonomy, "channels", incident.channel, lang),
                description=_text(payload.get("description")),
                place=_text(payload.get("place")),
                platform=_text(payload.get("platform")),
                url=_text(payload.get("url")),
                files=evidence.get(incident.id, []),
                complaint_ends_on=payload_complaint_deadline(
                    taxonomy.has_complaint_only(list(incident.type_codes)), payload
                ).ends_on,
                application_on=_application_on(data_key, incident),
                online=_online(taxonomy, incident.channel),
            )
        )
    # A chronology: by the day it happened where the reporter gave one, else by the day it was received.
    incidents.sort(key=lambda item: (item.occurred_on or item.received_at.date(), item.seq))
    message_files = [file for key, items in evidence.items() if key is None for file in items]
    incidents, message_files = _numbered(incidents, message_files)
    holders = [
        Holder(name=holder.name, state=_holder_state(holder.role, holder.active))
        for holder in cases.key_holders(session, case.id)
    ]
    return Dossier(
        case_created_at=case.created_at,
        generated_at=utcnow(),
        incidents=incidents,
        message_files=message_files,
        holders=holders,
    )


def _application_on(data_key: bytes, incident: Incident) -> date | None:
    recorded = proceedings.read(data_key, incident)
    return recorded.application_on if recorded is not None else None


def _numbered(
    incidents: list[DossierIncident], message_files: list[EvidenceFile]
) -> tuple[list[DossierIncident], list[EvidenceFile]]:
    """The files with their listed names, numbered in the dossier's order (the chronology, then messages)."""
    count = sum(len(incident.files) for incident in incidents) + len(message_files)
    number = 0

    def named(items: list[EvidenceFile]) -> list[EvidenceFile]:
        nonlocal number
        out = []
        for item in items:
            number += 1
            out.append(replace(item, listed_name=numbered(number, count, item.name)))
        return out

    return [replace(incident, files=named(incident.files)) for incident in incidents], named(message_files)


def record_generated(
    audit: AuditLog,
    session: Session,
    dossier: Dossier,
    case_id: str,
    *,
    actor_kind: str,
    actor_id: str | None,
) -> None:
    """Audit the generation without content: who (kind and staff id), which case, how many files, how many
    of their hashes had to be computed now. Last before the caller's commit, as AuditLog asks."""
    audit.append(
        session,
        actor_kind=actor_kind,
        actor_id=actor_id,
        action="dossier.generated",
        object_type="case",
        object_id=case_id,
        details={"files": dossier.file_count, "hashed_now": dossier.hashed_now},
    )
