"""The files a counsellor generates from a case on its page (the dossier, the evidence ZIP, a letter), for
the case page's routes (service/cases/form_pages.py) through the protocols of service/cases/panels.py: the
composition root passes them in, so cases does not import the dossier."""

from __future__ import annotations

from datetime import date

from fastapi.responses import Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from service.audit import AuditLog
from service.cases.panels import PanelView
from service.cases.schemas import CaseFile
from service.cases.service import UnlockedCase
from service.dossier import archive, letter_request, letters
from service.dossier import service as dossiers
from service.dossier.pdf import dossier_download
from service.dossier.pdf import render as render_dossier
from service.errors import ValidationFailed
from service.evidence.blobs import BlobStore
from service.i18n import Translator
from service.taxonomy import Taxonomy


class StaffDocuments:
    """Each call works in the caller's session on a case the subject opened (``unlocked``) and audits without
    content last; the caller's transaction commits it before the answer (service.deps.in_transaction)."""

    form_fields = frozenset({letter_request.KIND_FIELD}) | letter_request.FREE_TEXT
    free_text = letter_request.FREE_TEXT

    def __init__(self, taxonomy: Taxonomy, audit: AuditLog, blobs: BlobStore) -> None:
        self.taxonomy = taxonomy
        self.audit = audit
        self.blobs = blobs

    def dossier(self, db: Session, unlocked: UnlockedCase, lang: str, actor_id: str) -> Response:
        """The case dossier as PDF, generated in memory, audited without content."""
        dossier = dossiers.build(db, unlocked.case, unlocked.data_key, self.blobs, self.taxonomy, lang)
        document = render_dossier(dossier, lang)
        dossiers.record_generated(
            self.audit, db, dossier, unlocked.case.id, actor_kind="staff", actor_id=actor_id
        )
        return dossier_download(document)

    def evidence(self, db: Session, unlocked: UnlockedCase, lang: str, actor_id: str) -> Response:
        """The evidence files the dossier lists, as a ZIP with their SHA256SUMS: decrypted while it streams
        (after this session is gone), nothing stored, audited without content (archive.py)."""
        dossier = dossiers.build(db, unlocked.case, unlocked.data_key, self.blobs, self.taxonomy, lang)
        items = archive.members(db, dossier, unlocked.case.id)
        archive.record_downloaded(
            self.audit, db, len(items), unlocked.case.id, actor_kind="staff", actor_id=actor_id
        )
        return archive.download(items, unlocked.data_key, self.blobs)

    def check_letter(self, form: FormData) -> None:
        """ValidationFailed naming the letter form's refused fields; nothing is looked up for it."""
        wanted, errors = letter_request.parse(form)
        if wanted is None:
            raise ValidationFailed(errors)

    def letter_values(self, form: FormData) -> dict[str, str]:
        return letter_request.typed_values(form)

    def letter(
        self, db: Session, unlocked: UnlockedCase, form: FormData, today: date, actor_id: str
    ) -> Response:
        """A letter filled from the decrypted case, as PDF or plain text. What was typed for it goes into
        this answer only: never stored, never logged, audited as the kind of letter."""
        wanted, errors = letter_request.parse(form)
        if wanted is None:
            raise ValidationFailed(errors)
        dossier = dossiers.build(db, unlocked.case, unlocked.data_key, self.blobs, self.taxonomy, "de")
        document = letter_request.rendered(wanted, letters.write(wanted.kind, dossier, wanted.typed, today))
        letter_request.record_generated(
            self.audit, db, wanted.kind, unlocked.case.id, actor_kind="staff", actor_id=actor_id
        )
        return letter_request.letter_download(wanted, document, today)


class LetterPanel:
    """The letter form of the case page: the platform notice's explanation prefilled from the incident
    types (the counsellor completes it)."""

    name = "letters"

    def __init__(self, taxonomy: Taxonomy) -> None:
        self.taxonomy = taxonomy

    def view(self, db: Session, case: CaseFile, t: Translator, lang: str) -> PanelView:
        codes = [code for item in case.incidents for code in item.type_codes]
        explanation = letters.explanation(dossiers.coded_types(self.taxonomy, codes, "de"))
        return PanelView(values={"letter_explanation": explanation})
