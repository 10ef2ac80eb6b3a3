"""What other features contribute to the case page, without cases importing them (issue 17).

The case page shows panels of features built on cases (the repeat-perpetrator matching, the letters) and
offers the files generated from a case (the dossier, the evidence ZIP, a letter). Those features import
cases; cases importing them back made one knot of the packages. So cases only says here what it needs, as
protocols, and the composition root (service/runtime.py) passes in what implements them
(service/matching/panel.py, service/dossier/documents.py). The routes stay on the case page's addresses
(service/cases/form_pages.py) with the same authorisation as every other form of the page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Protocol

from fastapi.responses import Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from service.i18n import Translator

if TYPE_CHECKING:
    from service.cases.schemas import CaseFile
    from service.cases.service import UnlockedCase


@dataclass(frozen=True)
class PanelView:
    """One feature's part of the case page: what its template section reads (``panels.<name>``) and the
    form values it prefills (what was typed into a refused form wins over them)."""

    context: object = None
    values: Mapping[str, str] = field(default_factory=dict)


class CasePanel(Protocol):
    """A section of the case page that another feature fills, for a case the subject holds (the case file
    was opened, and audited, before any panel is asked)."""

    name: str

    def view(self, db: Session, case: CaseFile, t: Translator, lang: str) -> PanelView: ...


class CaseDocuments(Protocol):
    """The files generated from a decrypted case, for a counsellor of a holding organisation: each call
    generates in memory, audits without content in the caller's transaction (which commits it before
    the answer), and answers the download. A refused letter form
    raises ValidationFailed naming its fields (``form_fields``), and nothing is generated or audited."""

    # The letter form's fields: shown under their own name on the case page, and free text (NUL is
    # refused at the field, not for the whole body).
    form_fields: frozenset[str]
    free_text: frozenset[str]

    def dossier(self, db: Session, unlocked: UnlockedCase, lang: str, actor_id: str) -> Response: ...

    def evidence(self, db: Session, unlocked: UnlockedCase, lang: str, actor_id: str) -> Response: ...

    def check_letter(self, form: FormData) -> None: ...

    def letter_values(self, form: FormData) -> dict[str, str]: ...

    def letter(
        self, db: Session, unlocked: UnlockedCase, form: FormData, today: date, actor_id: str
    ) -> Response: ...


def panel_views(
    panels: tuple[CasePanel, ...], db: Session, case: CaseFile, t: Translator, lang: str
) -> dict[str, PanelView]:
    return {panel.name: panel.view(db, case, t, lang) for panel in panels}
