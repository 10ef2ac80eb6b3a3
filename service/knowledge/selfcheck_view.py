"""What the self-check's evaluation, its printable page and its PDF show: the same view for all three.

Per area the answers and the recommendation for each answer that leaves something to do (every "no" before
every "partly"), linked to the article it follows; beside a previous take (a code's), what changed since its
month; and the three next steps with their owners that the reader writes down (never stored).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from service.i18n import Translator
from service.knowledge.safety_plan import article_titles
from service.knowledge.selfcheck import ANSWERS, GAP_ANSWERS, load_selfcheck

STEPS = 3
MAX_STEP_CHARS = 300
MAX_OWNER_CHARS = 120


def month_label(month: str, lang: str) -> str:
    """``2027-03`` as "März 2027" / "March 2027"; "" for anything that is not a month."""
    try:
        year, number = (int(part) for part in month.split("-"))
    except ValueError:
        return ""
    if not 1 <= number <= 12 or not 1900 < year < 3000:
        return ""
    names = Translator(lang)("selfcheck.months").split(",")
    return f"{names[number - 1]} {year}"


@dataclass(frozen=True)
class QuestionView:
    id: str
    text: str
    answer: str  # "" when unanswered
    answer_label: str
    previous: str  # "" without a previous take (or unanswered there)
    previous_label: str
    advice: str  # "" unless the answer leaves something to do
    article_title: str
    article_url: str

    @property
    def changed(self) -> bool:
        return bool(self.previous) and self.previous != self.answer


@dataclass(frozen=True)
class AreaView:
    id: str
    title: str
    questions: tuple[QuestionView, ...]
    counts: dict[str, int]

    @property
    def answered(self) -> int:
        return sum(self.counts.values())

    @property
    def gaps(self) -> list[QuestionView]:
        return [q for answer in GAP_ANSWERS for q in self.questions if q.answer == answer]


@dataclass(frozen=True)
class Evaluation:
    areas: tuple[AreaView, ...]
    previous_month: str  # YYYY-MM of the previous take, or ""
    previous_label: str
    steps: tuple[tuple[str, str], ...]  # (step, owner), the filled-in ones

    @property
    def answered(self) -> int:
        return sum(area.answered for area in self.areas)

    @property
    def total(self) -> int:
        return sum(len(area.questions) for area in self.areas)

    @property
    def gap_count(self) -> int:
        return sum(len(area.gaps) for area in self.areas)

    @property
    def changes(self) -> list[QuestionView]:
        return [q for area in self.areas for q in area.questions if q.changed]


def evaluate(
    answers: Mapping[str, str],
    lang: str,
    previous: Mapping[str, str] | None = None,
    previous_month: str = "",
    steps: tuple[tuple[str, str], ...] = (),
) -> Evaluation:
    t = Translator(lang)
    labels = {answer: t(f"selfcheck.answer.{answer}") for answer in ANSWERS}
    titles = article_titles(lang)
    suffix = "?lang=en" if lang == "en" else ""
    # A previous take is shown only with the month it was saved in ("changed since <month year>").
    label = month_label(previous_month, lang) if previous else ""
    before = previous if previous and label else {}
    areas = []
    for area in load_selfcheck():
        views = []
        counts = dict.fromkeys(ANSWERS, 0)
        for q in area.questions:
            answer = answers.get(q.id, "")
            if answer:
                counts[answer] += 1
            views.append(
                QuestionView(
                    id=q.id,
                    text=q.text.get(lang, q.text["de"]),
                    answer=answer,
                    answer_label=labels.get(answer, t("selfcheck.answer.none")),
                    previous=before.get(q.id, ""),
                    previous_label=labels.get(before.get(q.id, ""), t("selfcheck.answer.none")),
                    advice=q.advice(answer, lang) if answer in GAP_ANSWERS else "",
                    article_title=titles.get(q.article, q.article),
                    article_url=f"/wissen/{q.article}{suffix}",
                )
            )
        areas.append(AreaView(area.id, area.title.get(lang, area.title["de"]), tuple(views), counts))
    return Evaluation(
        areas=tuple(areas),
        previous_month=previous_month if before else "",
        previous_label=label,
        steps=tuple((s, o) for s, o in steps if s.strip() or o.strip()),
    )
