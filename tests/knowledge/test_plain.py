"""Leichte Sprache and the glossary.

Leichte Sprache (rules of the Netzwerk Leichte Sprache): short sentences with one statement each; long words
split with a middle dot ("Beratungs·stelle"). The limits below are this project's reading of those rules; a
check by readers of the target group is still due before production (README).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.knowledge.plain import EASY_DIR, easy_pages, glossary
from service.knowledge.seed import ARTICLES_DIR

MAX_WORDS_PER_SENTENCE = 12
MAX_LETTERS_PER_WORD_PART = 12  # between middle dots or hyphens
REQUIRED = {"melden", "quittung", "fall", "was-jetzt-tun", "strafantrag", "hilfe-in-der-naehe"}


def sentences(markdown: str) -> list[str]:
    """Each heading, list item and sentence of the text, without link targets and markup."""
    text = re.sub(r"\]\([^)]*\)", "]", markdown)  # keep link text, drop the address
    text = re.sub(r"[#*\[\]>]", " ", text)
    found: list[str] = []
    for line in text.splitlines():
        line = line.strip().lstrip("-").strip()
        found += [part.strip() for part in re.split(r"(?<=[.!?:])\s+", line) if part.strip()]
    return found


def words(sentence: str) -> list[str]:
    return [w for w in re.findall(r"[\w·-]+", sentence) if not w.replace(" ", "").isdigit()]


def test_every_required_text_exists() -> None:
    assert {page.slug for page in easy_pages()} >= REQUIRED


@pytest.mark.parametrize("path", sorted(EASY_DIR.glob("*.md")), ids=lambda p: p.stem)
def test_sentences_and_words_are_short(path: Path) -> None:
    body = path.read_text(encoding="utf-8").split("---\n", 2)[2]
    title = re.search(r"^title: (.*)$", path.read_text(encoding="utf-8"), re.M)
    assert title
    for sentence in [title.group(1), *sentences(body)]:
        assert len(words(sentence)) <= MAX_WORDS_PER_SENTENCE, sentence
        for word in words(sentence):
            for part in re.split(r"[·-]", word):
                assert len(part) <= MAX_LETTERS_PER_WORD_PART, (word, sentence)


def test_the_checker_catches_long_sentences_and_words() -> None:
    long_sentence = "Eins zwei drei vier fünf sechs sieben acht neun zehn elf zwölf dreizehn."
    assert len(words(sentences(long_sentence)[0])) > MAX_WORDS_PER_SENTENCE
    assert max(len(w) for w in words("Strafantragsfrist")) > MAX_LETTERS_PER_WORD_PART
    assert sentences("Erst das. Dann [das](/melden)!") == ["Erst das.", "Dann  das !"]


def test_every_glossary_link_in_the_articles_names_a_term() -> None:
    ids = {term.id for term in glossary()[1]}
    linked = {
        anchor
        for path in ARTICLES_DIR.glob("*.md")
        for anchor in re.findall(r"/glossar(?:\?lang=en)?#([a-z0-9-]+)", path.read_text(encoding="utf-8"))
    }
    assert linked, "the articles link the glossary"
    assert linked <= ids
    for term in glossary()[1]:
        assert all((term.term["de"], term.term["en"], term.text["de"], term.text["en"]))


def test_the_pages_are_reachable_from_every_page(client: TestClient) -> None:
    for address in ("/", "/melden", "/wissen", "/fall", "/statistik"):
        page = client.get(address).text
        assert 'href="/leichte-sprache"' in page, address
        assert 'href="/glossar' in page, address
    index = client.get("/leichte-sprache")
    assert index.status_code == 200
    assert 'href="/leichte-sprache/strafantrag"' in index.text
    easy = client.get("/leichte-sprache/strafantrag?lang=en")
    assert easy.status_code == 200
    assert '<div lang="de">' in easy.text
    assert client.get("/leichte-sprache/gibt-es-nicht").status_code == 404
    terms = client.get("/glossar").text
    assert 'id="antragsdelikt"' in terms
    assert 'id="privatklage"' in terms
    assert "complaint-only offence" in client.get("/glossar?lang=en").text
