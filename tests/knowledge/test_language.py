"""One gender-fair style in every German text a reader sees (docs/language.md).

Neutral forms first ("Tatperson", "Beschäftigte", "Personen, die …"); where German has none, the pair form
("Beraterinnen und Berater", "Amts- und Mandatsträgerinnen und -träger"); no gender star, colon, underscore
or inner capital I, which screen readers read out and Leichte Sprache does not allow. The test finds
generic masculine nouns that are left over after pair forms are taken out.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ARTICLES = ROOT / "service" / "knowledge" / "articles"

# Person nouns whose masculine form was used generically somewhere in this project before.
GENERIC_MASCULINE = re.compile(
    r"\b(?:Täter[ns]?|Berater[ns]?|Störer[ns]?|Zuhörer[ns]?|Mitarbeiter[ns]?|Nutzer[ns]?|Bürgermeister[ns]?"
    r"|Kommunalpolitiker[ns]?|Politiker[ns]?|Mandatsträger[ns]?|Amtsträger[ns]?|Ansprechpartner[ns]?"
    r"|Beschuldigten?|Anwalt|Anwälte[n]?|Zeugen?|Koordinator(?:en)?|Administrator(?:en)?|Kollegen"
    r"|Besucher[ns]?|Einwohner[ns]?|Angehöriger|Nachbarn|Absender[ns]?|Gemeinderäte[n]?|Verfasser[ns]?"
    r"|Antragsteller[ns]?|Opferschutzbeauftragter)\b"
)
# Official names that are not about persons (the DSA's body, a federal association), and the titles of
# cited sources, which are quoted as they were published.
ALLOWED = (
    "Koordinator für digitale Dienste",
    "Deutscher Städtetag",
    "Deutscher Landkreistag",
    "Hausverbot durch den Bürgermeister anlässlich einer Bürgerversammlung",
    "Verhaltensempfehlungen für die Sicherheit von Amts- und Mandatsträgern",
)
GENDER_SIGNS = re.compile(r"\w[*:_]in(?:nen)?\b|[a-zäöüß]Innen\b")
_PAIR = re.compile(
    r"\b(\w+?)(?:in|innen)\s+(?:und|oder|bzw\.)\s+(?:(?:der|die|den|dem|des|ein|eine|einen|einem|einer)\s+)?"
    r"(?:\([\w-]+\))?(-?\w+)",
    re.UNICODE,
)


def _fold(word: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", word.casefold()) if not unicodedata.combining(c))


def _without_pairs(text: str) -> str:
    """Blank out the masculine half of every pair form ("Zeuginnen und Zeugen", "-träger")."""

    def blank(match: re.Match[str]) -> str:
        stem, other = match.group(1), match.group(2)
        if other.startswith("-") or _fold(other)[:4] == _fold(stem)[:4]:
            return match.group(0)[: match.start(2) - match.start(0)] + "_" * len(other)
        return match.group(0)

    return _PAIR.sub(blank, text)


def findings(text: str) -> list[str]:
    for allowed in ALLOWED:
        text = text.replace(allowed, "")
    text = _without_pairs(text)
    return [m.group(0) for m in GENERIC_MASCULINE.finditer(text)] + [
        m.group(0) for m in GENDER_SIGNS.finditer(text)
    ]


def _german_yaml_strings(node: object) -> list[str]:
    if isinstance(node, dict):
        out: list[str] = []
        for key, value in node.items():
            if key == "de" and isinstance(value, str):
                out.append(value)
            else:
                out += _german_yaml_strings(value)
        return out
    if isinstance(node, list):
        return [s for item in node for s in _german_yaml_strings(item)]
    return []


def german_texts() -> dict[str, str]:
    texts = {path.name: path.read_text(encoding="utf-8") for path in sorted(ARTICLES.glob("*.de.md"))}
    de = yaml.safe_load((ROOT / "templates" / "i18n" / "de.yaml").read_text(encoding="utf-8"))
    texts["de.yaml"] = "\n".join(str(value) for value in de.values())
    for name in ("policies/taxonomy.yaml", "service/knowledge/articles/selbstcheck.yaml",
                 "service/knowledge/articles/sicherheitsplan.yaml",
                 "service/knowledge/glossary.yaml"):  # fmt: skip
        data = yaml.safe_load((ROOT / name).read_text(encoding="utf-8"))
        texts[name] = "\n".join(_german_yaml_strings(data))
    # The support directory's descriptions (its names and source titles are official names).
    support = yaml.safe_load((ROOT / "service/knowledge/support.yaml").read_text(encoding="utf-8"))
    texts["service/knowledge/support.yaml"] = "\n".join(e["description"]["de"] for e in support["entries"])
    for path in sorted((ROOT / "service" / "knowledge" / "leichte_sprache").glob("*.md")):
        texts[path.name] = path.read_text(encoding="utf-8")
    return texts


@pytest.mark.parametrize("name", sorted(german_texts()))
def test_no_generic_masculine_and_no_gender_signs(name: str) -> None:
    assert findings(german_texts()[name]) == []


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("Unsere Beraterinnen und Berater antworten.", []),
        ("Amts- und Mandatsträgerinnen und -träger", []),
        ("die Bürgermeisterin oder der Bürgermeister", []),
        ("Zeuginnen und Zeugen", []),
        ("Bitten Sie Zeugen, Notizen zu machen.", ["Zeugen"]),
        ("Den Täter nicht zur Rede stellen.", ["Täter"]),
        ("Ab Kenntnis von Tat und Täter*in.", ["Täter", "r*in"]),
        ("Koordinator für digitale Dienste", []),
        ("die beschuldigte Person", []),
        ("(Ober-)Bürgermeisterin oder (Ober-)Bürgermeister", []),
        ("eine Anwältin oder einen Anwalt", []),
    ],
)
def test_the_scanner(text: str, found: list[str]) -> None:
    assert findings(text) == found
