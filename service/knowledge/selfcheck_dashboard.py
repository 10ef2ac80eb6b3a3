"""The coordinators' view of the self-checks kept under a code: how many, and the share of each answer.

Read from ``selfcheck_tally`` alone (never from a sealed row, which only its code opens). A number is shown
only where at least five municipalities stand behind it: fewer than five kept self-checks show nothing but
"< 5"; a question with one to four municipalities behind any answer, or one to four that did not answer it,
shows "–" for every answer, so that no small number can be worked back from the others and the total.
A 0 is shown: it stands behind nobody.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.i18n import Translator
from service.knowledge.selfcheck import ANSWERS, load_selfcheck
from service.knowledge.selfcheck_store import Tallies

MIN_BEHIND = 5


@dataclass(frozen=True)
class Cell:
    text: str


@dataclass(frozen=True)
class Row:
    id: str
    text: str
    hidden: bool
    cells: tuple[Cell, ...]


@dataclass(frozen=True)
class AreaRows:
    title: str
    rows: tuple[Row, ...]


@dataclass(frozen=True)
class Aggregate:
    saved: str
    areas: list[AreaRows]
    answer_labels: tuple[str, ...]


def _small(count: int) -> bool:
    return 0 < count < MIN_BEHIND


def aggregate(tallies: Tallies, lang: str) -> Aggregate:
    t = Translator(lang)
    labels = tuple(t(f"selfcheck.answer.{answer}") for answer in ANSWERS)
    total = tallies.saved
    if total < MIN_BEHIND:
        return Aggregate(saved="< 5" if total else "0", areas=[], answer_labels=labels)
    areas = []
    for area in load_selfcheck():
        rows = []
        for q in area.questions:
            counts = [tallies.counts.get(q.id, {}).get(answer, 0) for answer in ANSWERS]
            unanswered = total - sum(counts)
            hidden = unanswered < 0 or any(_small(c) for c in (*counts, unanswered))
            cells = tuple(
                Cell("–" if hidden else (f"{c} ({round(100 * c / total)} %)" if c else "0")) for c in counts
            )
            rows.append(Row(q.id, q.text.get(lang, q.text["de"]), hidden, cells))
        areas.append(AreaRows(area.title.get(lang, area.title["de"]), tuple(rows)))
    return Aggregate(saved=str(total), areas=areas, answer_labels=labels)
