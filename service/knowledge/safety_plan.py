"""The personal safety plan: a short questionnaire (home, office, family, online, the next council meeting)
and the advice it selects, each with the articles and outside sources it rests on (sicherheitsplan.yaml).

Printed or downloaded as a PDF and stored nowhere: the answers and the lines typed into it come with the
request that makes the plan and go into that answer only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

from service.knowledge.seed import ARTICLES_DIR, shipped
from service.yaml_load import safe_load

MAX_FIELD_CHARS = 200


@dataclass(frozen=True)
class Source:
    id: str
    title: dict[str, str]
    url: str


@dataclass(frozen=True)
class Advice:
    when: dict[str, str]
    text: dict[str, str]
    articles: tuple[str, ...]
    sources: tuple[str, ...]


@dataclass(frozen=True)
class PlanSection:
    id: str
    title: dict[str, str]
    questions: tuple[tuple[str, dict[str, str]], ...]
    advice: tuple[Advice, ...]


@dataclass(frozen=True)
class PlanField:
    id: str
    label: dict[str, str]


@dataclass(frozen=True)
class SafetyPlanSpec:
    stand: date
    sources: tuple[Source, ...]
    sections: tuple[PlanSection, ...]
    fields: tuple[PlanField, ...]

    def question_ids(self) -> frozenset[str]:
        return frozenset(q for section in self.sections for q, _ in section.questions)


@cache
def load_safety_plan(path: Path = ARTICLES_DIR / "sicherheitsplan.yaml") -> SafetyPlanSpec:
    data: dict[str, Any] = safe_load(path.read_text(encoding="utf-8"))
    return SafetyPlanSpec(
        stand=data["stand"],
        sources=tuple(Source(str(s["id"]), dict(s["title"]), str(s["url"])) for s in data["sources"]),
        sections=tuple(
            PlanSection(
                id=str(section["id"]),
                title=dict(section["title"]),
                questions=tuple((str(q["id"]), dict(q["question"])) for q in section["questions"]),
                advice=tuple(
                    Advice(
                        when={str(k): str(v) for k, v in (item.get("when") or {}).items()},
                        text=dict(item["text"]),
                        articles=tuple(item.get("articles") or ()),
                        sources=tuple(item.get("sources") or ()),
                    )
                    for item in section["advice"]
                ),
            )
            for section in data["sections"]
        ),
        fields=tuple(PlanField(str(f["id"]), dict(f["label"])) for f in data["fields"]),
    )


@cache
def article_titles(lang: str) -> dict[str, str]:
    """The shipped titles of the articles, by slug (the plan names the article it follows)."""
    return {a.slug: a.title for a in shipped() if a.lang == lang}


@dataclass(frozen=True)
class PlanItem:
    text: str
    articles: tuple[tuple[str, str], ...]  # (title, path)
    sources: tuple[int, ...]  # numbers in the source list, from 1


@dataclass(frozen=True)
class PlanPart:
    title: str
    items: tuple[PlanItem, ...]


@dataclass(frozen=True)
class SafetyPlan:
    parts: tuple[PlanPart, ...]
    fields: tuple[tuple[str, str], ...]  # (label, typed value): only the lines filled in
    sources: tuple[tuple[str, str], ...]  # (title, url), numbered from 1 in this order
    stand: date


def answers_from(form: Mapping[str, object]) -> dict[str, str]:
    asked = load_safety_plan().question_ids()
    return {
        name[2:]: str(value)
        for name, value in form.items()
        if name.startswith("a.") and name[2:] in asked and value in ("yes", "no")
    }


def build(answers: Mapping[str, str], typed: Mapping[str, str], lang: str) -> SafetyPlan:
    """The plan for these answers: advice whose condition holds (and the advice given always), in order."""
    spec = load_safety_plan()
    titles = article_titles(lang)
    suffix = "?lang=en" if lang == "en" else ""
    numbers: dict[str, int] = {}
    parts = []
    for section in spec.sections:
        items = []
        for advice in section.advice:
            if any(answers.get(q) != wanted for q, wanted in advice.when.items()):
                continue
            for source in advice.sources:
                numbers.setdefault(source, len(numbers) + 1)
            items.append(
                PlanItem(
                    text=advice.text.get(lang, advice.text["de"]),
                    articles=tuple((titles[slug], f"/wissen/{slug}{suffix}") for slug in advice.articles),
                    sources=tuple(numbers[s] for s in advice.sources),
                )
            )
        parts.append(PlanPart(section.title.get(lang, section.title["de"]), tuple(items)))
    by_id = {s.id: s for s in spec.sources}
    return SafetyPlan(
        parts=tuple(parts),
        fields=tuple(
            (f.label.get(lang, f.label["de"]), typed[f.id])
            for f in spec.fields
            if typed.get(f.id, "").strip()
        ),
        sources=tuple(
            (by_id[s].title.get(lang, by_id[s].title["de"]), by_id[s].url)
            for s in sorted(numbers, key=numbers.__getitem__)
        ),
        stand=spec.stand,
    )
