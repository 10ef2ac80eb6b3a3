"""The municipal self-check (the model project's Selbstcheck): three areas of questions, and a recommendation
for each answer that leaves something to do.

Answering stores nothing: the answers travel in the body of a form and are evaluated on the fly. Only a
municipality that chooses to keep them under a code of its own has them stored, sealed under that code
(service/knowledge/selfcheck_store.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from service.knowledge.seed import ARTICLES_DIR
from service.yaml_load import safe_load

ANSWERS = ("yes", "partly", "no")
# Answers that leave something to do, most urgent first: what to do about a "no" comes before a "partly".
GAP_ANSWERS = ("no", "partly")


@dataclass(frozen=True)
class Question:
    id: str
    text: dict[str, str]
    recommendation: dict[str, str]
    article: str
    # The recommendation for "partly" where it differs from the one for "no".
    partly: dict[str, str] | None = None

    def advice(self, answer: str, lang: str) -> str:
        texts = self.partly if answer == "partly" and self.partly else self.recommendation
        return texts.get(lang, texts["de"])


@dataclass(frozen=True)
class Section:
    id: str
    title: dict[str, str]
    questions: tuple[Question, ...]


@dataclass(frozen=True)
class Area:
    id: str
    title: dict[str, str]
    sections: tuple[Section, ...]

    @property
    def questions(self) -> tuple[Question, ...]:
        return tuple(q for section in self.sections for q in section.questions)


def _question(data: dict[str, Any]) -> Question:
    return Question(
        id=str(data["id"]),
        text=dict(data["question"]),
        recommendation=dict(data["recommendation"]),
        article=str(data["article"]),
        partly=dict(data["partly"]) if data.get("partly") else None,
    )


@lru_cache(maxsize=1)
def load_selfcheck(path: Path = ARTICLES_DIR / "selbstcheck.yaml") -> tuple[Area, ...]:
    data = safe_load(path.read_text(encoding="utf-8"))
    if tuple(data["answers"]) != ANSWERS or tuple(data["gap_answers"]) != GAP_ANSWERS:
        raise ValueError("selbstcheck.yaml: answers must be yes, partly, no; gap answers no, partly")
    return tuple(
        Area(
            id=str(area["id"]),
            title=dict(area["title"]),
            sections=tuple(
                Section(
                    id=str(section["id"]),
                    title=dict(section["title"]),
                    questions=tuple(_question(q) for q in section["questions"]),
                )
                for section in area["sections"]
            ),
        )
        for area in data["areas"]
    )


def questions() -> tuple[Question, ...]:
    return tuple(q for area in load_selfcheck() for q in area.questions)


def question_ids() -> frozenset[str]:
    return frozenset(q.id for q in questions())


def clean_answers(items: Mapping[str, object]) -> dict[str, str]:
    """The answers among form fields ``a.<question id>``: known questions, known answers, nothing else."""
    asked = question_ids()
    out: dict[str, str] = {}
    for name, value in items.items():
        if name.startswith("a.") and name[2:] in asked and value in ANSWERS:
            out[name[2:]] = str(value)
    return out
