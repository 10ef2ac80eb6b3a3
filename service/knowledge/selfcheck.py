"""The municipal self-check (the model project's Selbstcheck): questions, and recommendations for gaps.

Nothing is stored: the answers travel in the query of a GET form and are evaluated on the fly, so a
municipality can try it without leaving a trace with us.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from service.knowledge.seed import ARTICLES_DIR


@dataclass(frozen=True)
class Question:
    id: str
    text: dict[str, str]
    recommendation: dict[str, str]
    article: str


@dataclass(frozen=True)
class Section:
    id: str
    title: dict[str, str]
    questions: tuple[Question, ...]


@lru_cache(maxsize=1)
def load_selfcheck(path: Path = ARTICLES_DIR / "selbstcheck.yaml") -> tuple[Section, ...]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return tuple(
        Section(
            id=str(section["id"]),
            title=dict(section["title"]),
            questions=tuple(
                Question(
                    id=str(q["id"]),
                    text=dict(q["question"]),
                    recommendation=dict(q["recommendation"]),
                    article=str(q["article"]),
                )
                for q in section["questions"]
            ),
        )
        for section in data["sections"]
    )


def gaps(answers: dict[str, str]) -> list[Question]:
    """The questions answered "no", in questionnaire order (unanswered ones are not counted as gaps)."""
    return [q for section in load_selfcheck() for q in section.questions if answers.get(q.id) == "no"]
