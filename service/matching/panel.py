"""The repeat-perpetrator matching's section of the case page (service/cases/panels.py), wired in by the
composition root: cases does not import the matching."""

from __future__ import annotations

from sqlalchemy.orm import Session

from service.cases.panels import PanelView
from service.cases.schemas import CaseFile
from service.i18n import Translator
from service.matching.display import identifier_items, kind_labels
from service.matching.schemas import PerpetratorIdentifier
from service.matching.service import MatchingService


class MatchingPanel:
    name = "matching"

    def __init__(self, matching: MatchingService) -> None:
        self.matching = matching

    def view(self, db: Session, case: CaseFile, t: Translator, lang: str) -> PanelView:
        """The repeat-perpetrator matching of a case the subject holds (the case page checked that): the
        identifiers as the reporter typed them, and how many other cases share one and which organisations
        see them. Never another case's id, reporter or text (docs/matching.md)."""
        case_id = case.id
        shared = self.matching.shared_with(db, case_id)
        line = ""
        if shared is not None:
            key = "case_page.matching.shared_one" if shared.cases == 1 else "case_page.matching.shared_many"
            names = ", ".join(shared.organisations) or t("case_page.matching.no_holder")
            line = t(key, n=shared.cases, organisations=names)
        return PanelView(
            context={
                "identifiers": identifier_items(case.perpetrator_identifiers, t),
                "shared": line,
                "kinds": kind_labels(shared.kinds, t) if shared is not None else "",
                # Any identifier without its token (a used-up budget, a rotated matching key): the button
                # runs it.
                "waiting": bool(
                    self.matching.waiting(
                        db,
                        case_id,
                        [
                            PerpetratorIdentifier.model_validate(item).normalised()
                            for item in case.perpetrator_identifiers
                        ],
                    )
                ),
            }
        )
